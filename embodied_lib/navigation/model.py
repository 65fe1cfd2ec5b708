"""DQNAgent: the navigation Q-network, and its spec (the contract with C++ and Rust).

Architecture fixed by the design: fc1(state, 256) -> ReLU -> dropout 0.2 ->
fc2(256, 256) -> ReLU -> dropout 0.2 -> fc3(256, 256) -> ReLU -> fc4(256, 4).
The parameter names fc1..fc4 (``fc1.weight``, ``fc1.bias``, ...) are what the
native twins load; dropout has no parameters and is inactive in eval mode.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from embodied_lib import architecture as arch
from embodied_lib.config import NAVIGATION_SAMPLE_SEED_BASE
from embodied_lib.navigation.env import ACTION_DELTAS, ACTIONS, CHANNELS, GridWorldEnv, observation_size
from embodied_lib.spec import BATCH, ROBOT_FORMATS, ModelSpec, TensorSpec, discrete

HIDDEN = 256
DROPOUT = 0.2


class DQNAgent(nn.Module):
    def __init__(self, state_size: int, action_size: int = len(ACTIONS), hidden=(HIDDEN, HIDDEN, HIDDEN)):
        """``hidden``: the widths of fc1..fc3 (a structurally pruned agent is narrower; embodied_lib.profiling.pruning)."""
        super().__init__()
        h1, h2, h3 = hidden
        self.fc1 = nn.Linear(state_size, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, h3)
        self.fc4 = nn.Linear(h3, action_size)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        x = self.dropout(torch.relu(self.fc1(state)))
        x = self.dropout(torch.relu(self.fc2(x)))
        x = torch.relu(self.fc3(x))
        return self.fc4(x)

    def widths(self) -> dict:
        """The keyword arguments that rebuild this agent's shape (what structured pruning changes)."""
        return {"hidden": [self.fc1.out_features, self.fc2.out_features, self.fc3.out_features]}

    def architecture(self) -> list[dict]:
        """The forward pass above as the native twins' layer graph (embodied_lib.architecture)."""
        return [arch.linear("fc1", self.fc1), arch.op("relu"), arch.dropout(self.dropout),
                arch.linear("fc2", self.fc2), arch.op("relu"), arch.dropout(self.dropout),
                arch.linear("fc3", self.fc3), arch.op("relu"), arch.linear("fc4", self.fc4)]


def sample_navigation_states(n: int, seed: int, grid_size: int = 8,
                             obstacle_fraction: float = 0.15) -> tuple[np.ndarray]:
    """``n`` observations a deployed agent would see: fresh maps plus a few random moves."""
    env = GridWorldEnv(grid_size, obstacle_fraction)
    rng = np.random.default_rng(seed)
    states = np.empty((n, observation_size(grid_size)), dtype=np.float32)
    for i in range(n):
        obs, _ = env.reset(seed=NAVIGATION_SAMPLE_SEED_BASE + seed * 100_000 + i)
        for _ in range(int(rng.integers(0, 8))):
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(len(ACTIONS))))
            if terminated or truncated:
                break
        states[i] = obs
    return (states,)


def navigation_spec(grid_size: int = 8, obstacle_fraction: float = 0.15, hidden=None) -> ModelSpec:
    """``hidden``: fc1..fc3 widths of a structurally pruned agent (default: the design's 256 each)."""
    state_size = observation_size(grid_size)
    widths = {"hidden": list(hidden)} if hidden is not None else {}
    return ModelSpec(
        name="navigation",
        build=DQNAgent,
        config={"state_size": state_size, "action_size": len(ACTIONS), **widths},
        inputs=(TensorSpec("state", (BATCH, state_size), valid=(0.0, 1.0)),),  # the env's observation_space
        outputs=(TensorSpec("q_values", (BATCH, len(ACTIONS)), judged=discrete(ACTIONS)),),
        sample_inputs=lambda n, seed: sample_navigation_states(n, seed, grid_size, obstacle_fraction),
        metadata={
            "grid_size": grid_size,
            "obstacle_fraction": obstacle_fraction,
            "channels": list(CHANNELS),
            "observation_layout": "[channel, row, col] flattened in C order; "
                                  "index = c*N*N + row*N + col",
            "actions": list(ACTIONS),
            "action_rule": "argmax over q_values",
            "safety": {
                "fallback": "stay: no move this tick",
                "legal_move": "the neighbour a move leads to is free: obstacle channel at the window centre "
                              "+ action_deltas is 0 (outside the world reads as blocked)",
                "obstacle_channel": CHANNELS.index("obstacle"),
                "action_deltas": ACTION_DELTAS.tolist(),
                "illegal_move": "replaced by the legal move with the highest Q-value; stay if there is none",
            },
        },
        spec_args={"grid_size": grid_size, "obstacle_fraction": obstacle_fraction, **widths},
        # INT8 measured (full profile): max |diff| 0.10 of Q-values ~1; 95 % same argmax on sampled states, whose
        # best two moves are often within 0.1 (the task metric, not this rate, decides: embodied_lib.profiling)
        formats=ROBOT_FORMATS, tolerance=1e-5, int8_tolerance=0.25, int8_tie_margin=0.02, int8_agreement=0.9,
    )
