"""Navigation success on held-out maps, for any policy (``embodied_lib.policy.Policy``)."""
from __future__ import annotations

import numpy as np

from embodied_lib.config import EVAL_SEED_BASE
from embodied_lib.navigation.env import GridWorldEnv
from embodied_lib.navigation.policy import RandomPolicy


def run_episodes(policy, grid_size: int, obstacle_fraction: float, seeds) -> dict:
    """Roll out ``policy`` on the maps ``seeds``.

    Success = goal reached before the step limit. Path ratio = steps taken / BFS
    shortest path, averaged over successful episodes (1.0 is optimal).
    """
    env = GridWorldEnv(grid_size, obstacle_fraction)
    successes, ratios, lengths = [], [], []
    for seed in seeds:
        obs, info = env.reset(seed=int(seed))
        policy.reset()
        shortest = info["shortest_path"]
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(policy.act(obs).action)
        successes.append(bool(terminated))
        lengths.append(info["steps"])
        if terminated:
            ratios.append(info["steps"] / shortest)
    return {
        "episodes": len(successes),
        "success_rate": float(np.mean(successes)),
        "path_ratio": float(np.mean(ratios)) if ratios else float("nan"),
        "mean_steps": float(np.mean(lengths)),
    }


def evaluate_policy(policy, grid_size: int, obstacle_fraction: float, n_maps: int,
                    seed_base: int = EVAL_SEED_BASE) -> dict:
    return run_episodes(policy, grid_size, obstacle_fraction, range(seed_base, seed_base + n_maps))


def evaluate_random(grid_size: int, obstacle_fraction: float, n_maps: int,
                    seed_base: int = EVAL_SEED_BASE, seed: int = 0) -> dict:
    return evaluate_policy(RandomPolicy(seed), grid_size, obstacle_fraction, n_maps, seed_base)
