"""Hostile model files (issue 24): an attacker ships a whole export folder, a data-format file mutated and its sha256
and size rewritten in manifest.json. Every surface (Python, each native runner, the C++ controller) refuses it with
an error naming the file or runs it as the file says, never crashes, hangs, aborts or runs a relabelled tensor; and
every loader uses the bytes it verified, never a second read of the path (a patched opener swaps files mid-load)."""
import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest
import torch

from embodied_lib.deploy import native_controller as nc
from embodied_lib.export import FORMATS, export_all
from embodied_lib.export.artifacts import ArtifactError, sha256_of
from embodied_lib.export.mutants import GENERIC, KINDS, Mutant, mutants, write_hostile_folder
from embodied_lib.export.trust import local_public_key
from embodied_lib.hostile import MODELS, failures, sweep, table
from embodied_lib.native import CPP_BUILD, build_cpp, build_rust, runner_named, rust_env
from embodied_lib.registry import load_runtime

SWAP_LIBRARY = CPP_BUILD / "libembodied_swap_on_open.so"
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def built():
    build_cpp(quiet=True)
    build_rust(quiet=True)


@pytest.fixture(scope="module")
def exports_root(tmp_path_factory, navigation_exports, manipulation_exports):
    root = tmp_path_factory.mktemp("hostile_exports")
    (root / "navigation").symlink_to(navigation_exports)
    (root / "manipulation").symlink_to(manipulation_exports[0])
    return root


def test_seeded_mutants_of_every_data_format_never_crash_hang_or_run_relabelled(built, exports_root, tmp_path):
    # 3 seeded mutants of every kind here, on every surface; make bench sweeps 8 per kind (the CLI's default)
    rows = sweep(exports_root, tmp_path, per_kind=3, seed=24, log=lambda *_: None)
    per_format = Counter((r["model"], r["format"]) for r in rows if r["surface"] == "python")
    assert {(m, f) for m in MODELS for f in KINDS} == set(per_format)
    assert min(per_format.values()) >= 3 * len(GENERIC), per_format
    surfaces = {r["surface"] for r in rows}
    assert {"python", "executorch", "executorch_int8", "onnxruntime", "onnxruntime_int8", "libtorch", "tch", "ort",
            "ort_int8", "controller"} <= surfaces
    assert failures(rows) == [], table(rows)
    # the harness can tell the outcomes apart: some mutants change nothing that matters and run, most are refused,
    # and every must-refuse kind (relabelled, restrided, nested, bombs, garbled names, truncations) was refused
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes["ran"] > 0 and outcomes["refused"] > outcomes["ran"]
    for kind in ("relabel_dtype", "stride0", "overlap", "record_short", "record_large", "nested_pickle", "zip_bomb",
                 "reshape", "garbled_name"):
        assert {r["outcome"] for r in rows if r["kind"] == kind} == {"refused"}, kind


def _mutant(export_dir, fmt, kind):
    data = (export_dir / f"{export_dir.name}{FORMATS[fmt].suffix}").read_bytes()
    return next(m for m in mutants(data, fmt, 1, seed=7) if m.kind == kind)


def test_a_pte_that_aborts_executorchs_python_bindings_is_an_artifact_error(exports_root, tmp_path):
    """A non-UTF-8 operator name: ExecuTorch logs it, pybind11 cannot decode it and calls terminate (SIGABRT, a
    dead kernel) even with internal-consistency verification; the sandbox process dies instead of this one."""
    source = exports_root / "manipulation"
    data = (source / "manipulation.pte").read_bytes()
    at = data.index(b"executorch_prim::")
    folder = tmp_path / "manipulation"
    write_hostile_folder(source, folder, "executorch",
                         Mutant("executorch", "garbled_name", 0, data[:at + 17] + b"\xff\xfe" + data[at + 19:]))
    with pytest.raises(ArtifactError, match=r"manipulation\.pte as an ExecuTorch program: the runtime crashed on it "
                                            r"\(signal SIGABRT"):
        load_runtime(folder, "executorch")
    (q,) = load_runtime(exports_root / "navigation", "executorch")(torch.zeros(1, 256).numpy())   # still alive
    assert q.shape == (1, 4)


