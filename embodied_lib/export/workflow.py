"""From training checkpoints to checked exports: what notebook 04 and `python -m embodied_lib.export` run."""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from embodied_lib.config import RUNS_DIR, cores_allotted
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


def _export_logged(checkpoint_dir, out_dir, formats, parity_inputs) -> dict:
    import torch
    torch.set_num_threads(1)   # one process per core
    lines = []
    return {**export_and_check(checkpoint_dir, out_dir, formats, parity_inputs, log=lines.append), "log": lines}


def export_and_check_all(checkpoints: dict, exports_dir, formats=None, parity_inputs: int | None = None,
                         processes: int | None = None, log=print) -> dict:
    """``export_and_check`` for each ``{model: checkpoint folder}`` into ``exports_dir/<model>``, one model per
    process on each core allotted (``config.cores_allotted``), the biggest checkpoint first. Exporting is mostly
    single-threaded Python (tracing, lowering: the text pipeline's INT8 program alone is ~100 s of it), so two
    models at once take about the time of the text pipeline alone. Each model's log is printed when it is done; a
    failure raises as before."""
    from embodied_lib.export.trust import ensure_local_keypair

    ensure_local_keypair()   # made once here, not by two processes at once
    exports_dir = Path(exports_dir)
    processes = processes or min(len(checkpoints), cores_allotted())
    if processes <= 1:
        return {name: export_and_check(ckpt, exports_dir / name, formats, parity_inputs, log=log)
                for name, ckpt in checkpoints.items()}
    biggest_first = sorted(checkpoints, key=lambda n: -(Path(checkpoints[n]) / "model.safetensors").stat().st_size)
    results = {}
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(_export_logged, str(checkpoints[name]), str(exports_dir / name), formats,
                                     parity_inputs) for name in biggest_first}
        for name in checkpoints:
            results[name] = futures[name].result()
            log(f"{name} -> {exports_dir / name}")
            for line in results[name].pop("log"):
                log(line)
    return results
