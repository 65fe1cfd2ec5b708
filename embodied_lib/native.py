"""Build and run the native runners (native/cpp, native/rust) against the virtualenv's libraries.

    python -m embodied_lib.native build            # C++ (CMake) and Rust (Cargo), release mode
    python -m embodied_lib.native parity exports/navigation

Every runner takes the same arguments (``MODEL GOLDEN [--manifest M] [--iterations N]``), reads the
export folder's manifest.json (how outputs are judged, the tolerance, and for the twins the layer
graph) and prints one JSON object of one schema (RUNNER_KEYS), so the tests and the notebooks loop
over RUNNERS.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embodied_lib.cli import int_in
from embodied_lib.config import REPO_ROOT
from embodied_lib.export import FORMATS
from embodied_lib.export.manifest import artifact_entry, read_manifest
from embodied_lib.export.parity import served_formats
from embodied_lib.export.trust import local_public_key

NATIVE_DIR = REPO_ROOT / "native"
CPP_SOURCE = NATIVE_DIR / "cpp"
CPP_BUILD = CPP_SOURCE / "build"
RUST_WORKSPACE = NATIVE_DIR / "rust"
RUST_BIN = RUST_WORKSPACE / "target" / "release"


class NativeRunnerError(RuntimeError):
    """A runner exited non-zero; the message is its one-line error, ``returncode`` its exit code."""

    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True)
class Runner:
    name: str
    language: str
    binary: Path
    artifact: str                     # which exported format it loads
    # which models: "float32 inputs", "float32 or int64 inputs" (the ExecuTorch runners: token ids too), "architecture"
    # (twins) or a model name
    runs: str = "float32 inputs"
    note: str = ""
    golden: str = "golden.bin"        # what it checks against, in the export folder


PTE_INPUTS = "float32 or int64 inputs"
RUNNERS = (
    Runner("executorch", "C++", CPP_BUILD / "executorch_runner", "executorch", PTE_INPUTS,
           note="ExecuTorch Module API, XNNPACK backend, optimized kernels"),
    Runner("libtorch", "C++", CPP_BUILD / "libtorch_runner", "pth", "architecture",
           note="twin: network rebuilt in LibTorch from the manifest's layer graph, plain-dict .pth via pickle_load"),
    Runner("aoti", "C++", CPP_BUILD / "aoti_runner", "aoti", note="AOTIModelPackageLoader"),
    Runner("onnxruntime", "C++", CPP_BUILD / "onnxruntime_runner", "onnx", note="ONNX Runtime C++ API"),
    Runner("executorch_int8", "C++", CPP_BUILD / "executorch_runner", "executorch_int8", PTE_INPUTS,
           note="the same ExecuTorch runner on the INT8 .pte"),
    Runner("executorch_undelegated", "C++", CPP_BUILD / "executorch_runner", "executorch_undelegated", PTE_INPUTS,
           note="the same ExecuTorch runner on the .pte with no delegate (what XNNPACK's SIMD kernels buy)"),
    Runner("onnxruntime_int8", "C++", CPP_BUILD / "onnxruntime_runner", "onnx_int8",
           note="the same ONNX Runtime runner on the INT8 .onnx"),
    Runner("tch", "Rust", RUST_BIN / "tch_runner", "safetensors", "architecture",
           note="twin: network rebuilt with tch-rs from the manifest's layer graph, weights from .safetensors"),
    Runner("ort", "Rust", RUST_BIN / "ort_runner", "onnx", note="ort crate, load-dynamic"),
    Runner("ort_int8", "Rust", RUST_BIN / "ort_runner", "onnx_int8", note="the same ort runner on the INT8 .onnx"),
    Runner("executorch_rs", "Rust", RUST_BIN / "executorch_runner", "executorch", PTE_INPUTS,
           note="executorch crate (Program API), the wheel's XNNPACK backend and optimized kernels"),
    Runner("executorch_rs_int8", "Rust", RUST_BIN / "executorch_runner", "executorch_int8", PTE_INPUTS,
           note="the same executorch crate runner on the INT8 .pte"),
    Runner("executorch_rs_undelegated", "Rust", RUST_BIN / "executorch_runner", "executorch_undelegated", PTE_INPUTS,
           note="the same executorch crate runner on the .pte with no delegate"),
    Runner("text_pipeline", "Rust", RUST_BIN / "hri_pipeline", "onnx", "command_pipeline",
           note="raw text -> tokenizers (tokenizer.json) -> ONNX Runtime", golden="text_golden.jsonl"),
)
# The one JSON schema every runner prints (native/cpp/runner_common.hpp, native/rust/runner-common).
RUNNER_KEYS = {"runner", "model", "model_name", "vectors", "max_abs_diff", "max_abs_diff_by_output", "tolerance",
               "required_agreement", "decision", "passed", "outputs", "latency_ms", "peak_rss_mb"}


def runner_named(name: str) -> Runner:
    found = [r for r in RUNNERS if r.name == name]
    if not found:
        raise KeyError(f"no runner {name!r}; runners: {[r.name for r in RUNNERS]}")
    return found[0]


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def onnxruntime_library() -> Path:
    found = sorted((site_packages() / "onnxruntime" / "capi").glob("libonnxruntime.so.*"))
    if not found:
        raise FileNotFoundError("no libonnxruntime.so.* in the onnxruntime wheel; is onnxruntime installed?")
    return found[-1]


def _tool(name: str) -> str:
    """Prefer the virtualenv's tool (pip's cmake >= 3.28), then PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        hint = {"cargo": "install Rust (https://rustup.rs) or Debian's cargo",
                "cmake": "pip install cmake (make setup does)"}.get(name, f"install {name}")
        raise FileNotFoundError(f"{name} not found: {hint}")
    return found


