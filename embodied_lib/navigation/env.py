"""GridWorldEnv: the navigation task of notebook 01.

An N x N grid with random obstacles, a start and a goal; every map is solvable
(checked with breadth-first search). The agent moves up, down, left or right.

Observation layout (the contract with the exported models and native runners):
a float32 vector of length N*N*4, an N x N window *centred on the robot* (like a
robot's local occupancy map), as ``[channel, row, col]`` flattened in C order, so
``obs.reshape(4, N, N)[c]`` is channel ``c`` of ``CHANNELS``. Window cell
``(i, j)`` shows world cell ``(agent_row + i - N//2, agent_col + j - N//2)``:

    0 agent     1.0 at the window centre (N//2, N//2), where the robot always is
    1 goal      1.0 at the goal; a goal outside the window is drawn on the window's
                border cell nearest to it, so the direction is always visible
    2 obstacle  1.0 at every blocked cell, and everywhere outside the world
    3 visited   1.0 at every cell the agent has stood on this episode (start included)

Why robot-centred: with an allocentric (world-fixed) grid, a 256-wide MLP must learn
"read the cells next to wherever the agent is" for all 64 positions, and in our
trials it reached only ~65 % success even when imitating the BFS planner on 58k
labelled states. Centred on the robot, the neighbours are fixed inputs.

Rewards (documented once, here):
    +1.0   reaching the goal (the episode terminates)
    -0.01  every step (prefer short paths)
    +0.1 * (d_before - d_after)  potential-based shaping with d = BFS distance to the
           goal; it leaves the optimal policy unchanged and makes learning fast
    -0.05  bumping into a wall or an obstacle (the agent stays where it was)
    -0.05  stepping onto a cell already visited (discourages loops)
Episodes are truncated after ``max_steps`` (default 4*N).
"""
from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
from gymnasium import spaces

CHANNELS = ("agent", "goal", "obstacle", "visited")
ACTIONS = ("up", "down", "left", "right")
ACTION_DELTAS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)  # (drow, dcol)

GOAL_REWARD = 1.0
STEP_COST = -0.01
SHAPING_SCALE = 0.1
BUMP_PENALTY = -0.05
REVISIT_PENALTY = -0.05


def observation_size(grid_size: int) -> int:
    return grid_size * grid_size * len(CHANNELS)


