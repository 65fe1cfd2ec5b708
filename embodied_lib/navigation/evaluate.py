"""Navigation success on held-out maps, for any policy (``embodied_lib.policy.Policy``)."""
from __future__ import annotations

import numpy as np

from embodied_lib.config import EVAL_SEED_BASE
from embodied_lib.navigation.env import GridWorldEnv
from embodied_lib.navigation.policy import RandomPolicy
from embodied_lib.parallel import chunks, map_tasks


def run_episodes(policy, grid_size: int, obstacle_fraction: float, seeds) -> dict:
    """Roll out ``policy`` on the maps ``seeds``.

    Success = goal reached before the step limit. Path ratio = steps taken / BFS
    shortest path, averaged over successful episodes (1.0 is optimal).
    """
    env = GridWorldEnv(grid_size, obstacle_fraction)
    successes, ratios, lengths = [], [], []
    for seed in seeds:
        obs, info = env.reset(seed=int(seed))
        policy.reset(int(seed))
        shortest = info["shortest_path"]
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(policy.act(obs).action)
        successes.append(bool(terminated))
        lengths.append(info["steps"])
        if terminated:
            ratios.append(info["steps"] / shortest)
    return {**_summary(successes, ratios, lengths), "successes": successes, "ratios": ratios, "lengths": lengths}


def _summary(successes, ratios, lengths) -> dict:
    return {
        "episodes": len(successes),
        "success_rate": float(np.mean(successes)),
        "path_ratio": float(np.mean(ratios)) if ratios else float("nan"),
        "mean_steps": float(np.mean(lengths)),
    }


def evaluate_policy(policy, grid_size: int, obstacle_fraction: float, n_maps: int,
                    seed_base: int = EVAL_SEED_BASE) -> dict:
    return _summary_only(run_episodes(policy, grid_size, obstacle_fraction, range(seed_base, seed_base + n_maps)))


def _summary_only(result: dict) -> dict:
    return {k: result[k] for k in ("episodes", "success_rate", "path_ratio", "mean_steps")}


def evaluate_random(grid_size: int, obstacle_fraction: float, n_maps: int,
                    seed_base: int = EVAL_SEED_BASE, seed: int = 0, workers: int = 1, progress: bool = False) -> dict:
    return _evaluate_over_workers({"kind": "random", "seed": seed}, grid_size, obstacle_fraction, n_maps, seed_base,
                                  workers, progress)


def evaluate_weights(state: dict, grid_size: int, obstacle_fraction: float, n_maps: int,
                     seed_base: int = EVAL_SEED_BASE, workers: int = 1, progress: bool = False) -> dict:
    """The greedy DQN with weights ``state`` on held-out maps, over ``workers`` processes (same numbers for any
    number of workers: each map is its own seed and the policy is deterministic)."""
    state = {k: v.detach().cpu().float() for k, v in state.items()}
    return _evaluate_over_workers({"kind": "dqn", "state": state}, grid_size, obstacle_fraction, n_maps, seed_base,
                                  workers, progress)


def _episodes_task(task: dict) -> dict:
    from embodied_lib.navigation.model import navigation_spec
    from embodied_lib.navigation.policy import NavigationPolicy
    from embodied_lib.runtime.runtimes import eager_runtime

    if task["kind"] == "dqn":
        spec = navigation_spec(task["grid_size"], task["obstacle_fraction"])
        model = spec.build_model()
        model.load_state_dict(task["state"])
        policy = NavigationPolicy(eager_runtime(spec, model.eval()))
    else:
        policy = RandomPolicy(task["seed"])
    return run_episodes(policy, task["grid_size"], task["obstacle_fraction"], task["maps"])


def _evaluate_over_workers(policy: dict, grid_size, obstacle_fraction, n_maps, seed_base, workers, progress) -> dict:
    maps = list(range(seed_base, seed_base + n_maps))
    tasks = [{**policy, "grid_size": grid_size, "obstacle_fraction": obstacle_fraction, "maps": part}
             for part in chunks(maps, workers)]
    parts = map_tasks(_episodes_task, tasks, workers, [len(t["maps"]) for t in tasks], desc="evaluation",
                      unit="episodes", progress=progress)
    return _summary([ok for p in parts for ok in p["successes"]], [r for p in parts for r in p["ratios"]],
                    [n for p in parts for n in p["lengths"]])
