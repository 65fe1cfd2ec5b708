"""Demonstrations of the scripted expert in TabletopEnv, stored as compressed shards in data/.

Each step records (camera image, robot state, expert action). To teach recovery, the executed
action is the expert's plus Gaussian noise with probability ``noise_prob`` (DART-style), and its
gripper command is flipped with probability ``gripper_flip_prob`` (a grasp closed in the wrong
place, or let go), while the label stays the clean expert action: the data then shows how to
recover from the mistakes a learned policy makes, not only the expert's perfect path. Shards: ``shard_XXX.npz`` with ``image`` uint8 [N, 400, 400, 3],
``state`` float32 [N, 10], ``action`` float32 [N, 4], ``episode`` int32 [N]; plus ``dataset_card.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from embodied_lib.config import TRAIN_SEED_BASE
from embodied_lib.manipulation.env import TabletopEnv
from embodied_lib.manipulation.expert import scripted_expert_action
from embodied_lib.parallel import map_tasks

SHARD_EPISODES = 25


def _record_shard(task: dict) -> dict:
    """One shard: its episodes recorded and written; what the dataset card needs back."""
    env = TabletopEnv()
    first_scene = TRAIN_SEED_BASE + task["seed"] * 100_000
    buffers = {"image": [], "state": [], "action": [], "episode": []}
    successes, frames = [], 0
    for ep in task["episodes"]:
        rng = np.random.default_rng([task["seed"], ep])   # per episode: the same noise whichever worker records it
        obs, _ = env.reset(seed=first_scene + ep)
        done, info = False, {}
        while not done:
            label = scripted_expert_action(env)
            buffers["image"].append(obs["image"])
            buffers["state"].append(obs["state"])
            buffers["action"].append(label)
            buffers["episode"].append(ep)
            executed = label.copy()
            if rng.random() < task["noise_prob"]:
                executed[:3] = np.clip(executed[:3] + rng.normal(0, task["noise_std"], 3), -1, 1)
            if rng.random() < task["gripper_flip_prob"]:
                executed[3] = -executed[3]
            obs, _, terminated, truncated, info = env.step(executed)
            frames += 1
            done = terminated or truncated
        successes.append(bool(info["success"]))
    env.close()
    path = Path(task["out_dir"]) / f"shard_{task['shard']:03d}.npz"
    np.savez_compressed(path, image=np.stack(buffers["image"]), state=np.stack(buffers["state"]),
                        action=np.stack(buffers["action"]), episode=np.array(buffers["episode"], np.int32))
    return {"file": path.name, "successes": successes, "frames": frames}


def generate_demonstrations(out_dir, episodes: int, seed: int = 0, noise_prob: float = 0.3, noise_std: float = 0.3,
                            gripper_flip_prob: float = 0.05, progress: bool = True, workers: int = 1,
                            shard_episodes: int = SHARD_EPISODES) -> dict:
    """Record ``episodes`` expert demonstrations into ``out_dir``, one shard of ``shard_episodes`` per task over
    ``workers`` processes; every episode has its own seeds, so the files do not depend on ``workers``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("shard_*.npz"):
        old.unlink()
    started = time.perf_counter()
    first_scene = TRAIN_SEED_BASE + seed * 100_000
    tasks = [{"out_dir": str(out_dir), "shard": i, "episodes": list(range(start, min(start + shard_episodes, episodes))),
              "seed": seed, "noise_prob": noise_prob, "noise_std": noise_std, "gripper_flip_prob": gripper_flip_prob}
             for i, start in enumerate(range(0, episodes, shard_episodes))]
    shards = map_tasks(_record_shard, tasks, workers, [len(t["episodes"]) for t in tasks], desc="demonstrations",
                       unit="episodes", progress=progress)
    successes = [ok for shard in shards for ok in shard["successes"]]
    card = {"episodes": episodes, "frames": sum(s["frames"] for s in shards), "shards": [s["file"] for s in shards],
            "seed": seed, "episode_seeds": [first_scene, first_scene + episodes - 1],
            "expert_success_rate": float(np.mean(successes)), "noise_prob": noise_prob, "noise_std": noise_std,
            "gripper_flip_prob": gripper_flip_prob, "workers": workers,
            "seconds": round(time.perf_counter() - started, 1),
            "fields": {"image": "uint8 [N, 400, 400, 3] RGB", "state": "float32 [N, 10]",
                       "action": "float32 [N, 4] clean expert label", "episode": "int32 [N]"}}
    (out_dir / "dataset_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def load_demonstrations(data_dir, image_transform=None) -> dict[str, np.ndarray]:
    """All shards concatenated; ``image_transform`` (e.g. the training's pooling) is applied shard by
    shard, so full-size frames of the whole set never sit in memory at once."""
    data_dir = Path(data_dir)
    shards = sorted(data_dir.glob("shard_*.npz"))
    if not shards:
        raise FileNotFoundError(f"no demonstration shards in {data_dir}; run notebook 02 (or generate_demonstrations)")
    parts = []
    for path in shards:
        with np.load(path) as shard:
            part = {k: shard[k] for k in ("image", "state", "action", "episode")}
        if image_transform is not None:
            part["image"] = image_transform(part["image"])
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
