"""Behaviour cloning of ManipulationNet on expert demonstrations, and closed-loop evaluation.

Loss: MSE between the network's tanh outputs and the expert's action (gripper as -1/+1).
Frames are average-pooled once when loaded (the model's own first layer, ``forward_pooled`` runs
the rest), so an epoch touches 16x fewer pixels. Augmentation is photometric only (brightness,
contrast, pixel noise): the camera is fixed, so where the cube is in the image *is* where it is
on the table, and one pooled pixel is ~7 mm, as much as the grasp can be off; a shift would teach
the wrong position. Episodes are split train/validation.

    python -m embodied_lib.manipulation.train --profile quick
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embodied_lib.cli import int_in, require_writable
from embodied_lib.config import DATA_DIR, RUNS_DIR, get_config, seed_everything
from embodied_lib.manipulation.demonstrations import generate_demonstrations, load_demonstrations
from embodied_lib.manipulation.evaluate import evaluate_closed_loop
from embodied_lib.manipulation.model import POOL, frames_to_tensor, manipulation_spec
from embodied_lib.progress import progress_bar
from embodied_lib.spec import save_checkpoint


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

    bar = progress_bar(range(cfg["epochs"]), desc="behaviour cloning", unit="epochs", disable=not progress)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate demonstrations, train ManipulationNet, evaluate it.")
    parser.add_argument("--profile", default=None, help="quick or full (default: $EMBODIED_PROFILE or quick)")
    parser.add_argument("--data", type=Path, default=DATA_DIR / "manipulation", help="where demonstrations go")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "manipulation", help="checkpoint/metrics folder")
    parser.add_argument("--episodes", type=int_in(2, 100_000),
                        help="override the profile's number of demonstrations (>= 2: one goes to validation)")
    parser.add_argument("--epochs", type=int_in(1, 10_000), help="override the profile's training epochs")
    parser.add_argument("--eval-episodes", type=int_in(1, 100_000), help="override the profile's held-out scenes")
    args = parser.parse_args(argv)
    require_writable(parser, args.data, args.out)
    overrides = {k: v for k, v in {"episodes": args.episodes, "epochs": args.epochs,
                                   "eval_episodes": args.eval_episodes}.items() if v is not None}
    cfg = get_config("manipulation", args.profile, **overrides)
    card = generate_demonstrations(args.data, cfg["episodes"], seed=cfg["seed"])
    model, metrics = train_bc(cfg, args.data, args.out)
    closed_loop = evaluate_closed_loop(model, cfg["eval_episodes"], seed=cfg["seed"], out_dir=args.out)
    print(json.dumps({"demonstrations": card["episodes"], "frames": card["frames"],
                      "offline_val_mse": metrics["offline_val_mse"], "train_seconds": round(metrics["train_seconds"]),
                      **{k: closed_loop[k] for k in ("policy", "expert", "random")}}, indent=2))


if __name__ == "__main__":
    main()
