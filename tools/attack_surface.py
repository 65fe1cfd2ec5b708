"""Re-run the hardening categories of issue 15 against every surface and count the outcomes.

    .venv/bin/python tools/attack_surface.py [--out runs/bench/attack_surface.json]

Needs the native runners built (make native). Exports a seeded, untrained model of each kind into a
temporary folder (the export path, not the weights, is under attack), then tries each case:
handled = a clear error of the documented kind (ArtifactError / InputError / a refused Decision / an
``error:`` line with exit 1-2); crash = a signal or an unexpected exception type; silent wrong = success
where the input had to be refused (or a payload ran); hang = past the time limit.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from embodied_lib.export import FORMATS, export_all  # noqa: E402
from embodied_lib.export.artifacts import ArtifactError, sha256_of  # noqa: E402
from embodied_lib.export.golden import read_golden  # noqa: E402
from embodied_lib.export.golden_corpus import crafted_cases, mutations  # noqa: E402
from embodied_lib.export.trust import local_public_key  # noqa: E402
from embodied_lib.native import RUNNERS, rust_env  # noqa: E402
from embodied_lib.registry import load_runtime  # noqa: E402
from embodied_lib.spec import InputError  # noqa: E402
from test_hardening import craft_pickle_payload  # noqa: E402

LIMIT_S = 60
OUTCOMES = ("handled", "crash", "silent_wrong", "hang")


class Hang(Exception):
    pass


def _alarm(*_):
    raise Hang()


def in_process(fn, expected_errors, must_fail=True):
    """Outcome of calling fn(): the expected error type -> handled; success -> silent wrong if it had to fail."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        fn()
        return "silent_wrong" if must_fail else "handled"
    except Hang:
        return "hang"
    except expected_errors:
        return "handled"
    except AssertionError:   # a check of the result failed: it answered, wrongly
        return "silent_wrong"
    except Exception:   # noqa: BLE001 - any other type is an error that names nothing useful, or worse
        return "crash"
    finally:
        signal.alarm(0)


def subprocess_outcome(cmd, env=None, must_fail=True):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return "hang"
    if proc.returncode < 0 or proc.returncode > 2:
        return "crash"
    if proc.returncode == 0:
        if not must_fail:
            return "handled"
        try:
            return "handled" if not json.loads(proc.stdout).get("passed", True) else "silent_wrong"
        except json.JSONDecodeError:
            return "crash"
    lines = proc.stderr.strip().splitlines()
    return "handled" if lines and (lines[-1].startswith("error:") or proc.returncode == 2) else "crash"


