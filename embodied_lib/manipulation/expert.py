"""The scripted expert of the tabletop task: privileged (it reads the cube's true position), used to
record demonstrations and as the reference in closed-loop evaluation, never deployed."""
from __future__ import annotations

import numpy as np

from embodied_lib.manipulation.env import MAX_STEP, TabletopEnv
from embodied_lib.policy import Decision, Policy


def scripted_expert_action(env: TabletopEnv) -> np.ndarray:
    """Reach above the cube, descend, close, lift: a privileged controller for demonstrations.

    If the fingers are closed but the cube is not between them (a missed or dropped grasp), it
    opens and starts again, so demonstrations with injected mistakes also show the recovery."""
    cube = env.cube_position()
    grip = env.data.xpos[env.gripper_body]
    closed = env.gripper_command > 0
    xy_error = np.linalg.norm(cube[:2] - grip[:2])
    in_grasp = xy_error < 0.015 and abs(grip[2] - cube[2]) < 0.02
    at_cube = np.array([cube[0], cube[1], cube[2] + 0.005])
    if closed and in_grasp and env.data.qpos[env._gripper_qpos[3]] > 0.012:
        target, close = np.array([grip[0], grip[1], cube[2] + 0.2]), 1.0        # fingers on the cube: lift
    elif closed and in_grasp:
        target, close = at_cube, 1.0                                            # fingers still closing
    elif closed:
        target, close = np.array([grip[0], grip[1], cube[2] + 0.09]), -1.0     # missed: open, back up
    elif xy_error > 0.01:
        target, close = np.array([cube[0], cube[1], cube[2] + 0.09]), -1.0      # hover above it
    elif grip[2] > at_cube[2] + 0.01:
        target, close = at_cube, -1.0                                           # descend, open
    else:
        target, close = at_cube, 1.0                                            # close the fingers
    delta = np.clip((target - grip) / MAX_STEP, -1.0, 1.0)
    return np.array([*delta, close], dtype=np.float32)


class ExpertPolicy(Policy):
    """The scripted expert behind the policy interface; it needs the env, since it reads privileged state."""

    def __init__(self, env: TabletopEnv):
        self.env = env

    def act(self, observation) -> Decision:
        return Decision(scripted_expert_action(self.env))
