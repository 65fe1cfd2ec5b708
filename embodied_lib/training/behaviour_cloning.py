"""Behaviour cloning of ManipulationNet on expert demonstrations, and closed-loop evaluation.

Loss: MSE between the network's tanh outputs and the expert's action (gripper as -1/+1).
Frames are average-pooled once when loaded (the model's own first layer, ``forward_pooled`` runs
the rest), so an epoch touches 16x fewer pixels. Augmentation is photometric only (brightness,
contrast, pixel noise): the camera is fixed, so where the cube is in the image *is* where it is
on the table, and one pooled pixel is ~7 mm, as much as the grasp can be off; a shift would teach
the wrong position. Episodes are split train/validation.

    python -m embodied_lib.training.behaviour_cloning --profile quick
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from embodied_lib.config import DATA_DIR, EVAL_SEED_BASE, RUNS_DIR, get_config, seed_everything
from embodied_lib.data.demonstrations import generate_demonstrations, load_demonstrations
from embodied_lib.envs.tabletop import TabletopEnv, scripted_expert_action
from embodied_lib.models.manipulation import POOL, frames_to_tensor, manipulation_spec
from embodied_lib.models.spec import save_checkpoint


def pool_frames(frames: np.ndarray, chunk: int = 256) -> np.ndarray:
    """uint8 [N, 400, 400, 3] -> float16 [N, 3, 100, 100]: what ManipulationNet.pool makes of them."""
    out = [F.avg_pool2d(frames_to_tensor(frames[i:i + chunk]), POOL).half() for i in range(0, len(frames), chunk)]
    return torch.cat(out).numpy()


def augment(pooled: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    b = pooled.shape[0]
    gain = 1.0 + 0.2 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    bias = 0.1 * (torch.rand(b, 1, 1, 1, generator=generator) - 0.5)
    pooled = pooled * gain + bias + 0.01 * torch.randn(pooled.shape, generator=generator)
    return pooled.clamp_(0.0, 1.0)


def train_bc(cfg: dict, data_dir: Path, out_dir: Path | None = None, progress: bool = True):
    """Returns ``(model, metrics)``; writes runs/manipulation (checkpoint + metrics) with ``out_dir``."""
    seed_everything(cfg["seed"])
    started = time.perf_counter()
    data = load_demonstrations(data_dir, image_transform=pool_frames)
    episodes = np.unique(data["episode"])
    val_episodes = episodes[:: max(2, int(round(1 / cfg["val_fraction"])))]
    is_val = np.isin(data["episode"], val_episodes)
    images = torch.from_numpy(data["image"])          # float16 pooled frames, float32 per batch
    states, actions = torch.from_numpy(data["state"]), torch.from_numpy(data["action"])
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)

    spec = manipulation_spec()
    model = spec.build_model().train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg["epochs"])  # settle at the end
    generator = torch.Generator().manual_seed(cfg["seed"])
    history = {"epoch": [], "train_loss": [], "val_loss": []}

    def val_loss() -> float:
        model.eval()
        losses = []
        with torch.no_grad():
            for chunk in np.array_split(val_idx, max(1, len(val_idx) // 64)):
                pred = model.forward_pooled(images[chunk].float(), states[chunk])
                losses.append(F.mse_loss(pred, actions[chunk], reduction="sum").item())
        model.train()
        return sum(losses) / max(1, len(val_idx) * actions.shape[1])

    bar = tqdm(range(cfg["epochs"]), desc="behaviour cloning", disable=not progress)
    for epoch in bar:
        order = torch.randperm(len(train_idx), generator=generator).numpy()
        total = 0.0
        for batch in np.array_split(train_idx[order], max(1, len(train_idx) // cfg["batch_size"])):
            pred = model.forward_pooled(augment(images[batch].float(), generator), states[batch])
            loss = F.mse_loss(pred, actions[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        schedule.step()
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(total / len(train_idx))
        history["val_loss"].append(val_loss())
        bar.set_postfix(train=f"{history['train_loss'][-1]:.4f}", val=f"{history['val_loss'][-1]:.4f}")
    model.eval()
    metrics = {"config": cfg, "frames": int(len(images)), "train_frames": int(len(train_idx)),
               "val_frames": int(len(val_idx)), "train_seconds": time.perf_counter() - started,
               "offline_val_mse": history["val_loss"][-1], "history": history}
    if out_dir is not None:
        save_checkpoint(spec, model, out_dir)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return model, metrics


def rollout(policy, seeds, max_steps: int = 80, keep_success_frames: bool = False) -> dict:
    """Success rate of ``policy(obs, env) -> action`` on the scenes ``seeds``; optionally the
    camera frames of the first successful episode (kept while running, so nothing is replayed)."""
    env = TabletopEnv(max_steps=max_steps)
    successes, success_frames = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        frames = [obs["image"]] if keep_success_frames and not success_frames else None
        done, info = False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs, env))
            done = terminated or truncated
            if frames is not None:
                frames.append(obs["image"])
        successes.append(bool(info["success"]))
        if frames is not None and info["success"]:
            success_frames = frames
    env.close()
    return {"episodes": len(successes), "success_rate": float(np.mean(successes)), "successes": successes,
            "frames": success_frames}


def network_policy(model):
    def act(obs, env):
        with torch.no_grad():
            out = model(frames_to_tensor(obs["image"][None]), torch.from_numpy(obs["state"][None]))
        return out[0].numpy()
    return act


def evaluate_closed_loop(model, episodes: int, seed_base: int = EVAL_SEED_BASE, seed: int = 0) -> dict:
    """The policy, the expert and a random policy on the same held-out scenes."""
    seeds = range(seed_base, seed_base + episodes)
    rng = np.random.default_rng(seed)
    runs = {"policy": rollout(network_policy(model.eval()), seeds, keep_success_frames=True),
            "expert": rollout(lambda o, e: scripted_expert_action(e), seeds),
            "random": rollout(lambda o, e: rng.uniform(-1, 1, 4).astype(np.float32), seeds)}
    summary = {name: {k: r[k] for k in ("episodes", "success_rate")} for name, r in runs.items()}
    return {**summary, "success_frames": runs["policy"]["frames"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate demonstrations, train ManipulationNet, evaluate it.")
    parser.add_argument("--profile", default=None, help="quick or full (default: $EMBODIED_PROFILE or quick)")
    parser.add_argument("--data", type=Path, default=DATA_DIR / "manipulation")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "manipulation")
    args = parser.parse_args(argv)
    cfg = get_config("manipulation", args.profile)
    card = generate_demonstrations(args.data, cfg["episodes"], seed=cfg["seed"])
    model, metrics = train_bc(cfg, args.data, args.out)
    ev = evaluate_closed_loop(model, cfg["eval_episodes"])
    print(json.dumps({"demonstrations": card["episodes"], "frames": card["frames"],
                      "offline_val_mse": metrics["offline_val_mse"], "train_seconds": round(metrics["train_seconds"]),
                      **{k: ev[k] for k in ("policy", "expert", "random")}}, indent=2))


if __name__ == "__main__":
    main()
