import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from embodied_lib.navigation.env import (ACTIONS, BUMP_PENALTY, CHANNELS, GOAL_REWARD, GridWorldEnv,
                                         bfs_distances, encode_observation, observation_size)


def test_passes_gymnasium_env_checker():
    env = gym.make("embodied/GridWorld-v0", render_mode="rgb_array")
    check_env(env.unwrapped)
    check_env(GridWorldEnv(grid_size=5, obstacle_fraction=0.2))


@pytest.mark.parametrize("fraction", [0.15, 0.2, 0.3])
def test_every_map_is_solvable_and_has_the_obstacle_count(fraction):
    env = GridWorldEnv(8, fraction)
    for seed in range(300):
        env.reset(seed=seed)
        assert env.obstacles.sum() == round(fraction * 64)
        assert env.agent != env.goal
        assert bfs_distances(env.obstacles, env.goal)[env.agent] == env.shortest_path > 0


def test_same_seed_same_map_and_different_seeds_differ():
    a, b = GridWorldEnv(), GridWorldEnv()
    oa, _ = a.reset(seed=42)
    ob, _ = b.reset(seed=42)
    assert np.array_equal(oa, ob)
    maps = {GridWorldEnv().reset(seed=s)[0].tobytes() for s in range(50)}
    assert len(maps) == 50


def test_bfs_distances_around_a_wall():
    obstacles = np.zeros((4, 4), dtype=np.float32)
    obstacles[1, 0:3] = 1  # wall with a gap at column 3
    dist = bfs_distances(obstacles, (0, 0))
    assert dist[2, 0] == 8  # right along row 0, down the gap, back left along row 2
    assert dist[1, 1] == -1


def test_observation_layout_is_robot_centred():
    n = 8
    assert observation_size(n) == n * n * len(CHANNELS) == 256
    assert CHANNELS == ("agent", "goal", "obstacle", "visited")
    obstacles = np.zeros((n, n), dtype=np.float32)
    obstacles[2, 3] = 1
    visited = np.zeros_like(obstacles)
    visited[1, 1] = 1
    obs = encode_observation((1, 1), (1, 3), obstacles, visited)
    assert obs.dtype == np.float32 and obs.shape == (256,)
    grid = obs.reshape(len(CHANNELS), n, n)
    c = n // 2
    assert grid[0].sum() == 1 and grid[0, c, c] == 1          # robot at the centre
    assert grid[1, c, c + 2] == 1 and grid[1].sum() == 1      # goal two cells to the right
    assert grid[2, c + 1, c + 2] == 1                          # obstacle one down, two right
    assert grid[2, c - 2, :].all() and grid[2, :, c - 2].all()  # outside the world is blocked
    assert grid[3, c, c] == 1 and grid[3].sum() == 1
    # flat index of channel ch, window cell (i, j) is ch*N*N + i*N + j
    assert obs[1 * n * n + c * n + (c + 2)] == 1


def test_far_goal_is_clamped_to_the_window_border():
    n = 8
    obs = encode_observation((0, 0), (7, 7), np.zeros((n, n), np.float32), np.zeros((n, n), np.float32))
    goal = obs.reshape(4, n, n)[1]
    assert goal[n - 1, n - 1] == 1 and goal.sum() == 1


def test_rewards_bumps_and_goal():
    env = GridWorldEnv(5, 0.0)
    env.reset(seed=0)
    env.agent, env.goal = (0, 0), (0, 1)
    env.distances = bfs_distances(env.obstacles, env.goal)
    obs, reward, terminated, truncated, _ = env.step(ACTIONS.index("up"))  # into the wall
    assert env.agent == (0, 0) and reward == pytest.approx(-0.01 + BUMP_PENALTY)
    obs, reward, terminated, truncated, _ = env.step(ACTIONS.index("right"))
    assert terminated and not truncated
    assert reward == pytest.approx(-0.01 + 0.1 + GOAL_REWARD)


def test_truncates_at_the_step_limit():
    env = GridWorldEnv(8, 0.15, max_steps=5)
    env.reset(seed=1)
    for _ in range(5):
        *_, terminated, truncated, _ = env.step(ACTIONS.index("up"))
    assert truncated or terminated


def test_rgb_render():
    env = GridWorldEnv(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (8 * 24, 8 * 24, 3)


def test_bad_actions_and_settings_are_rejected():
    env = GridWorldEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(7)
    with pytest.raises(ValueError, match="grid_size"):
        GridWorldEnv(grid_size=2)
    with pytest.raises(ValueError, match="obstacle_fraction"):
        GridWorldEnv(obstacle_fraction=0.9)