def cpp_commands(jobs: int = 2) -> list[list[str]]:
    """The CMake configure and build commands (the notebook shows and runs these)."""
    cmake = _tool("cmake")
    return [[cmake, "-S", str(CPP_SOURCE), "-B", str(CPP_BUILD), "-DCMAKE_BUILD_TYPE=Release",
             f"-DSITE_PACKAGES={site_packages()}"],
            [cmake, "--build", str(CPP_BUILD), "-j", str(jobs)]]


# the defines the executorch wheel's libraries were built with (executorch-config.cmake)
EXECUTORCH_DEFINES = ["-DET_EVENT_TRACER_ENABLED", "-DET_USE_THREADPOOL"]


def rust_env() -> dict:
    """tch links the torch inside this virtualenv; ort loads the onnxruntime wheel's library; executorch-runner links
    the executorch wheel's."""
    torch_lib = site_packages() / "torch" / "lib"
    env = dict(os.environ)
    env.update({
        "PATH": os.pathsep.join(dict.fromkeys([str(Path(sys.executable).parent),
                                               *env.get("PATH", "").split(os.pathsep)])),
        "LIBTORCH_USE_PYTORCH": "1",
        # torch reports "2.13.0+cu130"; tch 0.26 is made for 2.13.0, only the local label differs.
        "LIBTORCH_BYPASS_VERSION_CHECK": "1",
        "RUSTFLAGS": f"-C link-args=-Wl,-rpath,{torch_lib}",
        "ORT_DYLIB_PATH": str(onnxruntime_library()),
        # The executorch crate: no linking of its own (it expects CMake static libraries; the wheel has shared
        # ones, which executorch-runner/build.rs links), and its C++ bridge compiled with the defines the wheel's
        # libraries were built with (executorch-config.cmake's INTERFACE_COMPILE_DEFINITIONS).
        "EXECUTORCH_RS_LINK": "0",
        "EXECUTORCH_LIB_DIR": str(site_packages() / "executorch" / "lib"),
        "CXXFLAGS": " ".join(dict.fromkeys(env.get("CXXFLAGS", "").split() + EXECUTORCH_DEFINES)),
    })
    return env


def rust_command() -> list[str]:
    return [_tool("cargo"), "build", "--release", "--manifest-path", str(RUST_WORKSPACE / "Cargo.toml")]


def shared_libraries(binary: Path, env: dict | None = None) -> dict:
    """The shared libraries ``binary`` loads (ldd): name -> size in bytes."""
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env).stdout
    libraries = {}
    for line in listing.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].strip().startswith("/"):
            libraries[parts[0].strip()] = os.path.getsize(parts[1].split("(")[0].strip())
    return libraries


def _slug(language: str) -> str:
    return language.lower().replace("+", "p")   # C++ -> cpp, Rust -> rust: file names


@contextmanager
def _build_lock(language: str):
    """One build per language at a time on this machine: make test runs two pytest workers, and a notebook's build
    cell and a test's fixture may both reach CMake's build folder (Cargo locks its own, but waiting here is clearer)."""
    import fcntl

    lock = REPO_ROOT / "native" / f".build-{_slug(language)}.lock"
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_cpp(quiet: bool = False) -> None:
    with _build_lock("C++"):
        for cmd in cpp_commands():
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if quiet else None)


