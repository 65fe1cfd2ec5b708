"""Batch-1 latency of every runtime, Python and native, measured the same way in one run.

    python -m embodied_lib.runtime.latency exports/navigation --out runs/bench/navigation_latency.json

Python rows: eager PyTorch (weights from .safetensors), torch.export, ExecuTorch and ONNX Runtime
called from Python on golden vector 0, after warm-up. Native rows: the runners' own timings
(embodied_lib.native). Same input, same iteration count, same machine, and one percentile
definition everywhere: nearest rank (``percentile``; the C++ and Rust runners compute the same).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from embodied_lib.cli import int_in, require_folder, require_writable
from embodied_lib.export.golden import read_golden
from embodied_lib.export.manifest import read_manifest
from embodied_lib.export.parity import served_formats
from embodied_lib.native import native_parity
from embodied_lib.registry import load_runtime

PYTHON_FORMATS = {"eager": "safetensors", "torch.export": "torch_export", "ExecuTorch": "executorch",
                  "ExecuTorch INT8": "executorch_int8", "ONNX Runtime": "onnx", "ONNX Runtime INT8": "onnx_int8"}
WARMUP = 20


def percentile(values, p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it
    (the runners' definition: sorted[ceil(p / 100 * n) - 1]); never an interpolated value."""
    return float(np.percentile(np.asarray(values), p, method="inverted_cdf"))


def time_calls(fn, iterations: int) -> dict:
    for _ in range(min(iterations, WARMUP)):
        fn()
    ms = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "mean_ms": float(np.mean(ms)),
            "iterations": iterations}


def time_calls_in_turns(fns: dict, iterations: int) -> dict:
    """``time_calls`` of several callables in one process, one call of each per round: a slow spell of a shared
    machine lands on all of them alike, so their ratios hold where back-to-back runs would not."""
    ms = {label: [] for label in fns}
    for round_ in range(WARMUP + iterations):
        for label, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if round_ >= WARMUP:
                ms[label].append((time.perf_counter() - t0) * 1e3)
    return {label: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "mean_ms": float(np.mean(v)),
                    "iterations": iterations} for label, v in ms.items()}


def golden_batch1(export_dir) -> list[torch.Tensor]:
    """Golden vector 0 as batch-1 tensors: the input every latency and memory figure runs."""
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    golden = read_golden(export_dir / manifest["golden"]["file"])
    # golden.bin stores every tensor as float32; token ids go back to their own dtype
    return [torch.from_numpy(golden[f"input.{s['name']}"][:1].astype(s["dtype"])) for s in manifest["inputs"]]


def python_latency(export_dir, iterations: int = 200) -> list[dict]:
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    inputs = golden_batch1(export_dir)
    available = set(served_formats(manifest))   # a file that failed parity is never loaded
    rows = []
    for label, fmt in PYTHON_FORMATS.items():
        if fmt not in available:
            continue
        runtime = load_runtime(export_dir, fmt, trusted=True)  # our own exports, signed with this machine's key
        with torch.no_grad():
            rows.append({"runtime": f"Python {label}", "language": "Python", **time_calls(lambda: runtime(*inputs), iterations)})
    return rows


def latency_table(export_dir, iterations: int = 200, native: bool = True, language: str | None = None,
                  native_rows: list[dict] | None = None) -> list[dict]:
    """Python rows, then the native runners' (of ``language``, if given) for one export folder. ``native_rows``:
    the runners' reports already in hand (native_parity times every run it checks), so they do not run twice."""
    rows = python_latency(export_dir, iterations)
    if native:
        for r in native_rows if native_rows is not None else native_parity(export_dir, iterations, language):
            rows.append({"runtime": f"{r['language']} {r['runner']}", "language": r["language"],
                         "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "mean_ms": r["mean_ms"],
                         "iterations": iterations})
    return rows


def latency_matrix(rows_by_model: dict[str, list[dict]]) -> list[dict]:
    """One row per runtime, one column per model: "p50 / p99" in ms (a screen instead of a runtimes x models list)."""
    runtimes = list(dict.fromkeys(r["runtime"] for rows in rows_by_model.values() for r in rows))
    table = []
    for runtime in runtimes:
        row = {"runtime (p50 / p99 ms)": runtime}
        for model, rows in rows_by_model.items():
            found = next((r for r in rows if r["runtime"] == runtime), None)
            row[model] = f"{found['p50_ms']:.4f} / {found['p99_ms']:.4f}" if found else "-"
        table.append(row)
    return table


def latency_conclusion(rows_by_model: dict[str, list[dict]]) -> str:
    """One line per model from latency_table rows: the fastest runtime at batch 1 against eager PyTorch called from
    Python (or, for a model with no eager row, the first Python row)."""
    lines = []
    for model, rows in rows_by_model.items():
        if not rows:
            continue
        fastest = min(rows, key=lambda r: r["p50_ms"])
        reference = next((r for r in rows if r["runtime"] == "Python eager"), rows[0])
        ratio = reference["p50_ms"] / fastest["p50_ms"] if fastest["p50_ms"] > 0 else float("inf")
        lines.append(f"{model}: fastest is {fastest['runtime']} at {fastest['p50_ms']:.4f} ms p50, "
                     f"{ratio:.1f}x faster than {reference['runtime']} ({reference['p50_ms']:.4f} ms)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dirs", nargs="+", type=Path, help="exports/<model> folders")
    parser.add_argument("--iterations", type=int_in(1, 1_000_000), default=500)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--python-only", action="store_true", help="skip the native runners")
    args = parser.parse_args(argv)
    require_folder(parser, *args.export_dirs)
    require_writable(parser, args.out, files=True)
    results = {}
    for export_dir in args.export_dirs:
        rows = latency_table(export_dir, args.iterations, native=not args.python_only)
        results[export_dir.name] = rows
        print(f"{export_dir.name}: batch-1 latency over {args.iterations} runs")
        for r in rows:
            print(f"  {r['runtime']:24s} p50 {r['p50_ms']:8.4f} ms   p99 {r['p99_ms']:8.4f} ms   mean {r['mean_ms']:8.4f} ms")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "results": results},
                                       indent=2) + "\n")
        print(f"-> {args.out}")


if __name__ == "__main__":
    main()