def rewrite(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def loading_cases(source, work):
    cases = []
    for fmt, f in FORMATS.items():
        for damage in ("missing", "truncated", "zeroed", "flipped"):
            def case(fmt=fmt, damage=damage, f=f):
                folder = fresh(source, work)
                path = folder / f"navigation{f.suffix}"
                data = bytearray(path.read_bytes())
                if damage == "missing":
                    path.unlink()
                elif damage == "truncated":
                    path.write_bytes(data[: len(data) // 2])
                elif damage == "zeroed":
                    path.write_bytes(bytes(len(data)))
                else:
                    data[len(data) // 2] ^= 0xFF
                    path.write_bytes(bytes(data))
                load_runtime(folder, fmt, trusted=True)
            cases.append(case)
    manifest_changes = [
        lambda m: m.pop("artifacts"), lambda m: m["artifacts"][0].update(bytes="801822"),
        lambda m: m["artifacts"][0].update(file="../../../../../etc/passwd"),
        lambda m: m["artifacts"][0].update(sha256=None), lambda m: m.update(inputs=[]),
        lambda m: m.update(model=["x"]), lambda m: m["golden"].update(count=-1), lambda m: m.update(tolerance=None),
    ]
    for change in manifest_changes:
        def case(change=change):
            folder = fresh(source, work)
            rewrite(folder, change)
            load_runtime(folder, "onnx")
        cases.append(case)
    for text in (b"\xe9\xff", b"[" * 200_000, b"", b"null", b"{}"):
        def case(text=text):
            folder = fresh(source, work)
            (folder / "manifest.json").write_bytes(text)
            load_runtime(folder, "onnx")
        cases.append(case)
    names = ([f"{fmt} {d}" for fmt in FORMATS for d in ("missing", "truncated", "zeroed", "flipped")]
             + [f"manifest change {i}" for i in range(len(manifest_changes))] + [f"manifest bytes {i}" for i in range(5)])
    return [(f"loading: {n}", c, (ArtifactError,)) for n, c in zip(names, cases)]


def pickle_case(source, work):
    """A pickle payload in .export.pt2 with rewritten hashes; 'silent wrong' if the payload runs."""
    folder = fresh(source, work)
    marker = folder / "payload_ran"
    craft_pickle_payload(folder / "navigation.export.pt2", marker)   # the test's payload, one definition
    rewrite(folder, lambda m: [a.update(sha256=sha256_of(folder / a["file"]), bytes=(folder / a["file"]).stat().st_size)
                               for a in m["artifacts"]])
    outcomes = []
    for trusted in (False, True):
        outcome = in_process(lambda: load_runtime(folder, "torch_export", trusted=trusted), (ArtifactError,))
        outcomes.append("silent_wrong" if marker.exists() else outcome)
    return outcomes


def fresh(source, work):
    folder = Path(tempfile.mkdtemp(dir=work)) / "navigation"
    shutil.copytree(source, folder)
    return folder


def input_cases(nav, manip, pipeline):
    state = np.zeros((1, 256), np.float32)
    cases = [
        (lambda: nav(state[:, :200]),), (lambda: nav(state.astype(np.float64)),),
        (lambda: nav(np.full((1, 256), np.nan, np.float32)),), (lambda: nav(np.full((1, 256), np.inf, np.float32)),),
        (lambda: nav(np.full((1, 256), 3e38, np.float32)),), (lambda: nav(np.zeros((0, 256), np.float32)),),
        (lambda: nav([[0.0] * 256]),), (lambda: nav(state, state),),
        (lambda: manip(np.zeros((2, 3, 400, 400), np.float32), np.zeros((1, 10), np.float32)),),
        (lambda: manip(np.full((1, 3, 400, 400), 255, np.float32), np.zeros((1, 10), np.float32)),),
        (lambda: manip(np.zeros((1, 3, 400, 400), np.float32), np.full((1, 10), 1e6, np.float32)),),
        (lambda: pipeline(np.array([[101, -5, 102]]), np.ones((1, 3), np.int64)),),
        (lambda: pipeline(np.array([[101, 10**6, 102]]), np.ones((1, 3), np.int64)),),
        (lambda: pipeline(np.array([[101, 5, 102]]), np.full((1, 3), 2, np.int64)),),
        (lambda: pipeline(np.array([[101, 5, 102]]), np.zeros((1, 3), np.int64)),),
        (lambda: pipeline(np.zeros((2, 3), np.int64) + 101, np.ones((1, 3), np.int64)),),
        (lambda: pipeline(np.zeros((1, 100), np.int64) + 101, np.ones((1, 100), np.int64)),),
    ]
    return [(f"inputs: {i}", c[0], (InputError,)) for i, c in enumerate(cases)]


HOSTILE_TEXT = ["pick up the \u202ebuc der\u202c cube", "pick up the red\ud800 cube", "rotate 99999999999999999999999999 degrees",
                "move forward -500 meters", "turn 1e9 degrees", "", "   ", "\x00\x00", "🤖" * 50, "stop " * 300,
                "go to row 10 column 1", "move back 3 metres", "turn right 270 degrees", "pick up the orange cube",
                "\u200f\u200epick", "go to (3, 5)\n\r\t", "ＧＯ ＴＯ ３ ５", "move 5e2 cm"]


def text_cases(interpreter, rng):
    from embodied_lib.hri.commands import out_of_range

    def check(text):
        d = interpreter.act(text)
        if d.refused:
            assert d.reason and d.action is None
        else:
            assert not out_of_range(d.action["params"]), "accepted out of range"
    alphabet = list("abcdefghijklmnopqrstuvwxyz 0123456789-.,!?") + ["\u202e", "\ud800", "\u0000", "🤖", "é", "\u200f"]
    randoms = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 60)))) for _ in range(200)]
    return [(f"text: {t[:20]!r}", (lambda t=t: check(t)), ()) for t in HOSTILE_TEXT + randoms]


def native_cases(source, work):
    golden = read_golden(source / "golden.bin")
    rows = []
    key = str(local_public_key())
    for runner in [r for r in RUNNERS if r.golden == "golden.bin"]:
        env = rust_env() if runner.language == "Rust" else None
        manifest = json.loads((source / "manifest.json").read_text())
        model = source / next(a["file"] for a in manifest["artifacts"] if a["format"] == runner.artifact)
        base = [str(runner.binary), str(model)]
        extra = ["--manifest", str(source / "manifest.json"), "--public-key", key]
        files = {**{k: v for k, (v, _) in crafted_cases(golden["input.state"], golden["output.q_values"]).items()},
                 **{f"m{i}": m for i, m in enumerate(mutations((source / "golden.bin").read_bytes(), 40))}}
        for name, data in files.items():
            path = Path(tempfile.mkdtemp(dir=work)) / f"{name}.bin"
            path.write_bytes(data)
            rows.append((f"native {runner.name}: golden {name}", base + [str(path), "--iterations", "1"] + extra, env,
                         name in dict(crafted_cases(golden["input.state"], golden["output.q_values"]))))
        for value in ("99999999999", "2147483648", "1e3", "5abc", "-1", "0"):
            rows.append((f"native {runner.name}: iterations {value}",
                         base + [str(source / "golden.bin"), "--iterations", value] + extra, env, True))
        rows.append((f"native {runner.name}: /dev/zero model", [str(runner.binary), "/dev/zero", str(source / "golden.bin")]
                     + extra, env, True))
        flipped = fresh(source, work)
        target = flipped / model.name
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        rows.append((f"native {runner.name}: flipped byte", [str(runner.binary), str(target), str(flipped / "golden.bin"),
                                                            "--public-key", key], env, True))
    return rows