def build_rust(quiet: bool = False) -> None:
    with _build_lock("Rust"):
        subprocess.run(rust_command() + (["--quiet"] if quiet else []), check=True, env=rust_env())


def build_logged(language: str, log_dir) -> str:
    """Build the C++ (CMake) or Rust (Cargo) programs, release mode, with the whole log in ``log_dir``; one line
    saying what happened. A failed build raises with the log's last lines (the notebook shows those)."""
    import time

    commands, env = {"C++": (cpp_commands(), None), "Rust": ([rust_command()], rust_env())}[language]
    log = Path(log_dir) / f"build-{_slug(language)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _build_lock(language), open(log, "w") as f:
        for cmd in commands:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            if proc.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"{language} build failed (exit {proc.returncode}); last lines of {log}:\n{tail}")
    binaries = sorted(r.binary.name for r in RUNNERS if r.language == language and r.binary.exists())
    return (f"{language} built in {time.perf_counter() - started:.0f} s ({'CMake' if language == 'C++' else 'Cargo'}, "
            f"release): {', '.join(dict.fromkeys(binaries))}; full log: {log}")


def run_runner(runner: Runner, model: Path, golden: Path, iterations: int = 100, manifest: Path | None = None,
               public_key: Path | None = None) -> dict:
    """Run one native runner; its JSON as a dict, or NativeRunnerError with its message.

    ``manifest`` defaults to the manifest.json beside the model, else beside the golden file.
    ``public_key``: the runner verifies the manifest's signature with it; runners of code-carrying formats
    (AOTInductor) require one and get this machine's export key by default."""
    if not runner.binary.exists():
        raise FileNotFoundError(f"{runner.binary} is not built; run `make native`")
    model, golden = Path(model), Path(golden)
    if manifest is None:
        beside_model = model.parent / "manifest.json"
        manifest = beside_model if beside_model.is_file() else golden.parent / "manifest.json"
    env = rust_env() if runner.language == "Rust" else None
    if public_key is None and FORMATS[runner.artifact].carries_code:
        public_key = local_public_key()
    key_args = ["--public-key", str(public_key)] if public_key is not None else []
    proc = subprocess.run([str(runner.binary), str(model), str(golden), "--manifest", str(manifest),
                           "--iterations", str(iterations), *key_args], capture_output=True, text=True, errors="replace", env=env)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        raise NativeRunnerError(errors[-1] if errors else proc.stderr.strip()[-400:] or f"exit {proc.returncode}",
                                proc.returncode)
    return json.loads(proc.stdout)


def report_summary(report: dict) -> dict:
    """A runner's JSON report in one screen line: what ran, how close, the decisions kept, the time."""
    d = report.get("decision") or {}
    return {"runner": report["runner"], "file": Path(report["model"]).name, "vectors": report["vectors"],
            "max_abs_diff": report["max_abs_diff"], "tolerance": report["tolerance"],
            "decisions": f"{d['rule']} {d['agreement']}/{d['compared']}" if d else "none (continuous outputs)",
            "passed": report["passed"], "p50_ms": report["latency_ms"]["p50"]}


def tensor_runner_inputs(dtypes) -> bool:
    """Whether every generic tensor runner takes inputs of these dtypes: float32 only (golden.bin stores every tensor
    as float32; only the ExecuTorch runners, PTE_INPUTS, also turn whole numbers back into int64 token ids)."""
    return all(d == "float32" for d in dtypes)


def pte_runner_inputs(dtypes) -> bool:
    """Whether the ExecuTorch runners (C++ and Rust) take inputs of these dtypes: float32 or int64."""
    return all(d in ("float32", "int64") for d in dtypes)


def runners_for(manifest: dict, language: str | None = None) -> list[Runner]:
    """The runners that can run this export (of one language, if given)."""
    dtypes = [i["dtype"] for i in manifest["inputs"]]
    all_float = tensor_runner_inputs(dtypes)
    formats = set(served_formats(manifest))   # a file that failed parity at export is never run

    def fits(r: Runner) -> bool:
        if r.artifact not in formats or (language and r.language != language):
            return False
        if r.runs == "architecture":
            return all_float and manifest.get("architecture") is not None
        if r.runs == PTE_INPUTS:
            return pte_runner_inputs(dtypes)
        return all_float if r.runs == "float32 inputs" else manifest["model"] == r.runs
    return [r for r in RUNNERS if fits(r)]


