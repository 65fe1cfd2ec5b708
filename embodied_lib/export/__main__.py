"""Export trained models to every format and check parity.

    python -m embodied_lib.export                      # every checkpoint under runs/
    python -m embodied_lib.export --model navigation --formats onnx executorch
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embodied_lib.cli import int_in, require_folder, require_writable
from embodied_lib.config import EXPORTS_DIR, RUNS_DIR
from embodied_lib.export import FORMATS
from embodied_lib.export.workflow import FloatParityError, export_and_check_all, trained_checkpoints

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model name (repeatable); default: every trained one")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="where training wrote checkpoints")
    parser.add_argument("--out", type=Path, default=EXPORTS_DIR, help="exports root (one folder per model)")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), help="subset of formats")
    parser.add_argument("--parity-inputs", type=int_in(1, 100_000),
                        help="default: the model's own (1000 for the small ones)")
    args = parser.parse_args(argv)
    require_folder(parser, args.runs)
    require_writable(parser, args.out)
    found = trained_checkpoints(args.runs)
    names = args.model or sorted(found)
    if not names:
        parser.error(f"no trained checkpoints under {args.runs}; run notebook 01 (or `make run`) first")
    for name in names:
        if name not in found:
            parser.error(f"no checkpoint for {name!r} under {args.runs} (found: {sorted(found)})")
    try:
        results = export_and_check_all({name: found[name] for name in names}, args.out, args.formats,
                                       args.parity_inputs)
    except FloatParityError as exc:   # the model or the exporter is wrong: nothing downstream should run on it
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, result in results.items():
        print(f"{name}:")
        for row in result["parity"]:
            agree = ", ".join(f"{k} {v:.3f}" for k, v in row["decision_agreement"].items()) or "values only"
            diff = "NaN/Inf" if row["max_abs_diff"] is None else f"{row['max_abs_diff']:.2e}"
            print(f"  parity {row['format']:13s} max|diff| {diff}  "
                  f"decisions: {agree}  {'ok' if row['passed'] else 'FAILED (never served)'}")
        for row in result["parity"]:
            if not row["passed"]:
                print(f"  refused by every loader: {row['refused']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