@pytest.mark.parametrize("model", MODELS)
def test_the_controller_given_a_crafted_model_starts_unavailable_and_moves_nothing(built, exports_root, tmp_path, model):
    root = tmp_path / "exports"
    # the batch-1 program: the file the controller loads for ExecuTorch
    write_hostile_folder(exports_root / model, root / model, "executorch_batch1",
                         _mutant(exports_root / model, "executorch_batch1", "garbled_name"))
    for other in MODELS:
        if other != model:
            (root / other).symlink_to((exports_root / other).resolve())
    episodes = nc.write_episodes(exports_root, tmp_path / "episodes", maps=2, scenes=1)
    report = nc.run_controller("run", root, episodes, None, ["--models", model, "--ticks", 15, "--free-running"])
    channel = report["channels"][model]
    assert f"{model}.batch1.pte" in channel["guard_startup_error"]
    assert channel["interventions"] == {"model_unavailable": 15}
    assert channel["actuations"] == 0


def test_weights_that_are_not_what_the_model_holds_are_named(exports_root, tmp_path):
    source = exports_root / "navigation"
    for fmt, kind, message in [("safetensors", "relabel_dtype", "the model holds torch.float32"),
                               ("pth", "relabel_dtype", "torch.int32, the model holds torch.float32"),
                               ("pth", "stride0", "a stride-0 or overlapping view"),
                               ("pth", "record_large", "has a storage of"),
                               ("pth", "nested_pickle", "its pickle nests 200000 deep"),
                               ("pth", "zip_bomb", "is compressed")]:
        folder = tmp_path / f"{fmt}-{kind}" / "navigation"
        write_hostile_folder(source, folder, fmt, _mutant(source, fmt, kind))
        with pytest.raises(ArtifactError, match=message):
            load_runtime(folder, fmt)


# -- verify what you use: a patched opener swaps files between the reads ---------------------------------------

@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """Another navigation model (other weights, the same contract): what the attacker swaps in."""
    from embodied_lib.navigation.model import navigation_spec

    torch.manual_seed(666)
    spec = navigation_spec()
    out = tmp_path_factory.mktemp("evil") / "navigation"
    export_all(spec, spec.build_model(), out, formats=["onnx", "executorch"], log=lambda *_: None)
    return out


def _swapping_env(folder, swaps, log):
    """LD_PRELOAD the patched opener: on the first open of each trigger, rename a replacement over the target."""
    assert SWAP_LIBRARY.is_file(), "make native builds the patched opener"
    spec = ";".join(f"{folder / trigger}|{folder / target}|{replacement}" for trigger, target, replacement in swaps)
    return {"LD_PRELOAD": str(SWAP_LIBRARY), "EMBODIED_SWAP": spec, "EMBODIED_OPEN_LOG": str(log),
            "EMBODIED_OPEN_WATCH": f"{folder / 'manifest.json'}"}


def _opened(log):
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def _staged(tmp_path, navigation_exports, evil, fmt):
    folder = tmp_path / "navigation"
    shutil.copytree(navigation_exports, folder)
    name = f"navigation{FORMATS[fmt].suffix}"
    replacement = tmp_path / f"evil{FORMATS[fmt].suffix}"
    shutil.copy(evil / name, replacement)
    assert sha256_of(replacement) != sha256_of(folder / name)
    return folder, name, replacement


PY_LOAD = """
import json, sys
import numpy as np
from embodied_lib.export.golden import read_golden
from embodied_lib.registry import load_runtime
from embodied_lib.export.artifacts import ArtifactError
folder, fmt = sys.argv[1], sys.argv[2]
golden = read_golden(folder + "/golden.bin")
try:
    (q,) = load_runtime(folder, fmt, trusted=True)(golden["input.state"])
    print(json.dumps({"max_diff": float(np.abs(q - golden["output.q_values"]).max())}))
except ArtifactError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _python(folder, fmt, env):
    proc = subprocess.run([sys.executable, "-c", PY_LOAD, str(folder), fmt], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _runner(name, folder, model, env, key=False):
    runner = runner_named(name)
    base = rust_env() if runner.language == "Rust" else dict(os.environ)
    args = [str(runner.binary), str(folder / model), str(folder / "golden.bin"), "--iterations", "1"]
    proc = subprocess.run(args + (["--public-key", str(local_public_key())] if key else []), capture_output=True,
                          text=True, env={**base, **env}, timeout=TIMEOUT_S)
    if proc.returncode == 0:
        return json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr[-2000:]
    return {"error": proc.stderr.strip().splitlines()[-1]}


SURFACES = [("python", "onnx"), ("python", "executorch"), ("onnxruntime", "onnx"), ("executorch", "executorch"),
            ("ort", "onnx")]


def _load(surface, fmt, folder, name, env, key=False):
    return _python(folder, fmt, env) if surface == "python" else _runner(surface, folder, name, env, key)


@pytest.mark.parametrize("surface, fmt", SURFACES, ids=[f"{s}-{f}" for s, f in SURFACES])
def test_a_model_swapped_after_it_was_hashed_never_runs(built, navigation_exports, evil, tmp_path, surface, fmt):
    """The swap lands right after the loader's first open of the model: a loader that opened the path again for
    the runtime would run the attacker's weights. Each file is opened once, so the verified bytes run."""
    folder, name, replacement = _staged(tmp_path, navigation_exports, evil, fmt)
    log = tmp_path / "opened.log"
    result = _load(surface, fmt, folder, name, _swapping_env(folder, [(name, name, replacement)], log))
    assert "error" not in result, result
    assert result.get("passed", True) and result["max_abs_diff" if "max_abs_diff" in result else "max_diff"] < 1e-4
    assert sha256_of(folder / name) == sha256_of(evil / name)   # the swap did happen
    assert _opened(log)[str(folder / name)] == 1 and _opened(log)[str(folder / "manifest.json")] == 1


