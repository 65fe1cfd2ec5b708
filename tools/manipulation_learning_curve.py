"""Issue 26's learning curve: closed-loop success of behaviour cloning against the number of demonstrations.

    .venv/bin/python tools/manipulation_learning_curve.py [--episodes 25 50 100 200 500] [--epochs 15]
        [--eval-episodes 50] [--profile full] [--out runs/bench/manipulation_learning_curve.json]

The demonstrations are recorded once, for the largest count; every point trains fresh weights on the first N of
them (whole shards of 25: each episode has its own seeds, so these are exactly the files a run with N episodes
records), with the profile's recipe, the given epochs and no DAgger round, then plays the same held-out scenes.
A plot of the curve is written beside the JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from embodied_lib.cli import int_in, require_writable  # noqa: E402
from embodied_lib.config import cores_allotted, get_config  # noqa: E402
from embodied_lib.manipulation.demonstrations import SHARD_EPISODES, generate_demonstrations  # noqa: E402
from embodied_lib.manipulation.evaluate import evaluate_closed_loop  # noqa: E402
from embodied_lib.manipulation.train import train_policy  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int_in(SHARD_EPISODES, 100_000), nargs="+", default=[25, 50, 100, 200, 500],
                        help=f"demonstration counts, each a multiple of {SHARD_EPISODES} (one shard)")
    parser.add_argument("--epochs", type=int_in(1, 10_000), default=None, help="training epochs (default: the profile's)")
    parser.add_argument("--eval-episodes", type=int_in(1, 100_000), default=50, help="held-out scenes per point")
    parser.add_argument("--profile", default="full", help="the recipe's profile (default full)")
    parser.add_argument("--data", type=Path, default=None, help="where the demonstrations go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "manipulation_learning_curve.json")
    args = parser.parse_args(argv)
    if any(n % SHARD_EPISODES for n in args.episodes):
        parser.error(f"--episodes must be multiples of {SHARD_EPISODES} (whole shards), got {args.episodes}")
    require_writable(parser, args.out.parent)
    overrides = {"dagger_rounds": 0, "warm_start": None, "eval_episodes": args.eval_episodes}
    if args.epochs:
        overrides["epochs"] = args.epochs
    try:
        cfg = get_config("manipulation", args.profile, **overrides)
    except ValueError as exc:
        parser.error(str(exc))
    cfg["workers"] = min(cfg["workers"], cores_allotted())   # one process per core this run may use (make test: 1)

    with tempfile.TemporaryDirectory(prefix="learning-curve-") as tmp:
        data = args.data or Path(tmp) / "all"
        card = generate_demonstrations(data, max(args.episodes), seed=cfg["seed"], workers=cfg["workers"])
        shards = sorted(data.glob("shard_[0-9][0-9][0-9].npz"))
        points = []
        for n in sorted(args.episodes):
            subset = Path(tmp) / f"first_{n}"
            subset.mkdir()
            for shard in shards[: n // SHARD_EPISODES]:
                (subset / shard.name).symlink_to(shard.resolve())
            started = time.perf_counter()
            model, metrics = train_policy({**cfg, "episodes": n}, subset, progress=False)
            ev = evaluate_closed_loop(model, cfg["eval_episodes"], seed=cfg["seed"], workers=cfg["workers"],
                                      progress=False)
            points.append({"demonstrations": n, "train_frames": metrics["train_frames"],
                           "success_rate": ev["policy"]["success_rate"], "scenes": ev["policy"]["episodes"],
                           "offline_val_mse": round(metrics["offline_val_mse"], 5),
                           "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(points[-1]), flush=True)

    result = {"profile": args.profile, "epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "dagger_rounds": 0,
              "warm_start": None, "seed": cfg["seed"], "expert_success_rate": card["expert_success_rate"],
              "demonstration_seconds": card["seconds"], "points": points}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p["demonstrations"] for p in points], [100 * p["success_rate"] for p in points], "o-")
    ax.set_xscale("log")
    ax.set_xlabel("demonstrations (expert episodes)")
    ax.set_ylabel(f"closed-loop success on {cfg['eval_episodes']} held-out scenes (%)")
    ax.set_title(f"behaviour cloning, {cfg['epochs']} epochs, fresh weights, no DAgger")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    print(f"-> {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