def exported_models(exports_dir, models=None) -> list[str]:
    """The model folders under ``exports_dir`` (or ``models``), after checking notebook 04 has run."""
    found = sorted(p.parent.name for p in Path(exports_dir).glob("*/manifest.json"))
    if not found:
        raise FileNotFoundError(f"no {exports_dir}/<model>/manifest.json: run notebooks 01-04 first")
    missing = sorted(set(models or ()) - set(found))
    if missing:
        raise FileNotFoundError(f"not exported: {missing} (exported: {found})")
    return list(models or found)


def p50_in_turns(jobs: dict, rounds: int, iterations: int | dict = 500) -> dict:
    """Batch-1 p50 of each job, ``label -> (runner name, export folder, format)``, as the median of ``rounds``
    processes per job taken in turns (job A, job B, ..., then again). At a few microseconds a call one process alone
    is no measurement: the same navigation .pte read 0.0067 ms in one process and 0.0116 ms in the next, so two
    files compared from one process each can differ by 1.7x with no difference between them. ``iterations``: timed
    runs per process, or ``{label: n}``."""
    resolved = {}
    for label, (name, folder, fmt) in jobs.items():   # manifests read once, not once per round
        folder, runner = Path(folder), runner_named(name)
        manifest = read_manifest(folder)
        resolved[label] = (runner, folder / artifact_entry(manifest, fmt)["file"], folder / runner.golden,
                           folder / "manifest.json")
    p50s = {label: [] for label in jobs}
    for _ in range(rounds):
        for label, (runner, model, golden, manifest) in resolved.items():
            n = iterations[label] if isinstance(iterations, dict) else iterations
            p50s[label].append(run_runner(runner, model, golden, n, manifest)["latency_ms"]["p50"])
    return {label: {"p50_ms": float(statistics.median(v)), "round_p50s_ms": v} for label, v in p50s.items()}


def native_parity(export_dir, iterations: int = 200, language: str | None = None,
                  iterations_by_format: dict | None = None) -> list[dict]:
    """Every runner (of ``language``, if given) that supports the model, against ``export_dir``'s golden files;
    ``iterations`` timed runs each, or ``iterations_by_format[format]`` for a runner of that format."""
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    rows = []
    for runner in runners_for(manifest, language):
        model = export_dir / artifact_entry(manifest, runner.artifact)["file"]
        n = (iterations_by_format or {}).get(runner.artifact, iterations)
        result = run_runner(runner, model, export_dir / runner.golden, n, export_dir / "manifest.json")
        decision = result["decision"]
        rows.append({"runner": runner.name, "language": runner.language, "file": model.name,
                     "vectors": result["vectors"], "max_abs_diff": result["max_abs_diff"],
                     "tolerance": result["tolerance"], "decision": decision["rule"],
                     "decision_agreement": (decision["agreement"] / decision["compared"]
                                            if decision["rule"] and decision["compared"] else None),
                     "passed": result["passed"], "decisions": decision["values"], "peak_rss_mb": result["peak_rss_mb"],
                     **{f"{k}_ms": result["latency_ms"][k] for k in ("p50", "p99", "mean")}, "iterations": n})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the C++ and Rust runners (release)")
    build.add_argument("--only", choices=["cpp", "rust"], help="build one language only")
    parity = sub.add_parser("parity", help="run every runner on an export folder's golden vectors")
    parity.add_argument("export_dir", type=Path)
    parity.add_argument("--iterations", type=int_in(1, 1_000_000), default=200)
    parity.add_argument("--language", choices=["C++", "Rust"], help="one language's runners only")
    args = parser.parse_args(argv)
    if args.command == "build":
        from embodied_lib.config import RUNS_DIR
        # one after the other, each log in its own file. Side by side (four compile jobs on two cores) took 278 s in
        # one fresh clone, in turn 97 + 196 = 293 s in the next: no gain worth the interleaved load
        for lang, only in (("C++", "cpp"), ("Rust", "rust")):
            if args.only in (None, only):
                try:
                    print(build_logged(lang, RUNS_DIR / "native"), flush=True)
                except RuntimeError as exc:
                    sys.exit(f"error: {exc}")
    else:
        for row in native_parity(args.export_dir, args.iterations, args.language):
            print(json.dumps({k: v for k, v in row.items() if k != "decisions"}))


if __name__ == "__main__":
    main()