@pytest.mark.parametrize("surface, fmt", SURFACES, ids=[f"{s}-{f}" for s, f in SURFACES])
def test_a_model_swapped_between_the_manifest_and_its_hash_is_refused(built, navigation_exports, evil, tmp_path,
                                                                        surface, fmt):
    folder, name, replacement = _staged(tmp_path, navigation_exports, evil, fmt)
    log = tmp_path / "opened.log"
    result = _load(surface, fmt, folder, name, _swapping_env(folder, [("manifest.json", name, replacement)], log))
    assert "does not match the sha256" in result.get("error", "") or \
        "matches no file the manifest lists" in result.get("error", ""), result
    assert _opened(log)[str(folder / name)] == 1


@pytest.mark.parametrize("surface", ["python", "onnxruntime", "ort"])
def test_a_manifest_swapped_after_its_signature_was_checked_is_not_read_again(built, navigation_exports, evil,
                                                                              tmp_path, surface):
    """Signed folder; right after the loader reads manifest.json the attacker's manifest (naming their model) and
    model replace both. The bytes verified are the bytes parsed, so the attacker's manifest is never read."""
    fmt = "torch_export" if surface == "python" else "onnx"   # Python checks signatures for code formats
    folder, name, replacement = _staged(tmp_path, navigation_exports, evil, "onnx")
    if surface == "python":
        name = "navigation.export.pt2"
        replacement = tmp_path / "evil.export.pt2"
        shutil.copy(folder / name, replacement)
        data = bytearray(replacement.read_bytes())
        data[len(data) // 2] ^= 0xFF
        replacement.write_bytes(bytes(data))
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        if entry["file"] == name:
            entry["sha256"], entry["bytes"] = sha256_of(replacement), replacement.stat().st_size
    forged = tmp_path / "forged_manifest.json"
    forged.write_text(json.dumps(manifest))
    log = tmp_path / "opened.log"
    env = _swapping_env(folder, [("manifest.json", "manifest.json", forged), ("manifest.json", name, replacement)], log)
    result = _load(surface, fmt, folder, name, env, key=True)
    assert "matches no file the manifest lists" in result.get("error", "") or \
        "does not match the sha256" in result.get("error", ""), result   # the genuine manifest, the attacker's file
    assert _opened(log)[str(folder / "manifest.json")] == 1


def test_an_executorch_runtime_from_bytes_keeps_its_program_alive(navigation_exports):
    """The runtime reads a program from its buffer in place: a loader that kept only the method ran on freed memory
    once the program and its bytes were collected (garbage in notebook 04, a segfault here). In a child process,
    since what is under test is a crash; freed blocks of the program's size are refilled with noise first."""
    script = (
        "import gc, os, sys\n"
        "import numpy as np\n"
        "from embodied_lib.export.golden import read_golden\n"
        "from embodied_lib.registry import load_runtime\n"
        "folder = sys.argv[1]\n"
        "run = load_runtime(folder, 'executorch')\n"
        "gc.collect()\n"
        "noise = [os.urandom(os.path.getsize(folder + '/navigation.pte')) for _ in range(50)]\n"
        "golden = read_golden(folder + '/golden.bin')\n"
        "(q,) = run(golden['input.state'])\n"
        "print(float(np.abs(q - golden['output.q_values']).max()))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(navigation_exports)], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert float(proc.stdout.strip().splitlines()[-1]) < 1e-4