def cli_cases():
    py = sys.executable
    return [
        [py, "-m", "embodied_lib.navigation.train", "--total-steps", "0"],
        [py, "-m", "embodied_lib.navigation.train", "--out", "/proc/nope"],
        [py, "-m", "embodied_lib.manipulation.train", "--episodes", "1"],
        [py, "-m", "embodied_lib.hri.train", "--out", "/proc/nope"],
        [py, "-m", "embodied_lib.export", "--parity-inputs", "0"],
        [py, "-m", "embodied_lib.native", "parity", ".", "--iterations", "99999999999"],
        [py, "-m", "embodied_lib.runtime.latency", "/nonexistent"],
        [py, "-m", "embodied_lib.workbook", "--profile", "huge"],
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "attack_surface.json")
    args = parser.parse_args(argv)
    from embodied_lib.hri.interpreter import CommandInterpreter
    from embodied_lib.hri.model import build_command_pipeline, command_pipeline_spec
    from embodied_lib.manipulation.model import manipulation_spec
    from embodied_lib.navigation.model import navigation_spec

    quiet = lambda *_: None   # noqa: E731
    table = {s: Counter() for s in ("loading an export folder", "running a loaded model", "command interpreter",
                                    "native runners", "CLIs")}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(0)
        nav_spec = navigation_spec()
        export_all(nav_spec, nav_spec.build_model(), work / "navigation", log=quiet)
        manip_spec = manipulation_spec()
        export_all(manip_spec, manip_spec.build_model(), work / "manipulation", log=quiet, formats=["onnx"])
        tiny = {"vocab_size": 30522, "dim": 32, "n_layers": 1, "n_heads": 2, "hidden_dim": 64,
                "max_position_embeddings": 128, "activation": "gelu"}
        pipe_spec = command_pipeline_spec(tiny, confidence_threshold=0.5)
        export_all(pipe_spec, build_command_pipeline(tiny, embed_dim=32).eval(), work / "command_pipeline", log=quiet,
                   formats=["onnx"])

        def record(surface, name, outcome):
            table[surface][outcome] += 1
            if outcome != "handled":
                failures.append({"surface": surface, "case": name, "outcome": outcome})

        for name, fn, errors in loading_cases(work / "navigation", work):
            record("loading an export folder", name, in_process(fn, errors))
        for i, outcome in enumerate(pickle_case(work / "navigation", work)):
            record("loading an export folder", f"pickle payload (trusted={bool(i)})", outcome)
        nav = load_runtime(work / "navigation", "onnx")
        manip = load_runtime(work / "manipulation", "onnx")
        pipeline = load_runtime(work / "command_pipeline", "onnx")
        for name, fn, errors in input_cases(nav, manip, pipeline):
            record("running a loaded model", name, in_process(fn, errors))
        interpreter = CommandInterpreter.from_exports(work / "command_pipeline", "onnx")
        for name, fn, errors in text_cases(interpreter, np.random.default_rng(0)):
            outcome = in_process(fn, (), must_fail=False)
            record("command interpreter", name, outcome)
        for name, cmd, env, must_fail in native_cases(work / "navigation", work):
            record("native runners", name, subprocess_outcome(cmd, env, must_fail))
        for cmd in cli_cases():
            record("CLIs", " ".join(cmd[2:]), subprocess_outcome(cmd, None, True))
    rows = [{"surface": s, "tried": sum(c.values()), **{o: c[o] for o in OUTCOMES}} for s, c in table.items()]
    print(f"{'surface':28s} {'tried':>6s} " + " ".join(f"{o:>12s}" for o in OUTCOMES))
    for r in rows:
        print(f"{r['surface']:28s} {r['tried']:6d} " + " ".join(f"{r[o]:12d}" for o in OUTCOMES))
    for f in failures:
        print("  not handled:", f)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "failures": failures}, indent=2) + "\n")
    print(f"-> {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
