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
from torch.utils.data import BatchSampler, DistributedSampler

from embodied_lib import distributed
from embodied_lib.cli import int_in, require_writable
from embodied_lib.config import DATA_DIR, RUNS_DIR, get_config, seed_everything
from embodied_lib.manipulation.demonstrations import (DEMONSTRATION_SHARDS, generate_demonstrations,
                                                      load_demonstrations, record_corrections)
from embodied_lib.manipulation.evaluate import evaluate_closed_loop
from embodied_lib.manipulation.model import manipulation_spec, pool_frames  # noqa: F401 (pool_frames: tests)
from embodied_lib.manipulation.reference import reference_state
from embodied_lib.progress import progress_bar
from embodied_lib.spec import save_checkpoint


NOISE_PATTERNS = 64
_noise_bank: dict[tuple, torch.Tensor] = {}


def _noise(shape: tuple) -> torch.Tensor:
    """A fixed bank of pixel-noise patterns (std 0.01, seed 0): drawing 30,000 normals per sample took 12 % of a
    training step on 2 cores; a pattern picked and shifted by the sample's seed is as good a perturbation."""
    if shape not in _noise_bank:
        _noise_bank[shape] = 0.01 * torch.randn((NOISE_PATTERNS, *shape), generator=torch.Generator().manual_seed(0))
    return _noise_bank[shape]


