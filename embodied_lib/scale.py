"""How the work scales on this machine: demonstrations, evaluation episodes and behaviour-cloning frames per
second with one worker (process) and with more, measured in one run (ratios taken inside it).

    python -m embodied_lib.scale --out runs/bench/scale.json            # what `make bench` runs
    python -m embodied_lib.scale --episodes 8 --workers 1 2 --out /tmp/scale.json

Behaviour cloning runs under torchrun (``--nproc-per-node 1`` and ``2``, gloo on the CPU); the numbers are the
trainer's own (``frames_per_second`` in its metrics.json: global frames through the network per second of the
training loop).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from embodied_lib.cli import int_in, require_writable
from embodied_lib.config import REPO_ROOT, RUNS_DIR


def demonstrations_per_second(root: Path, episodes: int, workers: int) -> dict:
    from embodied_lib.manipulation.demonstrations import generate_demonstrations

    card = generate_demonstrations(root / f"demonstrations_{workers}", episodes, seed=0, workers=workers,
                                   shard_episodes=max(1, episodes // (2 * workers)), progress=False)
    return {"workers": workers, "episodes": episodes, "frames": card["frames"], "seconds": card["seconds"],
            "episodes_per_second": round(episodes / card["seconds"], 3)}


def evaluation_per_second(episodes: int, maps: int, workers: int) -> dict:
    from embodied_lib.manipulation.evaluate import evaluate_closed_loop
    from embodied_lib.manipulation.model import manipulation_spec
    from embodied_lib.navigation.evaluate import evaluate_weights
    from embodied_lib.navigation.model import navigation_spec

    torch.manual_seed(0)
    started = time.perf_counter()
    result = evaluate_closed_loop(manipulation_spec().build_model().eval(), episodes, workers=workers, progress=False)
    manipulation_s = time.perf_counter() - started
    started = time.perf_counter()
    evaluate_weights(navigation_spec().build_model().state_dict(), 8, 0.15, maps, workers=workers)
    navigation_s = time.perf_counter() - started
    played = 3 * episodes   # policy, expert and random on each scene
    return {"workers": workers, "manipulation_episodes": played, "manipulation_seconds": round(manipulation_s, 2),
            "manipulation_episodes_per_second": round(played / manipulation_s, 3),
            "expert_success_rate": result["expert"]["success_rate"],
            "navigation_maps": maps, "navigation_seconds": round(navigation_s, 2),
            "navigation_episodes_per_second": round(maps / navigation_s, 1)}


def behaviour_cloning_frames_per_second(data: Path, out: Path, processes: int, epochs: int, batch_size: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
           "-m", "embodied_lib.manipulation.train", "--data", str(data), "--reuse-data", "--no-eval",
           "--epochs", str(epochs), "--batch-size", str(batch_size), "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun with {processes} process(es) failed:\n{proc.stderr[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    return {"processes": processes, "frames_per_second": round(m["frames_per_second"], 1),
            "train_loss": m["history"]["train_loss"], "batch_size": batch_size, "epochs": epochs}


def measure(episodes: int, maps: int, workers: list[int], epochs: int, batch_size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="embodied-scale-") as tmp:
        root = Path(tmp)
        demos = [demonstrations_per_second(root, episodes, w) for w in workers]
        evaluation = [evaluation_per_second(max(2, episodes // 2), maps, w) for w in workers]
        bc = [behaviour_cloning_frames_per_second(root / f"demonstrations_{workers[0]}", root / f"bc_{n}", n, epochs,
                                                  batch_size) for n in workers]
    base = {"demonstrations": demos[0]["episodes_per_second"],
            "manipulation_evaluation": evaluation[0]["manipulation_episodes_per_second"],
            "navigation_evaluation": evaluation[0]["navigation_episodes_per_second"],
            "behaviour_cloning": bc[0]["frames_per_second"]}
    speedups = {f"{n}": {"demonstrations": round(d["episodes_per_second"] / base["demonstrations"], 2),
                         "manipulation_evaluation": round(e["manipulation_episodes_per_second"] /
                                                          base["manipulation_evaluation"], 2),
                         "navigation_evaluation": round(e["navigation_episodes_per_second"] /
                                                        base["navigation_evaluation"], 2),
                         "behaviour_cloning": round(b["frames_per_second"] / base["behaviour_cloning"], 2)}
                for n, d, e, b in zip(workers, demos, evaluation, bc)}
    return {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.is_available(), "demonstrations": demos, "evaluation": evaluation,
            "behaviour_cloning": bc, "speedup_over_one": speedups}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int_in(2, 10_000), default=40,
                        help="demonstrations recorded per setting (the evaluation plays half as many scenes)")
    parser.add_argument("--maps", type=int_in(1, 100_000), default=500, help="navigation maps evaluated per setting")
    parser.add_argument("--workers", type=int_in(1, 256), nargs="+", default=[1, 2],
                        help="worker / process counts to compare (the first is the baseline)")
    parser.add_argument("--epochs", type=int_in(1, 1000), default=2, help="behaviour-cloning epochs per setting")
    parser.add_argument("--batch-size", type=int_in(2, 4096), default=64, help="global behaviour-cloning batch")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "bench" / "scale.json")
    args = parser.parse_args(argv)
    require_writable(parser, args.out, files=True)
    if any(args.batch_size % n for n in args.workers):
        parser.error(f"--batch-size {args.batch_size} must be a multiple of every process count {args.workers}")
    result = measure(args.episodes, args.maps, args.workers, args.epochs, args.batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for n, s in result["speedup_over_one"].items():
        print(f"{n} worker(s)/process(es): " + ", ".join(f"{k} x{v}" for k, v in s.items()))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
