"""Sizes, INT8 accuracy, latency and memory of every exported model, pruning, and the design document's claims.

    python -m embodied_lib.profiling --profile full --all-models --pruning-model navigation --pruning-model manipulation
                                                             # what `make bench` runs
    python -m embodied_lib.profiling --model navigation --iterations 50 --no-pruning
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from embodied_lib.cli import int_in, require_folder, require_writable
from embodied_lib.config import EXPORTS_DIR, PROFILES, RUNS_DIR, get_config
from embodied_lib.profiling import pruning
from embodied_lib.profiling.bench import run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), help="evaluation sizes (default: EMBODIED_PROFILE or quick)")
    parser.add_argument("--exports", type=Path, default=EXPORTS_DIR, help="exports root (one folder per model)")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="training checkpoints (for the TorchScript trace)")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "bench" / "profiling", help="where the JSON goes")
    parser.add_argument("--model", action="append", help="model name (repeatable); default: the profile's")
    parser.add_argument("--all-models", action="store_true",
                        help="every exported model, the HRI heads included (what make bench profiles)")
    parser.add_argument("--iterations", type=int_in(1, 1_000_000), help="timed batch-1 runs per runtime (default: the profile's)")
    parser.add_argument("--no-pruning", action="store_true", help="skip pruning (pruned exports, fine-tunes, task metrics)")
    parser.add_argument("--pruning-model", action="append", choices=["navigation", "manipulation"],
                        help="a model to prune (repeatable); default: the profile's (navigation; make bench adds "
                             "manipulation)")
    args = parser.parse_args(argv)
    require_folder(parser, args.exports, args.runs)
    require_writable(parser, args.out)
    cfg = get_config("profiling", args.profile)
    result = run(args.exports, args.runs, args.out, args.profile, args.iterations or cfg["iterations"],
                 None if args.all_models else args.model or cfg["models"], cfg["batch1_models"],
                 rounds=cfg["rust_cpp_rounds"])
    if not args.no_pruning:   # its verdicts join the others in summary.json
        result["claims"] += pruning.run(args.runs, args.out, args.profile, models=args.pruning_model)["claims"]
    for claim in result["claims"]:
        print(f"{claim['claim']} [{claim['model']}]: {claim['verdict']}")
    print(f"-> {args.out} ({json.dumps(result['seconds'])} s)")


if __name__ == "__main__":
    main()
