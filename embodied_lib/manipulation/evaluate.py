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
from embodied_lib.manipulation.policy import ManipulationPolicy, RandomPolicy
from embodied_lib.parallel import chunks, map_tasks

MAX_STEPS = 80


def rollout(policy, seeds, env: TabletopEnv | None = None, keep_success_frames: bool = False) -> dict:
    """Success rate of ``policy`` on the scenes ``seeds``; optionally the camera frames of the first
    successful episode (kept while running, so nothing is replayed)."""
    own_env = env is None
    env = env or TabletopEnv(max_steps=MAX_STEPS)
    successes, success_frames = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        policy.reset(int(seed))
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


def _rollout_task(task: dict) -> dict:
    """One worker's share of one policy's episodes (the network is rebuilt from its weights)."""
    env = TabletopEnv(max_steps=MAX_STEPS)
    env.observe_image = task["kind"] == "policy"   # the expert and the random policy never look: no frames to render
    if task["kind"] == "policy":
        policy = ManipulationPolicy.from_weights(task["state"])
    elif task["kind"] == "expert":
        policy = ExpertPolicy(env)
    else:
        policy = RandomPolicy(task["seed"])
    result = rollout(policy, task["scenes"], env=env, keep_success_frames=task["kind"] == "policy")
    env.close()
    return result


def evaluate_closed_loop(model, episodes: int, seed_base: int = EVAL_SEED_BASE, seed: int = 0,
                         out_dir=None, workers: int = 1, progress: bool = True) -> dict:
    """The policy, the expert and a random policy on the same held-out scenes, over ``workers`` processes
    (each scene is its own seed, so the numbers do not depend on ``workers``).

    Returns ``{"policy" | "expert" | "random": {episodes, success_rate}, "success_frames": [...]}``;
    with ``out_dir`` (the training run folder) also stores the three results as ``closed_loop`` in
    its metrics.json."""
    seeds = list(range(seed_base, seed_base + episodes))
    state = {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    tasks = [{"kind": kind, "state": state if kind == "policy" else None, "scenes": part, "seed": seed}
             for kind in ("policy", "expert", "random") for part in chunks(seeds, workers)]
    results = map_tasks(_rollout_task, tasks, workers, [len(t["scenes"]) for t in tasks], desc="closed loop",
                        unit="episodes", progress=progress)
    runs = {}
    for kind in ("policy", "expert", "random"):
        mine = [r for t, r in zip(tasks, results) if t["kind"] == kind]
        successes = [ok for r in mine for ok in r["successes"]]
        runs[kind] = {"episodes": len(successes), "success_rate": float(np.mean(successes)),
                      "frames": next((r["frames"] for r in mine if r["frames"]), [])}
    summary = {name: {k: r[k] for k in ("episodes", "success_rate")} for name, r in runs.items()}
    if out_dir is not None:
        path = Path(out_dir) / "metrics.json"
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**metrics, "closed_loop": summary}, indent=2))
    return {**summary, "success_frames": runs["policy"]["frames"]}