def bfs_distances(obstacles: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """Shortest number of moves from every cell to ``goal``; -1 where unreachable."""
    n = obstacles.shape[0]
    dist = np.full((n, n), -1, dtype=np.int64)
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ACTION_DELTAS:
            nr, nc = r + dr, c + dc
            if 0 <= nr < n and 0 <= nc < n and not obstacles[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def encode_observation(agent, goal, obstacles: np.ndarray, visited: np.ndarray) -> np.ndarray:
    """Build the flat ``[4*N*N]`` float32 robot-centred observation (module docstring)."""
    n = obstacles.shape[0]
    centre = n // 2
    grid = np.zeros((len(CHANNELS), n, n), dtype=np.float32)
    grid[2] = 1.0  # everything outside the world counts as blocked
    # world cells that fall inside the window: window (i, j) <-> world (i - centre + r, j - centre + c)
    r, c = agent
    lo_r, lo_c = max(0, r - centre), max(0, c - centre)
    hi_r, hi_c = min(n, r - centre + n), min(n, c - centre + n)
    win_r, win_c = slice(lo_r - r + centre, hi_r - r + centre), slice(lo_c - c + centre, hi_c - c + centre)
    grid[2][win_r, win_c] = obstacles[lo_r:hi_r, lo_c:hi_c]
    grid[3][win_r, win_c] = visited[lo_r:hi_r, lo_c:hi_c]
    grid[0][centre, centre] = 1.0
    gi = min(max(goal[0] - r + centre, 0), n - 1)  # a goal beyond the window sits on its border
    gj = min(max(goal[1] - c + centre, 0), n - 1)
    grid[1][gi, gj] = 1.0
    return grid.reshape(-1)


class GridWorldEnv(gym.Env):
    """Random solvable grid maps; ``reset(seed=s)`` always gives map ``s``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, grid_size: int = 8, obstacle_fraction: float = 0.15,
                 max_steps: int | None = None, render_mode: str | None = None):
        if grid_size < 3:
            raise ValueError(f"grid_size must be >= 3, got {grid_size}")
        if not 0.0 <= obstacle_fraction <= 0.4:
            raise ValueError(f"obstacle_fraction must be in [0, 0.4], got {obstacle_fraction}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.grid_size = grid_size
        self.obstacle_fraction = obstacle_fraction
        self.max_steps = max_steps or 4 * grid_size
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (observation_size(grid_size),), np.float32)
        self.action_space = spaces.Discrete(len(ACTIONS))

    # -- map generation -------------------------------------------------------
    def _generate_map(self):
        n = self.grid_size
        n_obstacles = int(round(self.obstacle_fraction * n * n))
        while True:  # resample until the goal is reachable from the start
            cells = self.np_random.permutation(n * n)
            obstacles = np.zeros((n, n), dtype=np.float32)
            obstacles.flat[cells[:n_obstacles]] = 1.0
            start = divmod(int(cells[n_obstacles]), n)
            goal = divmod(int(cells[n_obstacles + 1]), n)
            dist = bfs_distances(obstacles, goal)
            if dist[start] > 0:
                return obstacles, start, goal, dist

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.obstacles, start, self.goal, self.distances = self._generate_map()
        self.agent = start
        self.visited = np.zeros_like(self.obstacles)
        self.visited[start] = 1.0
        self.steps = 0
        self.shortest_path = int(self.distances[start])
        return self._observation(), self._info()

    def set_goal(self, cell):
        """Make ``cell`` (row, col) the goal of this episode, as a spoken ``go_to`` does; the map stays as it is.
        Returns the observation and info for the new goal, as ``reset`` does.

        Raises ValueError naming the problem when the cell is off the grid, an obstacle, or unreachable."""
        row, col = (int(v) for v in cell)
        n = self.grid_size
        if not (0 <= row < n and 0 <= col < n):
            raise ValueError(f"cell ({row}, {col}) is outside the {n} x {n} grid")
        if self.obstacles[row, col]:
            raise ValueError(f"cell ({row}, {col}) is an obstacle on this map")
        distances = bfs_distances(self.obstacles, (row, col))
        if distances[self.agent] < 0:
            raise ValueError(f"cell ({row}, {col}) cannot be reached from the robot's cell {self.agent}")
        self.goal, self.distances = (row, col), distances
        self.shortest_path = int(distances[self.agent])
        return self._observation(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {len(ACTIONS) - 1}], got {action!r}")
        self.steps += 1
        reward = STEP_COST
        r, c = self.agent
        dr, dc = ACTION_DELTAS[int(action)]
        nr, nc = r + dr, c + dc
        n = self.grid_size
        if 0 <= nr < n and 0 <= nc < n and not self.obstacles[nr, nc]:
            reward += SHAPING_SCALE * (self.distances[r, c] - self.distances[nr, nc])
            if self.visited[nr, nc]:
                reward += REVISIT_PENALTY
            self.agent = (int(nr), int(nc))
            self.visited[self.agent] = 1.0
        else:
            reward += BUMP_PENALTY
        terminated = self.agent == self.goal
        if terminated:
            reward += GOAL_REWARD
        truncated = not terminated and self.steps >= self.max_steps
        return self._observation(), float(reward), terminated, truncated, self._info()

    def _observation(self):
        return encode_observation(self.agent, self.goal, self.obstacles, self.visited)

    def _info(self):
        return {"shortest_path": self.shortest_path, "steps": self.steps,
                "distance_to_goal": int(self.distances[self.agent])}

    # -- rendering --------------------------------------------------------------
    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return render_grid(self.agent, self.goal, self.obstacles, self.visited)


CELL_COLOURS = {
    "free": (245, 245, 245), "obstacle": (60, 60, 70), "visited": (170, 200, 240),
    "goal": (60, 180, 75), "agent": (220, 50, 50),
}


def render_grid(agent, goal, obstacles, visited, cell_pixels: int = 24) -> np.ndarray:
    """An RGB picture (uint8, H x W x 3) of one grid state, with thin cell borders."""
    n = obstacles.shape[0]
    colours = np.empty((n, n, 3), dtype=np.uint8)
    colours[:] = CELL_COLOURS["free"]
    colours[visited > 0] = CELL_COLOURS["visited"]
    colours[obstacles > 0] = CELL_COLOURS["obstacle"]
    colours[tuple(goal)] = CELL_COLOURS["goal"]
    colours[tuple(agent)] = CELL_COLOURS["agent"]
    image = np.repeat(np.repeat(colours, cell_pixels, axis=0), cell_pixels, axis=1)
    image[::cell_pixels, :] = 200
    image[:, ::cell_pixels] = 200
    return image


if "embodied/GridWorld-v0" not in gym.registry:
    gym.register("embodied/GridWorld-v0", entry_point=GridWorldEnv)
