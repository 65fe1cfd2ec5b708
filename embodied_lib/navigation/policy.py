"""DQNAgent behind the policy interface: a robot-centred observation -> the move with the highest Q-value."""
from __future__ import annotations

import numpy as np

from embodied_lib.navigation.env import ACTIONS
from embodied_lib.policy import Decision, Policy, RuntimePolicy


class NavigationPolicy(RuntimePolicy):
    """``act(observation [N*N*4])``: the greedy action (index into ACTIONS) and its Q-values."""

    def act(self, observation) -> Decision:
        outputs = self.run_one(np.asarray(observation, dtype=np.float32))
        return Decision(int(outputs["q_values"].argmax()), outputs)


class RandomPolicy(Policy):
    """A uniformly random move: the floor every learned policy must clear."""

    def __init__(self, seed: int = 0):
        self.seed, self.rng = seed, np.random.default_rng(seed)

    def reset(self, episode: int | None = None) -> None:
        if episode is not None:   # each episode from its own seed: independent of the episodes before it
            self.rng = np.random.default_rng([self.seed, int(episode)])

    def act(self, observation) -> Decision:
        return Decision(int(self.rng.integers(len(ACTIONS))))