def augment(pooled: torch.Tensor, seeds) -> torch.Tensor:
    """Photometric noise, drawn per sample from its own seed: a sample gets the same augmentation whichever
    process of a distributed run trains on it, so one process and N processes see the same data. Brightness
    (gain 0.9-1.1), offset (-0.05-0.05) and pixel noise (a bank pattern, rolled along the width)."""
    bank = _noise(tuple(pooled.shape[1:]))
    draws = np.array([np.random.default_rng(int(seed)).random(2) for seed in seeds], dtype=np.float32)
    gain = torch.from_numpy(1.0 + 0.2 * (draws[:, 0] - 0.5)).view(-1, 1, 1, 1)
    bias = torch.from_numpy(0.1 * (draws[:, 1] - 0.5)).view(-1, 1, 1, 1)
    noise = torch.stack([bank[int(seed) % NOISE_PATTERNS].roll(int(seed) // NOISE_PATTERNS % pooled.shape[-1], -1)
                         for seed in seeds])
    return (pooled * gain + bias + noise).clamp_(0.0, 1.0)


def load_pooled(data_dir: Path, pattern: str = "shard_*.npz") -> dict[str, np.ndarray]:
    """The demonstrations (or one DAgger round's shards) with their frames pooled as training reads them."""
    return load_demonstrations(data_dir, pooled=True, pattern=pattern)


class _OnPooled(torch.nn.Module):
    """ManipulationNet on pooled frames as its forward, so DistributedDataParallel sees the training call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pooled, state):
        return self.model.forward_pooled(pooled, state)


def train_bc(cfg: dict, data_dir: Path, out_dir: Path | None = None, progress: bool = True,
             ctx: distributed.Context | None = None, init_state: dict | None = None, epochs: int | None = None,
             data: dict | None = None, desc: str = "behaviour cloning", spec=None):
    """Returns ``(model, metrics)``; writes runs/manipulation (checkpoint + metrics) with ``out_dir``.

    ``data``: the pooled frames already loaded (``load_pooled``), else they are read from ``data_dir``;
    ``init_state`` and ``epochs``: where a DAgger round starts from and how long it trains (default: fresh
    weights, ``cfg["epochs"]``); ``spec``: the network's shape (default manipulation_spec(); a structurally pruned one
    is fine-tuned from its pruned weights this way).

    ``cfg["device"]``: auto, cpu, cuda or cuda:N; ``cfg["bf16"]``: bfloat16 autocast on CUDA. Under torchrun
    (``ctx`` several processes) each process trains on its shard of every global batch of ``cfg["batch_size"]``
    (DistributedSampler), DistributedDataParallel averages the gradients, and only the first process writes.
    The checkpoint is always written from CPU float32."""
    ctx = ctx or distributed.setup(cfg.get("device", "auto"))
    if cfg["batch_size"] % ctx.world_size:
        raise ValueError(f"batch_size {cfg['batch_size']} is not a multiple of the {ctx.world_size} processes")
    seed_everything(cfg["seed"])   # the same initial weights in every process
    started = time.perf_counter()
    data = data if data is not None else load_pooled(data_dir)
    episodes = np.unique(data["episode"])
    val_episodes = episodes[:: max(2, int(round(1 / cfg["val_fraction"])))]
    is_val = np.isin(data["episode"], val_episodes)
    images = torch.from_numpy(data["image"])          # float16 pooled frames, float32 per batch
    states, actions = torch.from_numpy(data["state"]), torch.from_numpy(data["action"])
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)

    spec = spec or manipulation_spec()
    model = spec.build_model()
    if init_state is not None:   # a DAgger round goes on from the last round's weights
        model.load_state_dict(init_state)
    model.train()
    epochs = epochs or cfg["epochs"]
    net = distributed.wrap(_OnPooled(model), ctx)
    device, bf16 = ctx.device, bool(cfg.get("bf16")) and ctx.device.type == "cuda"
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)  # settle at the end
    sampler = DistributedSampler(range(len(train_idx)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=cfg["seed"], drop_last=True)
    batches = BatchSampler(sampler, cfg["batch_size"] // ctx.world_size, drop_last=False)   # equal shards: the
    # sampler gives every process the same number of samples, so their last, partial batches match too
    history = {"epoch": [], "train_loss": [], "val_loss": []}

    def val_loss() -> float:
        model.eval()
        losses = []
        with torch.no_grad():
            for chunk in np.array_split(val_idx, max(1, len(val_idx) // 64)):
                pred = model.forward_pooled(images[chunk].float().to(device), states[chunk].to(device))
                losses.append(F.mse_loss(pred.float(), actions[chunk].to(device), reduction="sum").item())
        model.train()
        return sum(losses) / max(1, len(val_idx) * actions.shape[1])

    bar = progress_bar(range(epochs), desc=desc, unit="epochs",
                       disable=not (progress and ctx.is_main))
    loop_started = time.perf_counter()
    for epoch in bar:
        sampler.set_epoch(epoch)
        total, count = 0.0, 0
        for positions in batches:
            idx = train_idx[positions]
            seeds = (cfg["seed"] * 1_000_003 + epoch) * 10_000_019 + np.asarray(positions)
            x = augment(images[idx].float(), seeds).to(device, non_blocking=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                pred = net(x, states[idx].to(device))
            loss = F.mse_loss(pred.float(), actions[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        schedule.step()
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(distributed.mean_over_processes(total, count, ctx))
        history["val_loss"].append(val_loss())
        bar.set_postfix(train=f"{history['train_loss'][-1]:.4f}", val=f"{history['val_loss'][-1]:.4f}")
    model = model.to("cpu").float().eval()
    metrics = {"config": cfg, "frames": int(len(images)), "train_frames": int(len(train_idx)),
               "val_frames": int(len(val_idx)), "train_seconds": time.perf_counter() - started,
               # global frames through the network per second of the training loop (all processes together)
               "frames_per_second": len(history["epoch"]) * len(sampler) * ctx.world_size / max(
                   1e-9, time.perf_counter() - loop_started),
               "device": str(device), "bf16": bf16, "processes": ctx.world_size,
               "offline_val_mse": history["val_loss"][-1], "history": history}
    if out_dir is not None and ctx.is_main:
        save_checkpoint(spec, model, out_dir)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return model, metrics


def train_policy(cfg: dict, data_dir: Path, out_dir: Path | None = None, progress: bool = True,
                 ctx: distributed.Context | None = None):
    """Behaviour cloning on the demonstrations in ``data_dir``, then ``cfg["dagger_rounds"]`` rounds of DAgger:
    the policy drives ``cfg["dagger_episodes"]`` new training scenes (the expert on ``cfg["dagger_expert_prob"]``
    of the steps), the expert labels every state it visits, and training goes on for ``cfg["dagger_epochs"]``
    epochs on everything recorded so far. The expert's demonstrations, even with DART noise, never show what to
    do after the learner's own mistakes (closing beside the cube, drifting up while it retries); the corrections
    do. Measured from fresh weights (60 demonstrations, 20 epochs, 2 cores, 20-30 held-out scenes): cloning alone
    70-73 %, with one round of 30 corrected scenes 85-87 % in two runs and 33-65 % in three others (other noise
    draws, 8-10 epochs per round): better on average, not reliable at this size.

    ``cfg["warm_start"]``: None (fresh weights) or "reference" (``embodied_lib.manipulation.reference``: the full
    profile's weights, checked against their sha256 record). Returns ``(model, metrics)`` like ``train_bc``;
    ``metrics["dagger"]`` has one entry per round and ``metrics["history"]`` runs over all rounds (its ``round``
    marks which)."""
    ctx = ctx or distributed.setup(cfg.get("device", "auto"))
    started = time.perf_counter()
    data = load_pooled(data_dir, DEMONSTRATION_SHARDS)   # not the rounds a run before this one left there
    warm, record = None, None
    if cfg["warm_start"] == "reference":   # the quick profile: from the full profile's weights (reference.py)
        warm, record = reference_state()
    elif cfg["warm_start"] is not None:
        raise ValueError(f"warm_start must be None or 'reference', not {cfg['warm_start']!r}")
    model, metrics = train_bc(cfg, data_dir, progress=progress, ctx=ctx, data=data, init_state=warm,
                              desc="behaviour cloning" + (" (from the reference weights)" if warm else ""))
    history = {k: list(v) for k, v in metrics["history"].items()}
    history["round"] = [0] * len(history["epoch"])
    rounds, first_episode = [], int(data["episode"].max()) + 1
    for r in range(1, cfg["dagger_rounds"] + 1):
        if ctx.is_main:
            rounds.append(record_corrections(data_dir, model, cfg["dagger_episodes"], r, first_episode,
                                             seed=cfg["seed"], expert_prob=cfg["dagger_expert_prob"],
                                             workers=cfg["workers"], progress=progress))
        distributed.barrier(ctx)   # the other processes wait for the round's data
        first_episode += cfg["dagger_episodes"]
        new = load_pooled(data_dir, f"shard_r{r}_*.npz")
        data = {k: np.concatenate([data[k], new[k]]) for k in data}
        model, metrics = train_bc(cfg, data_dir, progress=progress, ctx=ctx, data=data,
                                  init_state=model.state_dict(), epochs=cfg["dagger_epochs"], desc=f"DAgger round {r}")
        part = metrics["history"]
        history["epoch"] += [history["epoch"][-1] + e for e in part["epoch"]]   # epochs count on across rounds
        history["train_loss"] += part["train_loss"]
        history["val_loss"] += part["val_loss"]
        history["round"] += [r] * len(part["epoch"])
    metrics.update({"train_seconds": time.perf_counter() - started, "history": history, "dagger": rounds,
                    "warm_start": record and {k: record[k] for k in ("command", "commit", "closed_loop", "sha256")}})
    if out_dir is not None and ctx.is_main:
        save_checkpoint(manipulation_spec(), model, out_dir)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return model, metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate demonstrations, train ManipulationNet (behaviour "
                                                 "cloning, then DAgger rounds), evaluate it. "
                                                 "Several processes: torchrun --nproc-per-node N -m "
                                                 "embodied_lib.manipulation.train ... (README: Bigger runs).")
    parser.add_argument("--profile", default=None, help="quick or full (default: $EMBODIED_PROFILE or quick)")
    parser.add_argument("--data", type=Path, default=DATA_DIR / "manipulation", help="where demonstrations go")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "manipulation", help="checkpoint/metrics folder")
    parser.add_argument("--episodes", type=int_in(2, 100_000),
                        help="override the profile's number of demonstrations (>= 2: one goes to validation)")
    parser.add_argument("--epochs", type=int_in(1, 10_000), help="override the profile's training epochs")
    parser.add_argument("--batch-size", type=int_in(1, 65_536), help="override the global batch (all processes)")
    parser.add_argument("--dagger-rounds", type=int_in(0, 100), help="override the profile's DAgger rounds (0: "
                        "behaviour cloning on the demonstrations only)")
    parser.add_argument("--dagger-episodes", type=int_in(1, 100_000), help="override the profile's scenes per "
                        "DAgger round")
    parser.add_argument("--from-scratch", action="store_true", help="fresh weights even where the profile "
                        "warm-starts from the reference weights (the quick profile)")
    parser.add_argument("--eval-episodes", type=int_in(1, 100_000), help="override the profile's held-out scenes")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), help="override the profile's seed (demonstration scenes, "
                        "initial weights, batch order, augmentation)")
    parser.add_argument("--device", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CUDA (ignored on the CPU)")
    parser.add_argument("--workers", type=int_in(1, 256), help="processes collecting demonstrations and evaluating")
    parser.add_argument("--reuse-data", action="store_true", help="train on the demonstrations already in --data")
    parser.add_argument("--no-eval", action="store_true", help="skip the closed-loop evaluation")
    args = parser.parse_args(argv)
    require_writable(parser, args.data, args.out)
    overrides = {k: v for k, v in {"episodes": args.episodes, "epochs": args.epochs, "batch_size": args.batch_size,
                                   "dagger_rounds": args.dagger_rounds, "dagger_episodes": args.dagger_episodes,
                                   "eval_episodes": args.eval_episodes, "seed": args.seed, "device": args.device,
                                   "bf16": args.bf16 or None, "workers": args.workers}.items() if v is not None}
    if args.from_scratch:
        overrides["warm_start"] = None
    cfg = get_config("manipulation", args.profile, **overrides)
    try:
        ctx = distributed.setup(cfg["device"])   # a clear error before any work for a GPU that is not there
    except (RuntimeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        card = None
        if ctx.is_main and not args.reuse_data:
            card = generate_demonstrations(args.data, cfg["episodes"], seed=cfg["seed"], workers=cfg["workers"])
        distributed.barrier(ctx)   # the other processes wait for the data
        model, metrics = train_policy(cfg, args.data, args.out, ctx=ctx)
        if ctx.is_main:
            summary = {"frames": metrics["frames"], "offline_val_mse": metrics["offline_val_mse"],
                       "train_seconds": round(metrics["train_seconds"]), "processes": ctx.world_size,
                       "frames_per_second": round(metrics["frames_per_second"], 1)}
            if card:
                summary["demonstrations"] = card["episodes"]
            if not args.no_eval:
                closed_loop = evaluate_closed_loop(model, cfg["eval_episodes"], seed=cfg["seed"], out_dir=args.out,
                                                   workers=cfg["workers"])
                summary.update({k: closed_loop[k] for k in ("policy", "expert", "random")})
            print(json.dumps(summary, indent=2))
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
