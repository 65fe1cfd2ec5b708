"""From training checkpoints to checked exports: what notebook 04 and `python -m embodied_lib.export` run."""
from __future__ import annotations

import json
from pathlib import Path

from embodied_lib.config import RUNS_DIR
from embodied_lib.export import export_all
from embodied_lib.registry import load_checkpoint
from embodied_lib.runtime.runtimes import eager_runtime, parity_report

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
