"""Notebook 08's measurements: sizes, INT8 accuracy, latency, memory, the TorchScript baseline, and a
verdict on each performance claim of the design document. Every ratio is taken inside one run.

    python -m embodied_lib.profiling --profile full      # writes runs/bench/profiling/*.json
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from embodied_lib.config import cores_allotted
from embodied_lib.export import export_all
from embodied_lib.export.manifest import read_manifest
from embodied_lib.export.parity import served_formats
from embodied_lib.export.workflow import checkpoint_bytes
from embodied_lib.native import (RUNNERS, exported_models, native_parity, p50_in_turns, rust_env, shared_libraries,
                                 tensor_runner_inputs)
from embodied_lib.parallel import map_tasks
from embodied_lib.profiling import accuracy, memory, torchscript
from embodied_lib.registry import load_checkpoint
from embodied_lib.runtime.latency import golden_batch1, python_latency, time_calls

FLOAT_TWIN = {"executorch_int8": "executorch", "onnx_int8": "onnx"}
# Python processes measured for memory: the label shown, and the export format loaded
PYTHON_RUNTIMES = {"eager (safetensors)": "safetensors", "torch.export": "torch_export",
                   "TorchScript (retired)": memory.TORCHSCRIPT, "ExecuTorch": "executorch",
                   "ExecuTorch INT8": "executorch_int8", "ONNX Runtime": "onnx", "ONNX Runtime INT8": "onnx_int8",
                   "AOTInductor": "aoti"}
BATCH1 = " (batch-1 program)"
# batch-1 programs: XNNPACK fp32 and INT8, and the fp32 program with no delegate (ExecuTorch's own kernels); the
# labels of the first two in the memory table
PTE_FORMATS = {"executorch": ".pte", "executorch_int8": ".int8.pte",
               "executorch_undelegated": ".undelegated.pte"}
UNDELEGATED_ITERATIONS = 50
PTE_LABELS = {"executorch": "ExecuTorch", "executorch_int8": "ExecuTorch INT8"}


def sizes(manifest: dict) -> dict:
    found = {a["format"]: a["bytes"] for a in manifest["artifacts"]}
    ratios = {fmt: round(found[fmt] / found[twin], 4) for fmt, twin in FLOAT_TWIN.items() if fmt in found and twin in found}
    return {"bytes": found, "int8_over_fp32": ratios}


def planned_memory(path) -> dict:
    """ExecuTorch's memory plan from the program itself: the bytes of each planned (non-constant) buffer,
    sized for the largest batch the program accepts (the manifest's max_batch)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(Path(path).read_bytes())
    program = getattr(program, "program", program)
    plan = next(p for p in program.execution_plan if p.name == "forward")
    return {"buffers": list(plan.non_const_buffer_sizes), "bytes": int(sum(plan.non_const_buffer_sizes))}


def _checkpoint_model(runs_dir: Path, name: str):
    directory = runs_dir / name
    return load_checkpoint(directory) if (directory / "model.safetensors").is_file() else None


def torchscript_baseline(export_dir: Path, spec, model, out_dir: Path, iterations: int) -> dict:
    """Trace the trained model, time it at batch 1 on golden vector 0."""
    path = torchscript.trace(spec, model, out_dir / "torchscript" / f"{spec.name}.torchscript.pt")
    traced = torch.jit.load(str(path))
    inputs = golden_batch1(export_dir)
    with torch.no_grad():
        timing = time_calls(lambda: traced(*inputs), iterations)
    return {"file": str(path), "bytes": path.stat().st_size, **timing}


def binaries() -> list[dict]:
    """Each native runner's size and the shared libraries it loads (ldd), with theirs."""
    rows, seen = [], set()
    for runner in RUNNERS:
        if runner.binary in seen or not runner.binary.exists():
            continue
        seen.add(runner.binary)
        libraries = shared_libraries(runner.binary, rust_env() if runner.language == "Rust" else None)
        rows.append({"binary": runner.binary.name, "language": runner.language,
                     "binary_mb": round(runner.binary.stat().st_size / 2**20, 2),
                     "shared_libraries": len(libraries),
                     "shared_libraries_mb": round(sum(libraries.values()) / 2**20, 1),
                     "largest": sorted(libraries, key=libraries.get, reverse=True)[:4]})
    return rows


def batch1_programs(spec, model, out_dir: Path) -> Path:
    """ExecuTorch programs (fp32, INT8, no delegate) of the trained model exported for batch 1 only. The shipped files
    accept a batch up to max_batch, and ExecuTorch plans activation memory for the largest: a robot that
    runs batch 1 should export batch 1."""
    folder = out_dir / "batch1" / spec.name
    # the program with no delegate only where the native tensor runners can time it (the SIMD verdict is theirs)
    native = tensor_runner_inputs([t.dtype for t in spec.inputs])
    formats = [f for f in PTE_FORMATS if f != "executorch_undelegated" or native]
    export_all(dataclasses.replace(spec, max_batch=1), model, folder, formats=formats, log=lambda *_: None)
    return folder


def _batch1_task(task: dict) -> str:
    return str(batch1_programs(*load_checkpoint(Path(task["checkpoint"])), Path(task["out_dir"])))


def batch1_programs_all(runs_dir: Path, names: list[str], out_dir: Path) -> dict[str, Path]:
    """``batch1_programs`` of each trained model in ``names``, one model per process on each core allotted, the
    biggest first: lowering is single-threaded Python, and the text pipeline's INT8 program alone is ~100 s of
    it. Done before any timing, so no measurement shares the machine with it."""
    checkpoints = [runs_dir / n for n in names if (runs_dir / n / "model.safetensors").is_file()]
    tasks = [{"checkpoint": str(c), "out_dir": str(out_dir)} for c in checkpoints]
    folders = map_tasks(_batch1_task, tasks, cores_allotted(), [checkpoint_bytes(c) for c in checkpoints],
                        progress=False)
    return {c.name: Path(f) for c, f in zip(checkpoints, folders)}


def _native_rows(rows, suffix: str = "") -> list[dict]:
    return [{"runtime": f"{r['language']} {r['runner']}{suffix}", "language": r["language"], "p50_ms": r["p50_ms"],
             "p99_ms": r["p99_ms"], "mean_ms": r["mean_ms"], "iterations": r["iterations"]} for r in rows]


def rust_vs_cpp(export_dir: Path, batch1_dir: Path | None, measured: list[dict], iterations: int, rounds: int) -> list[dict]:
    """The C++ and Rust ExecuTorch runners on the same .pte files (shipped and batch-1, fp32 and INT8), ``rounds``
    processes each taken in turns (native.p50_in_turns). A process times about half a second of calls
    (``iterations`` at most, from the single run's p50 in ``measured``): the text pipeline's 10 ms calls need fewer
    than navigation's 8 us."""
    per_call = {(r["runner"], r["file"]): r["p50_ms"] for r in measured}
    jobs, n, pairs = {}, {}, []   # pairs: (file label, C++ job, Rust job)
    for folder, suffix in ((export_dir, ""), (batch1_dir, BATCH1)):
        if folder is None:
            continue
        manifest = read_manifest(folder)
        served = served_formats(manifest)
        files = {a["format"]: a["file"] for a in manifest["artifacts"] if a["format"] in served}
        for fmt in ("executorch", "executorch_int8"):
            runners = (fmt, fmt.replace("executorch", "executorch_rs"))   # C++, Rust
            if fmt not in files or not all((r, files[fmt]) in per_call for r in runners):
                continue
            for runner in runners:
                jobs[runner + suffix] = (runner, folder, fmt)
                n[runner + suffix] = max(20, min(iterations, int(0.5e3 / max(per_call[(runner, files[fmt])], 1e-3))))
            pairs.append((fmt + suffix, runners[0] + suffix, runners[1] + suffix))
    timed = p50_in_turns(jobs, rounds, n) if jobs else {}
    rows = []
    for file, cpp_job, rust_job in pairs:
        cpp, rust = timed[cpp_job], timed[rust_job]
        rows.append({"file": file, "rounds": rounds, "cpp_p50_ms": cpp["p50_ms"], "rust_p50_ms": rust["p50_ms"],
                     "cpp_round_p50s_ms": cpp["round_p50s_ms"], "rust_round_p50s_ms": rust["round_p50s_ms"],
                     "ratio": round(rust["p50_ms"] / cpp["p50_ms"], 3)})
    return rows


def profile_model(export_dir: Path, runs_dir: Path, out_dir: Path, profile: str | None, iterations: int,
                  batch1_dir: Path | None, log=print, rounds: int = 5) -> dict:
    """Sizes, latency of every runtime (``rounds``: processes per runner in the Rust-vs-C++ comparison), memory,
    planned memory and task metrics of one exported model."""
    manifest = read_manifest(export_dir)
    name = manifest["model"]
    formats = served_formats(manifest)   # a file that failed parity at export is never loaded (export.parity)
    log(f"{name}: sizes, TorchScript trace, latency")
    loaded = _checkpoint_model(runs_dir, name)   # (spec, model), or None without a checkpoint
    result = {"model": name, "sizes": sizes(manifest),
              "torchscript": torchscript_baseline(export_dir, *loaded, out_dir, iterations) if loaded else None}
    result["latency"] = python_latency(export_dir, iterations)
    if result["torchscript"]:
        ts = result["torchscript"]
        result["latency"].append({"runtime": "Python TorchScript (retired)", "language": "Python",
                                  **{k: ts[k] for k in ("p50_ms", "p99_ms", "mean_ms", "iterations")}})
    native = native_parity(export_dir, iterations)
    # the program with no delegate runs convolutions on portable reference kernels (manipulation: ~80 ms a frame,
    # ~150x XNNPACK): fewer timed runs keep its p50 as steady and the full profile's bench a minute shorter
    slow = {"executorch_undelegated": min(iterations, UNDELEGATED_ITERATIONS)}
    native_b1 = native_parity(batch1_dir, iterations, iterations_by_format=slow) if batch1_dir else []
    result["latency"] += _native_rows(native) + _native_rows(native_b1, BATCH1)
    result["rust_vs_cpp"] = rust_vs_cpp(export_dir, batch1_dir, native + native_b1, iterations, rounds)
    log(f"{name}: memory (one process per runtime)")
    jobs = []   # (label, format, folder, file bytes, TorchScript file)
    for label, fmt in PYTHON_RUNTIMES.items():
        if fmt == memory.TORCHSCRIPT and result["torchscript"]:
            jobs.append((label, fmt, export_dir, result["torchscript"]["bytes"], result["torchscript"]["file"]))
        elif fmt in formats:
            jobs.append((label, fmt, export_dir, result["sizes"]["bytes"][fmt], None))
    if batch1_dir:
        b1_manifest = read_manifest(batch1_dir)
        b1_bytes, b1_served = sizes(b1_manifest)["bytes"], served_formats(b1_manifest)
        for fmt, label in PTE_LABELS.items():   # not the program with no delegate: its verdict is about time
            if fmt in b1_served:
                jobs.append((label + BATCH1, fmt, batch1_dir, b1_bytes[fmt], None))
    # each child's peak is its own process's (VmHWM), so children side by side measure the same numbers; most of a
    # child's ~8 s is importing torch, so one per core halves this part of the notebook. Two even inside make test
    # (one core per worker): they measure memory, not time, and by notebook 08 the other worker has usually finished
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        measured = list(pool.map(lambda job: memory.measure(job[2], job[1], job[4]), jobs))
    rows = [{"runtime": f"Python {label}", "language": "Python", "format": fmt, "file_mb": round(file_bytes / 2**20, 3),
             **numbers} for (label, fmt, _, file_bytes, _), numbers in zip(jobs, measured)]
    for found, suffix, folder in ((native, "", export_dir), (native_b1, BATCH1, batch1_dir)):
        for r in found:
            runner = next(x for x in RUNNERS if x.name == r["runner"])
            rows.append({"runtime": f"{r['language']} {r['runner']}{suffix}", "language": r["language"],
                         "format": runner.artifact, "file_mb": file_mb_of(folder, runner.artifact),
                         "baseline_mb": None, "peak_mb": round(r["peak_rss_mb"], 1), "model_mb": None})
    result["memory"] = rows
    result["planned_memory"] = {fmt: planned_memory(export_dir / f"{name}{suffix}")
                                for fmt, suffix in PTE_FORMATS.items() if fmt in formats}
    if batch1_dir:
        result["planned_memory"].update({f"{fmt}{BATCH1}": planned_memory(batch1_dir / f"{name}{suffix}")
                                         for fmt, suffix in PTE_FORMATS.items() if fmt in b1_bytes})
    if name in accuracy.HEADLINE:
        chosen = [f for f in ("safetensors", "executorch", "executorch_int8", "onnx", "onnx_int8") if f in formats]
        log(f"{name}: task metrics of {chosen}")
        result["accuracy"] = accuracy.accuracy_table(export_dir, chosen, profile, log=log)
    return result


def file_mb_of(folder: Path, fmt: str) -> float:
    return round(sizes(read_manifest(folder))["bytes"][fmt] / 2**20, 3)


def _row(rows, runtime):
    return next((r for r in rows if r["runtime"] == runtime), None)


def _pair(rows, first, second):
    """The rows of two runtimes, or None unless both were measured."""
    a, b = _row(rows, first), _row(rows, second)
    return (a, b) if a and b else None


def verdicts(models: dict) -> list[dict]:
    """Each claim of the design document, with the numbers measured in this run."""
    out = []
    # 1. "ExecuTorch has a 10-50 % smaller memory footprint than TorchScript"
    for name, m in models.items():
        # the batch-1 program where there is one (what a robot runs), else the shipped dynamic-batch file
        et = _row(m["memory"], "Python ExecuTorch" + BATCH1) or _row(m["memory"], "Python ExecuTorch")
        shipped = _row(m["memory"], "Python ExecuTorch")
        ts = _row(m["memory"], "Python TorchScript (retired)")
        native = _row(m["memory"], "C++ executorch" + BATCH1) or _row(m["memory"], "C++ executorch")
        if et and ts:
            ratio = et["model_mb"] / ts["model_mb"] if ts["model_mb"] > 0 else None
            holds = ratio is not None and 0.5 <= ratio <= 0.9
            out.append({"claim": "ExecuTorch uses 10-50 % less memory than TorchScript", "model": name,
                        "executorch": et["runtime"], "executorch_model_mb": et["model_mb"],
                        "torchscript_model_mb": ts["model_mb"], "ratio": None if ratio is None else round(ratio, 3),
                        "shipped_dynamic_batch_model_mb": shipped["model_mb"] if shipped else None,
                        "native_executorch_peak_mb": native["peak_mb"] if native else None,
                        "torchscript_process_peak_mb": ts["peak_mb"],
                        "verdict": ("holds" if holds else "ExecuTorch uses more" if ratio and ratio > 1
                                    else "ExecuTorch uses less, by more than 50 %" if ratio and ratio < 0.5
                                    else "does not hold here")})
    # 2. "INT8 quantization gives 4x memory reduction"
    for name, m in models.items():
        ratios = m["sizes"]["int8_over_fp32"]
        if not ratios:
            continue
        file_x = {fmt: round(1 / r, 2) for fmt, r in ratios.items()}
        process = {}
        for fmt, twin in FLOAT_TWIN.items():
            q = next((r for r in m["memory"] if r["language"] == "Python" and r["format"] == fmt
                      and BATCH1 not in r["runtime"]), None)
            f = next((r for r in m["memory"] if r["language"] == "Python" and r["format"] == twin
                      and BATCH1 not in r["runtime"]), None)
            if q and f and q["model_mb"] > 0:
                process[fmt] = round(f["model_mb"] / q["model_mb"], 2)
        out.append({"claim": "INT8 gives a 4x memory reduction", "model": name, "file_reduction_x": file_x,
                    "process_reduction_x": process,
                    "verdict": ("holds for the file" if min(file_x.values()) >= 3.5 else "does not hold for the file")
                               + "; " + ("holds in a running process" if process and min(process.values()) >= 3.5
                                         else "not in a running process")})
    # 3. batch-1 latency: native ExecuTorch INT8 vs Python eager fp32 (acceptance: <= 0.4x for manipulation)
    for name, m in models.items():
        if pair := _pair(m["latency"], "Python eager", "C++ executorch_int8"):
            eager, native = pair
            ratio = native["p50_ms"] / eager["p50_ms"]
            out.append({"claim": "batch-1 latency: native ExecuTorch INT8 vs Python eager fp32", "model": name,
                        "eager_p50_ms": eager["p50_ms"], "executorch_int8_p50_ms": native["p50_ms"],
                        "ratio": round(ratio, 3), "target": 0.4 if name == "manipulation" else None,
                        "verdict": "holds" if ratio <= 0.4 else "does not hold here"})
    # 4. "SIMD: leverage vectorized operations": XNNPACK's kernels vs ExecuTorch's own on the same batch-1 program
    for name, m in models.items():
        for language in ("C++", "Rust"):
            runner = "executorch" if language == "C++" else "executorch_rs"
            if pair := _pair(m["latency"], f"{language} {runner}{BATCH1}", f"{language} {runner}_undelegated{BATCH1}"):
                simd, plain = pair
                speedup = plain["p50_ms"] / simd["p50_ms"]
                out.append({"claim": "SIMD: leverage vectorized operations (XNNPACK vs no delegate, batch 1)",
                            "model": name, "runner": f"{language} {runner}", "xnnpack_p50_ms": simd["p50_ms"],
                            "undelegated_p50_ms": plain["p50_ms"], "speedup_x": round(speedup, 2),
                            "verdict": ("holds" if speedup >= 1.5 else "holds, by less than 1.5x" if speedup > 1.05
                                        else "does not hold here (no faster)")})
    # 5. the Rust ExecuTorch runner (executorch crate) against the C++ one, on the same files in the same run, each
    # p50 the median of processes taken in turns (rust_vs_cpp)
    for name, m in models.items():
        for row in m.get("rust_vs_cpp", []):
            out.append({"claim": "Rust + ExecuTorch (executorch crate) runs as fast as C++ (within 1.3x)",
                        "model": name, **{k: row[k] for k in ("file", "rounds", "cpp_p50_ms", "rust_p50_ms", "ratio")},
                        "verdict": "holds" if row["ratio"] <= 1.3 else "does not hold here"})
    out.append({"claim": "GPU matters for latency", "model": None,
                "verdict": "not measurable here (no GPU on this machine); see TOOLCHAIN.md for H200 numbers"})
    return out


def run(exports_dir, runs_dir, out_dir, profile: str | None = None, iterations: int = 200, models=None,
        batch1_models=None, log=print, rounds: int = 5) -> dict:
    """Profile ``models`` (default: every exported one); ``batch1_models`` (default: the same) also get
    batch-1 ExecuTorch programs; ``rounds``: processes per runner, in turns, in the Rust-vs-C++ comparison."""
    exports_dir, runs_dir, out_dir = Path(exports_dir), Path(runs_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results = {}
    names = exported_models(exports_dir, models)
    batch1_names = [n for n in names if batch1_models is None or n in batch1_models]
    log("batch-1 programs: " + ", ".join(batch1_names))
    batch1_dirs = batch1_programs_all(runs_dir, batch1_names, out_dir)
    for name in names:
        results[name] = profile_model(exports_dir / name, runs_dir, out_dir, profile, iterations, batch1_dirs.get(name),
                                      log, rounds)
        (out_dir / f"{name}.json").write_text(json.dumps(results[name], indent=2) + "\n")
    summary = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "profile": profile, "iterations": iterations,
               "rust_vs_cpp_rounds": rounds,
               "seconds": round(time.time() - started, 1), "torchscript_branch_demo": torchscript.branch_demo(),
               "binaries": binaries(), "claims": verdicts(results)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {"models": results, **summary}

