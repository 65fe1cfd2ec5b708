"""Export trained models to every format and check parity.

    python -m embodied_lib.export                      # every checkpoint under runs/
    python -m embodied_lib.export --model navigation --formats onnx executorch
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from embodied_lib.config import EXPORTS_DIR, RUNS_DIR
from embodied_lib.export import FORMATS, export_all
from embodied_lib.models.spec import load_checkpoint
from embodied_lib.runtimes import eager_runtime, parity_report

PARITY_FILE = "parity.json"


def trained_checkpoints(runs_dir=RUNS_DIR) -> dict[str, Path]:
    """Every ``runs/<model>/`` folder holding a checkpoint (config.json + model.safetensors)."""
    runs_dir = Path(runs_dir)
    found = sorted(p.parent for p in runs_dir.glob("*/model.safetensors") if (p.parent / "config.json").is_file())
    return {json.loads((d / "config.json").read_text())["model"]: d for d in found}


def export_and_check(checkpoint_dir, out_dir, formats=None, parity_inputs: int | None = None, log=print) -> dict:
    """Export one checkpoint, run parity against eager, write parity.json; return both."""
    spec, model = load_checkpoint(checkpoint_dir)
    manifest = export_all(spec, model, out_dir, formats=formats, log=log)
    rows = parity_report(out_dir, eager_runtime(spec, model), n=parity_inputs or spec.parity_inputs)
    (Path(out_dir) / PARITY_FILE).write_text(json.dumps(rows, indent=2) + "\n")
    return {"manifest": manifest, "parity": rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model name (repeatable); default: every trained one")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR, help="where training wrote checkpoints")
    parser.add_argument("--out", type=Path, default=EXPORTS_DIR, help="exports root (one folder per model)")
    parser.add_argument("--formats", nargs="+", choices=list(FORMATS), help="subset of formats")
    parser.add_argument("--parity-inputs", type=int, help="default: the model's own (1000 for the small ones)")
    args = parser.parse_args(argv)
    found = trained_checkpoints(args.runs)
    names = args.model or sorted(found)
    if not names:
        parser.error(f"no trained checkpoints under {args.runs}; run notebook 01 (or `make run`) first")
    for name in names:
        if name not in found:
            parser.error(f"no checkpoint for {name!r} under {args.runs} (found: {sorted(found)})")
        print(f"{name}:")
        result = export_and_check(found[name], args.out / name, args.formats, args.parity_inputs)
        for row in result["parity"]:
            print(f"  parity {row['format']:13s} max|diff| {row['max_abs_diff']:.2e}  "
                  f"argmax agree {row['argmax_agreement']:.3f}  {'ok' if row['passed'] else 'FAILED'}")


if __name__ == "__main__":
    main()
