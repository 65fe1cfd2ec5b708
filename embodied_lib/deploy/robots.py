"""The simulated robots the control loop drives: sensors to read, actuators to command, episodes to count.

    GridRobot       the grid world of notebook 01; its sensor is the robot-centred occupancy window
                    (the design document's "lidar scan"); an action is a move, ``None`` stays in place.
    TabletopRobot   the MuJoCo tabletop of notebook 02; its sensors are the camera frame (rendered in
                    ``sense``, timed on its own as ``last_render_s``) and the joint state; an action is
                    ``[dx, dy, dz, gripper]``.
    ReplayRobot     replays recorded readings without simulating anything: the controller's compute alone,
                    as on a robot whose camera runs beside the controller.

Every robot plays a list of episode seeds (held-out maps and scenes) one after another and records each
episode's result; ``sense`` numbers its readings so the guard can tell a fresh one from a stale one.
"""
from __future__ import annotations

import itertools
import time

from embodied_lib.deploy.guard import Reading
from embodied_lib.manipulation.env import TabletopEnv
from embodied_lib.navigation.env import GridWorldEnv


class _EpisodeRobot:
    """Episode bookkeeping shared by the simulated robots."""

    def __init__(self, seeds, max_ticks: int, clock):
        self.seeds = iter(seeds) if seeds is not None else itertools.count()
        self.max_ticks, self.clock = max_ticks, clock
        self.results: list[dict] = []
        self.seq = 0
        self.last_render_s = 0.0
        self.seed = None
        self.ticks = 0
        self.finished = False       # no seeds left

    def next_episode(self) -> bool:
        """Start the next seed's episode; False when the seeds are used up."""
        seed = next(self.seeds, None)
        if seed is None:
            self.finished = True
            return False
        self.seed, self.ticks, self.done, self.success = int(seed), 0, False, False
        self._reset(self.seed)
        return True

    def tick_done(self) -> None:
        """Count a tick; an episode that ran out of ticks ends unsuccessful."""
        self.ticks += 1
        if not self.done and self.ticks >= self.max_ticks:
            self.done = True
        if self.done:
            self.results.append(self._result())

    def _stamp(self, value) -> Reading:
        self.seq += 1
        return Reading(value, self.seq, self.clock())


class GridRobot(_EpisodeRobot):
    name = "navigation"

    def __init__(self, grid_size: int = 8, obstacle_fraction: float = 0.15, seeds=None, max_ticks: int | None = None,
                 goal=None, clock=time.perf_counter):
        """``goal``: a cell every episode drives to instead of the map's own (a spoken go_to)."""
        self.env, self.goal = GridWorldEnv(grid_size, obstacle_fraction), goal
        # stays and fallbacks use ticks but no env steps, so an episode may run longer than the env's step limit
        super().__init__(seeds, max_ticks or 2 * self.env.max_steps, clock)

    def _reset(self, seed: int) -> None:
        self.observation, self.info = self.env.reset(seed=seed)
        if self.goal is not None:
            self.observation, self.info = self.env.set_goal(self.goal)
        self.moves = 0

    def sense(self) -> Reading:
        return self._stamp(self.observation)

    def apply(self, action) -> None:
        if action is None or self.done:
            return
        self.observation, _, terminated, truncated, self.info = self.env.step(int(action))
        self.moves += 1
        self.success = bool(terminated)
        self.done = terminated or truncated

    @property
    def cell(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.env.agent)

    def _result(self) -> dict:
        return {"seed": self.seed, "success": self.success, "ticks": self.ticks, "moves": self.moves,
                "shortest_path": self.info["shortest_path"], "cell": list(self.cell)}


class TabletopRobot(_EpisodeRobot):
    name = "manipulation"

    def __init__(self, seeds=None, max_steps: int = 80, clock=time.perf_counter):
        self.env = TabletopEnv(max_steps=max_steps)
        self.env.observe_image = False   # sense() renders, timed apart from the physics
        super().__init__(seeds, max_steps, clock)

    def _reset(self, seed: int) -> None:
        self.env.reset(seed=seed)
        self.lift = 0.0

    def sense(self) -> Reading:
        started = self.clock()
        image = self.env.render()
        self.last_render_s = self.clock() - started
        return self._stamp({"image": image, "state": self.env.read_state()})

    def apply(self, action) -> None:
        if self.done:
            return
        _, _, terminated, truncated, info = self.env.step(action)
        self.lift, self.success = info["lift"], bool(info["success"])
        self.done = terminated or truncated

    def close(self) -> None:
        self.env.close()

    def _result(self) -> dict:
        return {"seed": self.seed, "success": self.success, "ticks": self.ticks, "lift_m": round(self.lift, 4)}


class ReplayRobot:
    """Recorded readings played in a loop; actions go nowhere. For the controller's own compute and rate."""

    def __init__(self, name: str, observations, clock=time.perf_counter):
        if not observations:
            raise ValueError("ReplayRobot needs at least one recorded observation")
        self.name, self.observations, self.clock = name, list(observations), clock
        self.seq, self.last_render_s, self.results, self.finished, self.done = 0, 0.0, [], False, False

    def next_episode(self) -> bool:
        return True

    def sense(self) -> Reading:
        self.seq += 1
        return Reading(self.observations[self.seq % len(self.observations)], self.seq, self.clock())

    def apply(self, action) -> None:
        pass

    def tick_done(self) -> None:
        pass


def record_observations(robot, policy_act, ticks: int) -> list:
    """Readings of ``ticks`` steps of ``robot`` driven by ``policy_act(observation) -> action`` (for ReplayRobot)."""
    recorded = []
    robot.next_episode()
    for _ in range(ticks):
        reading = robot.sense()
        recorded.append(reading.value)
        robot.apply(policy_act(reading.value))
        robot.tick_done()
        if robot.done and not robot.next_episode():
            break
    return recorded

