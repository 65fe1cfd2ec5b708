"""Hostile export folders against every surface that loads a data-format model file, and what each did.

    python -m embodied_lib.hostile EXPORTS_ROOT [--per-kind 8] [--seed 24] [--out runs/bench/hostile_files.json]

For navigation and manipulation (folders under EXPORTS_ROOT) and each data format, seeded mutants
(embodied_lib.export.mutants) with the manifest rewritten to match are given to: Python (``load_runtime``
and one run, in a worker process, so an abort is seen as one), each native runner that reads the format,
and the C++ controller (its sanitizer build) for the formats it runs. Each outcome is one of

- ``refused``: a clear error naming the file (the project's exception; an ``error:`` line and exit 1; the
  controller started with the model unavailable and moved nothing),
- ``ran``: loaded and ran (a mutation that changed nothing that matters, or one the parity check catches),
- ``crash`` (a signal, an abort, a sanitizer report, an exception of another type, an error that does not
  name the file), ``hang`` (past the time limit) or ``ran_refusable`` (a relabelled, restrided or otherwise
  must-refuse file that ran).

The first two are handled; the table counts all of them per format and surface.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from embodied_lib.export import FORMATS
from embodied_lib.export.mutants import KINDS, Mutant, mutants, write_hostile_folder
from embodied_lib.export.manifest import batch1_format

MODELS = ("navigation", "manipulation")
CONTROLLER_RUNTIMES = {"executorch": "executorch", "onnx": "onnxruntime", "executorch_int8": "executorch_int8",
                       "onnx_int8": "onnxruntime_int8"}
HANDLED = ("refused", "ran")
LIMIT_S = 120
CONTROLLER_TICKS = 5


def native_runners(fmt: str):
    from embodied_lib.native import RUNNERS

    return [r for r in RUNNERS if r.artifact == fmt and r.golden == "golden.bin"]


# -- Python, in a worker process ------------------------------------------------------------------------------

def _worker() -> None:
    """Reads one JSON case a line ({"folder", "format"}), answers one JSON line {"outcome", "message"}."""
    import numpy as np

    from embodied_lib.export.artifacts import ArtifactError
    from embodied_lib.export.golden import read_golden
    from embodied_lib.registry import load_runtime
    from embodied_lib.runtime.runtimes import OutputError

    answers = os.fdopen(os.dup(1), "w")   # what the runtimes print goes to stderr; stdout carries only answers
    os.dup2(2, 1)
    for line in sys.stdin:
        case = json.loads(line)
        folder = Path(case["folder"])
        try:
            runtime = load_runtime(folder, case["format"])
            golden = read_golden(folder / "golden.bin")
            runtime(*(np.ascontiguousarray(golden[f"input.{ts.name}"][:1]).astype(ts.dtype)
                      for ts in runtime.spec.inputs))
            answer = {"outcome": "ran", "message": ""}
        except (ArtifactError, OutputError) as exc:
            named = folder.name in str(exc)
            answer = {"outcome": "refused" if named else "crash", "message": str(exc)[:300]}
        except Exception as exc:  # noqa: BLE001 - any other type is not the project's clear error
            answer = {"outcome": "crash", "message": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(json.dumps(answer), file=answers, flush=True)


class PythonSurface:
    """One worker process, restarted after it dies; the case that killed it is a crash."""

    def __init__(self):
        self.proc = None

    def _start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "embodied_lib.hostile", "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def outcome(self, folder: Path, fmt: str) -> tuple[str, str]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(json.dumps({"folder": str(folder), "format": fmt}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return "crash", f"the Python process died (exit {code})"
        answer = json.loads(line)
        return answer["outcome"], answer["message"]

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# -- native runners and the controller ----------------------------------------------------------------------

def runner_outcome(runner, model: Path, folder: Path) -> tuple[str, str]:
    from embodied_lib.native import rust_env

    env = rust_env() if runner.language == "Rust" else None
    try:
        proc = subprocess.run([str(runner.binary), str(model), str(folder / "golden.bin"), "--iterations", "1"],
                              capture_output=True, text=True, errors="replace", env=env, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return "hang", ""
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    if proc.returncode == 0:
        try:
            json.loads(proc.stdout)
        except json.JSONDecodeError:
            return "crash", "exit 0 without its JSON"
        return "ran", ""
    if proc.returncode == 1 and last.startswith("error:") and "Sanitizer" not in proc.stderr:
        return ("refused" if folder.name in last else "crash"), last[:300]
    return "crash", f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"


def controller_outcome(exports_root: Path, episodes: Path, model: str, fmt: str) -> tuple[str, str]:
    from embodied_lib.deploy import native_controller as nc
    from embodied_lib.native import CPP_BUILD

    env = {**nc.controller_env(), "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}
    args = [str(CPP_BUILD / "embodied_controller_sanitized"), "run", "--exports", str(exports_root),
            "--episodes", str(episodes), "--models", model, "--ticks", str(CONTROLLER_TICKS), "--free-running",
            "--runtime", CONTROLLER_RUNTIMES[fmt]]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, errors="replace", env=env, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return "hang", ""
    if proc.returncode != 0 or "Sanitizer" in proc.stderr or "runtime error" in proc.stderr:
        return "crash", f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    channel = json.loads(proc.stdout)["channels"][model]
    error = channel.get("guard_startup_error") or ""
    if not error:
        return "ran", ""
    moved_nothing = channel["interventions"] == {"model_unavailable": CONTROLLER_TICKS} and channel["actuations"] == 0
    return ("refused" if moved_nothing else "crash"), error[:300]


# -- the sweep ------------------------------------------------------------------------------------------------

def verdict(outcome: str, mutant: Mutant) -> str:
    return "ran_refusable" if outcome == "ran" and mutant.must_refuse else outcome


def sweep(exports_root, work, per_kind: int = 8, seed: int = 24, models=MODELS, formats=None, surfaces=None,
          controller_per_kind: int = 2, log=print) -> list[dict]:
    """One row per (mutant, surface): model, format, kind, surface, outcome, message."""
    exports_root, work = Path(exports_root), Path(work)
    formats = list(formats or KINDS)
    rows, native_jobs = [], []
    python = PythonSurface() if surfaces is None or "python" in surfaces else None
    episodes = None
    if surfaces is None or "controller" in surfaces:
        from embodied_lib.deploy import native_controller as nc

        episodes = nc.write_episodes(exports_root, work / "episodes", maps=2, scenes=1)
    try:
        for model in models:
            source = exports_root / model
            manifest = json.loads((source / "manifest.json").read_text())
            for fmt in formats:
                entry = next((a for a in manifest["artifacts"] if a["format"] == fmt), None)
                if entry is None:
                    continue
                made = mutants((source / entry["file"]).read_bytes(), fmt, per_kind, seed)
                log(f"  {model} {fmt}: {len(made)} mutants")
                for mutant in made:
                    root = work / f"{model}-{mutant.name}"
                    path = write_hostile_folder(source, root / model, fmt, mutant)
                    base = {"model": model, "format": fmt, "kind": mutant.kind, "case": mutant.name}
                    if python is not None:
                        outcome, message = python.outcome(root / model, fmt)
                        rows.append({**base, "surface": "python", "outcome": verdict(outcome, mutant),
                                     "message": message})
                    if surfaces is None or "runners" in surfaces:
                        for runner in native_runners(fmt):
                            native_jobs.append((base, mutant, runner.name,
                                                lambda r=runner, p=path, f=root / model: runner_outcome(r, p, f)))
                    if episodes is not None and fmt in CONTROLLER_RUNTIMES and mutant.index < controller_per_kind:
                        # the controller gets the mutant as the file it loads for this runtime: ExecuTorch's batch-1
                        # program where the export has one (manifest.batch1_format)
                        loaded, at = batch1_format(manifest, fmt), root
                        if loaded != fmt:
                            at = work / f"{model}-{mutant.name}-controller"
                            write_hostile_folder(source, at / model, loaded, mutant)
                        for other in MODELS:   # the controller reads every model's folder; the others untouched
                            if not (at / other).exists():
                                (at / other).symlink_to((exports_root / other).resolve())
                        native_jobs.append((base, mutant, "controller",
                                            lambda r=at, m=model, f=fmt: controller_outcome(r, episodes, m, f)))
        with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
            results = list(pool.map(lambda job: job[3](), native_jobs))
        for (base, mutant, surface, _), (outcome, message) in zip(native_jobs, results):
            rows.append({**base, "surface": surface, "outcome": verdict(outcome, mutant), "message": message})
    finally:
        if python is not None:
            python.close()
    return rows


def verification_cost(exports_root, repeats: int = 30) -> list[dict]:
    """What ExecuTorch's internal-consistency verification costs at start-up: the median time to load a program
    and its forward method from bytes, minimal vs internal-consistency verification, in one process (the Python
    bindings call the same C++ runtime the runners and the controller link)."""
    import statistics
    import time

    import executorch.kernels.quantized  # noqa: F401  INT8 programs need the quantized kernels
    from executorch.runtime import Runtime, Verification

    from embodied_lib.quiet import native_stderr_filtered

    runtime, rows = Runtime.get(), []
    with native_stderr_filtered():   # XNNPACK's ARM cpuinfo probes on the first load (embodied_lib.quiet)
        for model in MODELS:
            manifest = json.loads((Path(exports_root) / model / "manifest.json").read_text())
            for entry in manifest["artifacts"]:
                if entry["format"] not in ("executorch", "executorch_int8"):
                    continue
                data = (Path(exports_root) / model / entry["file"]).read_bytes()
                row = {"model": model, "format": entry["format"], "bytes": len(data)}
                for name, level in (("minimal_ms", Verification.Minimal),
                                    ("internal_consistency_ms", Verification.InternalConsistency)):
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        runtime.load_program(data, verification=level).load_method("forward")
                        times.append((time.perf_counter() - start) * 1e3)
                    row[name] = round(statistics.median(times), 3)
                row["extra_ms"] = round(row["internal_consistency_ms"] - row["minimal_ms"], 3)
                rows.append(row)
    return rows


def table(rows) -> list[dict]:
    """Per format and surface: how many mutants were tried and how each ended."""
    counts: dict[tuple, Counter] = {}
    for r in rows:
        counts.setdefault((r["format"], r["surface"]), Counter())[r["outcome"]] += 1
    outcomes = ("refused", "ran", "crash", "hang", "ran_refusable")
    return [{"format": f, "surface": s, "tried": sum(c.values()), **{o: c[o] for o in outcomes}}
            for (f, s), c in sorted(counts.items())]


def failures(rows) -> list[dict]:
    return [r for r in rows if r["outcome"] not in HANDLED]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exports_root", nargs="?", type=Path, help="folder with navigation/ and manipulation/ exports")
    parser.add_argument("--per-kind", type=int, default=8, help="mutants of each kind per format (default 8)")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/hostile_files.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker()
        return 0
    if args.exports_root is None or not all((args.exports_root / m / "manifest.json").is_file() for m in MODELS):
        parser.error("EXPORTS_ROOT must hold navigation/ and manipulation/ export folders (make run writes exports/)")
    with tempfile.TemporaryDirectory() as work:
        rows = sweep(args.exports_root, work, args.per_kind, args.seed)
    summary = table(rows)
    print(f"{'format':16s} {'surface':18s} {'tried':>6s} {'refused':>8s} {'ran':>5s} {'crash':>6s} {'hang':>5s} "
          f"{'ran_refusable':>14s}")
    for r in summary:
        print(f"{r['format']:16s} {r['surface']:18s} {r['tried']:6d} {r['refused']:8d} {r['ran']:5d} {r['crash']:6d} "
              f"{r['hang']:5d} {r['ran_refusable']:14d}")
    for f in failures(rows):
        print("  not handled:", f)
    cost = verification_cost(args.exports_root)
    for r in cost:
        print(f"{r['model']} {r['format']}: load {r['minimal_ms']} ms (minimal verification) -> "
              f"{r['internal_consistency_ms']} ms (internal consistency)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"table": summary, "failures": failures(rows), "verification_cost": cost},
                                   indent=2) + "\n")
    print(f"-> {args.out}")
    return 1 if failures(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
