"""From training checkpoints to checked exports: what notebook 04 and `python -m embodied_lib.export` run."""
from __future__ import annotations

import json
from pathlib import Path

from embodied_lib.config import RUNS_DIR, cores_allotted
from embodied_lib.export import FORMATS, export_all
from embodied_lib.export.parity import verdict_row
from embodied_lib.parallel import map_tasks
from embodied_lib.registry import load_checkpoint

PARITY_FILE = "parity.json"


def trained_checkpoints(runs_dir=RUNS_DIR) -> dict[str, Path]:
    """Every ``runs/<model>/`` folder holding a checkpoint (config.json + model.safetensors)."""
    runs_dir = Path(runs_dir)
    found = sorted(p.parent for p in runs_dir.glob("*/model.safetensors") if (p.parent / "config.json").is_file())
    return {json.loads((d / "config.json").read_text())["model"]: d for d in found}


class FloatParityError(RuntimeError):
    """A float file failed parity: the model or the exporter is wrong, and nothing downstream should run on it."""


def parity_rows(manifest: dict) -> list[dict]:
    """The parity table of an export: each file's verdict as its manifest entry records it (export.file_parity)."""
    return [{**verdict_row(entry), "lossy": FORMATS[entry["format"]].lossy} for entry in manifest["artifacts"]]


def export_and_check(checkpoint_dir, out_dir, formats=None, parity_inputs: int | None = None, skip=(),
                     log=print) -> dict:
    """Export one checkpoint (``formats``, default the model's own, less ``skip``), each file checked against eager
    as it is written (export_all), and write parity.json; return both. A lossy (INT8) file that fails its rule is
    recorded as failed (every loader refuses it) and the export goes on; a float file that fails raises
    FloatParityError, after the manifest that records it is written."""
    spec, model = load_checkpoint(checkpoint_dir)
    formats = [f for f in (formats or spec.formats) if f not in skip]
    manifest = export_all(spec, model, out_dir, formats=formats, log=log, parity_inputs=parity_inputs)
    rows = parity_rows(manifest)
    (Path(out_dir) / PARITY_FILE).write_text(json.dumps(rows, indent=2) + "\n")
    wrong = [r for r in rows if not r["passed"] and not r["lossy"]]
    if wrong:
        raise FloatParityError(f"{spec.name}: float files failed parity with eager, so the export is wrong: {wrong}")
    return {"manifest": manifest, "parity": rows}


def _export_task(task: dict) -> dict:
    lines = []
    result = export_and_check(task["checkpoint"], task["out"], task["formats"], task["parity_inputs"], task["skip"],
                              log=lines.append)
    return {**result, "log": lines}


def checkpoint_bytes(checkpoint_dir) -> int:
    """The size of a checkpoint's weights: how long exporting it takes, roughly (``map_tasks`` starts the biggest
    first)."""
    return (Path(checkpoint_dir) / "model.safetensors").stat().st_size


def export_and_check_all(checkpoints: dict, exports_dir, formats=None, parity_inputs: int | None = None,
                         skip_formats: dict | None = None, log=print) -> dict:
    """``export_and_check`` for each ``{model: checkpoint folder}`` into ``exports_dir/<model>`` (``skip_formats``:
    ``{model: formats it leaves out}``, the profile's ``export`` settings), one model per
    process on each core allotted (``config.cores_allotted``). Exporting is mostly single-threaded Python (tracing,
    lowering: the text pipeline's INT8 program alone is ~100 s of it), so two models at once take about the time
    of the text pipeline alone. With one core the log streams as it goes; with several, each model's log is
    printed at the end."""
    from embodied_lib.export.trust import ensure_local_keypair

    ensure_local_keypair()   # made once here, not by two processes at once
    exports_dir, workers = Path(exports_dir), cores_allotted()
    skip = {name: tuple((skip_formats or {}).get(name, ())) for name in checkpoints}
    if workers <= 1:
        return {name: export_and_check(ckpt, exports_dir / name, formats, parity_inputs, skip[name], log=log)
                for name, ckpt in checkpoints.items()}
    tasks = [{"checkpoint": str(ckpt), "out": str(exports_dir / name), "formats": formats,
              "parity_inputs": parity_inputs, "skip": skip[name]} for name, ckpt in checkpoints.items()]
    results = dict(zip(checkpoints, map_tasks(_export_task, tasks, workers,
                                              [checkpoint_bytes(c) for c in checkpoints.values()], progress=False)))
    for name, result in results.items():
        log(f"{name} -> {exports_dir / name}")
        for line in result.pop("log"):
            log(line)
    return results
