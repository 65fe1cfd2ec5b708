"""Demonstrations of the scripted expert in TabletopEnv, stored as compressed shards in data/.

Each step records (camera image, robot state, expert action). To teach recovery, the executed
action is the expert's plus Gaussian noise with probability ``noise_prob`` (DART-style), and its
gripper command is flipped with probability ``gripper_flip_prob`` (a grasp closed in the wrong
place, or let go), while the label stays the clean expert action: the data then shows how to
recover from the mistakes a learned policy makes, not only the expert's perfect path. Shards: ``shard_XXX.npz`` with ``image`` uint8 [N, 400, 400, 3],
``pooled`` float16 [N, 3, 100, 100] (the frames as training reads them, pooled by the recording workers),
``state`` float32 [N, 10], ``action`` float32 [N, 4], ``episode`` int32 [N]; plus ``dataset_card.json``.
"""
from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from embodied_lib.config import TRAIN_SEED_BASE
from embodied_lib.manipulation.env import TabletopEnv
from embodied_lib.manipulation.expert import scripted_expert_action
from embodied_lib.manipulation.model import pool_frames
from embodied_lib.manipulation.policy import ManipulationPolicy
from embodied_lib.parallel import map_tasks

SHARD_EPISODES = 25
DEMONSTRATION_SHARDS = "shard_[0-9][0-9][0-9].npz"   # the expert's; DAgger rounds are shard_r<round>_XXX.npz


def _record_shard(task: dict) -> dict:
    """One shard: its episodes recorded and written; what the dataset card needs back."""
    env = TabletopEnv()
    first_scene = TRAIN_SEED_BASE + task["seed"] * 100_000
    learner = ManipulationPolicy.from_weights(task["policy_state"]) if task.get("policy_state") else None
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
            if learner is not None and rng.random() >= task["expert_prob"]:
                executed = np.asarray(learner.act(obs).action, dtype=np.float32)   # the learner drives
            elif rng.random() < task["noise_prob"]:
                executed[:3] = np.clip(executed[:3] + rng.normal(0, task["noise_std"], 3), -1, 1)
            if rng.random() < task["gripper_flip_prob"]:
                executed[3] = -executed[3]
            obs, _, terminated, truncated, info = env.step(executed)
            frames += 1
            done = terminated or truncated
        successes.append(bool(info["success"]))
    env.close()
    path = Path(task["out_dir"]) / f"shard_{task['prefix']}{task['shard']:03d}.npz"
    images = np.stack(buffers["image"])
    save_shard(path, image=images, pooled=pool_frames(images), state=np.stack(buffers["state"]),
               action=np.stack(buffers["action"]), episode=np.array(buffers["episode"], np.int32))
    return {"file": path.name, "successes": successes, "frames": frames}


def save_shard(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` at zlib level 1: rendered frames are flat colour, so level 1 writes them 2.7x faster
    (measured 1.1 s against 3.1 s for a 25-episode shard) for a file 1.4x larger; ``np.load`` reads it the same."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


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
              "seed": seed, "noise_prob": noise_prob, "noise_std": noise_std, "gripper_flip_prob": gripper_flip_prob,
              "prefix": ""}
             for i, start in enumerate(range(0, episodes, shard_episodes))]
    shards = map_tasks(_record_shard, tasks, workers, [len(t["episodes"]) for t in tasks], desc="demonstrations",
                       unit="episodes", progress=progress)
    successes = [ok for shard in shards for ok in shard["successes"]]
    card = {"episodes": episodes, "frames": sum(s["frames"] for s in shards), "shards": [s["file"] for s in shards],
            "seed": seed, "episode_seeds": [first_scene, first_scene + episodes - 1],
            "expert_success_rate": float(np.mean(successes)), "noise_prob": noise_prob, "noise_std": noise_std,
            "gripper_flip_prob": gripper_flip_prob, "workers": workers,
            "seconds": round(time.perf_counter() - started, 1),
            "fields": {"image": "uint8 [N, 400, 400, 3] RGB",
                       "pooled": "float16 [N, 3, 100, 100]: image / 255, average-pooled 4x (ManipulationNet.pool)",
                       "state": "float32 [N, 10]",
                       "action": "float32 [N, 4] clean expert label", "episode": "int32 [N]"}}
    (out_dir / "dataset_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def record_corrections(out_dir, model, episodes: int, round_: int, first_episode: int, seed: int = 0,
                       expert_prob: float = 0.5,
                       progress: bool = True, workers: int = 1, shard_episodes: int = SHARD_EPISODES) -> dict:
    """DAgger (Ross et al., 2011): ``episodes`` new training scenes where the learned ``model`` drives (the
    expert's own action on a fraction ``expert_prob`` of the steps, so an episode still gets to the later phases),
    every visited state labelled with the expert's action. The learner's own mistakes (closing beside the cube,
    drifting up while retrying) are states the expert's demonstrations never visit; this is where they get a label.
    Written next to the demonstrations as ``shard_r{round_}_XXX.npz`` (the same format; ``load_demonstrations``
    reads both). Episodes (and their training scenes) are numbered from ``first_episode``: after the
    demonstrations' and the earlier rounds', so every episode is a scene of its own."""
    out_dir = Path(out_dir)
    for old in out_dir.glob(f"shard_r{round_}_*.npz"):
        old.unlink()
    started = time.perf_counter()
    state = {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    first = first_episode
    tasks = [{"out_dir": str(out_dir), "shard": i, "prefix": f"r{round_}_", "policy_state": state,
              "episodes": list(range(first + start, first + min(start + shard_episodes, episodes))), "seed": seed,
              "noise_prob": 0.0, "noise_std": 0.0, "gripper_flip_prob": 0.0, "expert_prob": expert_prob}
             for i, start in enumerate(range(0, episodes, shard_episodes))]
    shards = map_tasks(_record_shard, tasks, workers, [len(t["episodes"]) for t in tasks],
                       desc=f"DAgger round {round_}", unit="episodes", progress=progress)
    successes = [ok for shard in shards for ok in shard["successes"]]
    return {"round": round_, "episodes": episodes, "frames": sum(s["frames"] for s in shards),
            "expert_prob": expert_prob, "success_rate": float(np.mean(successes)),
            "seconds": round(time.perf_counter() - started, 1)}


def load_demonstrations(data_dir, pooled: bool = False, pattern: str = "shard_*.npz") -> dict[str, np.ndarray]:
    """The shards matching ``pattern`` (default: all, demonstrations and DAgger rounds) concatenated. ``pooled``:
    ``image`` is the shard's ``pooled`` frames (what training reads; the full-size ones are then never
    decompressed: measured 9 s of reading and 7 s of pooling for 60 demonstrations on 2 cores)."""
    data_dir = Path(data_dir)
    shards = sorted(data_dir.glob(pattern))
    if not shards:
        raise FileNotFoundError(f"no demonstration shards in {data_dir}; run notebook 02 (or generate_demonstrations)")
    parts = []
    for path in shards:
        with np.load(path) as shard:   # an npz member is decompressed only when read
            part = {k: shard[k] for k in ("state", "action", "episode")}
            part["image"] = shard["pooled"] if pooled else shard["image"]
        parts.append(part)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
