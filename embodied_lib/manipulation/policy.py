"""ManipulationNet behind the policy interface: camera frame + robot state -> [dx, dy, dz, gripper]."""
from __future__ import annotations

import numpy as np

from embodied_lib.manipulation.env import ACTION_FIELDS
from embodied_lib.manipulation.model import frame_to_input, manipulation_spec
from embodied_lib.policy import Decision, Policy, RuntimePolicy
from embodied_lib.runtime.runtimes import eager_runtime


class ManipulationPolicy(RuntimePolicy):
    """``act({"image": uint8 [400, 400, 3], "state": float32 [10]})``: the action the network outputs."""

    def act(self, observation) -> Decision:
        image = frame_to_input(observation["image"][None])[0]
        outputs = self.run_one(image, observation["state"])
        return Decision(outputs["action"].copy(), outputs)

    @classmethod
    def from_weights(cls, state: dict) -> "ManipulationPolicy":
        """The network rebuilt from a state dict, eager: how a worker process gets the policy it plays."""
        spec = manipulation_spec()
        model = spec.build_model()
        model.load_state_dict(state)
        return cls(eager_runtime(spec, model.eval()))


class RandomPolicy(Policy):
    """Uniform random actions in [-1, 1]: the floor every learned policy must clear."""

    def __init__(self, seed: int = 0):
        self.seed, self.rng = seed, np.random.default_rng(seed)

    def reset(self, episode: int | None = None) -> None:
        if episode is not None:   # each episode from its own seed: independent of the episodes before it
            self.rng = np.random.default_rng([self.seed, int(episode)])

    def act(self, observation) -> Decision:
        return Decision(self.rng.uniform(-1, 1, len(ACTION_FIELDS)).astype(np.float32))
