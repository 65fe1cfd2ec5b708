"""Closed-loop success on held-out tabletop scenes, for any policy (``embodied_lib.policy.Policy``).

``evaluate_closed_loop`` runs the trained network, the scripted expert and a random policy on the
same scenes and, given the run folder, records the result in its ``metrics.json``: the notebook and
the CLI write the same file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from embodied_lib.config import EVAL_SEED_BASE
from embodied_lib.manipulation.env import TabletopEnv
from embodied_lib.manipulation.expert import ExpertPolicy
from embodied_lib.manipulation.model import manipulation_spec
from embodied_lib.manipulation.policy import ManipulationPolicy, RandomPolicy
from embodied_lib.runtime.runtimes import eager_runtime

MAX_STEPS = 80


def rollout(policy, seeds, env: TabletopEnv | None = None, keep_success_frames: bool = False) -> dict:
    """Success rate of ``policy`` on the scenes ``seeds``; optionally the camera frames of the first
    successful episode (kept while running, so nothing is replayed)."""
    own_env = env is None
    env = env or TabletopEnv(max_steps=MAX_STEPS)
    successes, success_frames = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        policy.reset()
        frames = [obs["image"]] if keep_success_frames and not success_frames else None
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.act(obs).action)
            done = terminated or truncated
            if frames is not None:
                frames.append(obs["image"])
        successes.append(bool(info["success"]))
        if frames is not None and info["success"]:
            success_frames = frames
    if own_env:
        env.close()
    return {"episodes": len(successes), "success_rate": float(np.mean(successes)), "successes": successes,
            "frames": success_frames}


def record_episode(policy, seed: int, env: TabletopEnv | None = None) -> tuple[list, list[str], bool]:
    """One episode of ``policy`` on scene ``seed``: the camera frame after every step, a title per frame
    (step, action, gripper), and whether it succeeded: what notebook 02's rollout viewer shows."""
    own_env = env is None
    env = env or TabletopEnv(max_steps=MAX_STEPS)
    obs, _ = env.reset(seed=int(seed))
    policy.reset()
    frames, titles = [obs["image"]], [f"scene {seed}, step 0"]
    done, info = False, {}
    while not done:
        action = np.asarray(policy.act(obs).action, dtype=float)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        frames.append(obs["image"])
        titles.append(f"scene {seed}, step {len(frames) - 1}: move ({action[0]:+.2f}, {action[1]:+.2f}, "
                      f"{action[2]:+.2f}), gripper {'close' if action[3] > 0 else 'open'}"
                      + (" - lifted" if info.get("success") else ""))
    if own_env:
        env.close()
    return frames, titles, bool(info.get("success"))


def evaluate_closed_loop(model, episodes: int, seed_base: int = EVAL_SEED_BASE, seed: int = 0,
                         out_dir=None) -> dict:
    """The policy, the expert and a random policy on the same held-out scenes.

    Returns ``{"policy" | "expert" | "random": {episodes, success_rate}, "success_frames": [...]}``;
    with ``out_dir`` (the training run folder) also stores the three results as ``closed_loop`` in
    its metrics.json."""
    seeds = range(seed_base, seed_base + episodes)
    network = ManipulationPolicy(eager_runtime(manipulation_spec(), model))
    expert_env = TabletopEnv(max_steps=MAX_STEPS)
    runs = {"policy": rollout(network, seeds, keep_success_frames=True),
            "expert": rollout(ExpertPolicy(expert_env), seeds, env=expert_env),
            "random": rollout(RandomPolicy(seed), seeds)}
    expert_env.close()
    summary = {name: {k: r[k] for k in ("episodes", "success_rate")} for name, r in runs.items()}
    if out_dir is not None:
        path = Path(out_dir) / "metrics.json"
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**metrics, "closed_loop": summary}, indent=2))
    return {**summary, "success_frames": runs["policy"]["frames"]}
