"""Hostile files and arguments against every tensor runner (C++ and Rust): an error line and exit 1
(2 for usage), never a signal, a hang, a read past a buffer or a silently wrong parity."""
import json
import os
import shutil
import subprocess

import pytest

from embodied_lib.export.golden import read_golden, write_golden
from embodied_lib.export.golden_corpus import crafted_cases
from embodied_lib.export.manifest import artifact_entry, read_manifest
from embodied_lib.export.trust import generate_keypair, local_public_key, sign_manifest
from embodied_lib.native import RUNNERS, NativeRunnerError, build_cpp, build_rust, run_runner, rust_env

TENSOR_RUNNERS = [r for r in RUNNERS if r.golden == "golden.bin"]
IDS = [r.name for r in TENSOR_RUNNERS]
TIMEOUT_S = 60   # a runner that reads /dev/zero or a FIFO forever fails the test instead of hanging CI


@pytest.fixture(scope="module")
def built():
    build_cpp(quiet=True)
    build_rust(quiet=True)


def model_file(export_dir, runner):
    return export_dir / artifact_entry(read_manifest(export_dir), runner.artifact)["file"]


def run_raw(runner, args):
    env = rust_env() if runner.language == "Rust" else None
    key = ["--public-key", str(local_public_key())] if runner.artifact == "aoti" else []
    return subprocess.run([str(runner.binary), *map(str, args), *key], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT_S)


def assert_clean_error(proc, pattern=None, code=1):
    assert proc.returncode == code, (proc.returncode, proc.stderr[-400:])   # negative = killed by a signal
    lines = proc.stderr.splitlines()   # ExecuTorch logs its CPU probe first; the error is the runner's last line
    assert code == 2 or (lines and lines[-1].startswith("error:")), proc.stderr[-400:]
    if pattern:
        assert pattern in proc.stderr, proc.stderr[-400:]


@pytest.mark.parametrize("runner", TENSOR_RUNNERS, ids=IDS)
def test_crafted_golden_files(built, navigation_exports, tmp_path, runner):
    golden = read_golden(navigation_exports / "golden.bin")
    model = model_file(navigation_exports, runner)
    for name, (data, message) in crafted_cases(golden["input.state"], golden["output.q_values"]).items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        assert_clean_error(run_raw(runner, [model, path, "--iterations", 1, "--manifest",
                                            navigation_exports / "manifest.json"]), message)


@pytest.mark.parametrize("runner", TENSOR_RUNNERS, ids=IDS)
@pytest.mark.parametrize("value", ["99999999999", "2147483648", "1e3", "5abc", "-1", "0", "", "1000001"])
def test_iterations_must_be_a_plain_integer_in_range(built, navigation_exports, runner, value):
    golden = navigation_exports / "golden.bin"
    proc = run_raw(runner, [model_file(navigation_exports, runner), golden, "--iterations", value])
    assert_clean_error(proc, "--iterations must be an integer from 1 to 1000000", code=2)


@pytest.mark.parametrize("runner", TENSOR_RUNNERS, ids=IDS)
def test_special_files_are_refused_not_read_forever(built, navigation_exports, tmp_path, runner):
    golden = navigation_exports / "golden.bin"
    assert_clean_error(run_raw(runner, ["/dev/zero", golden, "--manifest", navigation_exports / "manifest.json"]),
                       "not a regular file")
    fifo = tmp_path / "golden.fifo"
    os.mkfifo(fifo)
    assert_clean_error(run_raw(runner, [model_file(navigation_exports, runner), fifo]), "not a regular file")


@pytest.mark.parametrize("runner", TENSOR_RUNNERS, ids=IDS)
def test_a_changed_model_file_is_caught_by_its_hash(built, navigation_exports, tmp_path, runner):
    folder = tmp_path / "navigation"
    shutil.copytree(navigation_exports, folder)
    model = model_file(folder, runner)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF   # same size, one byte flipped
    model.write_bytes(bytes(data))
    assert_clean_error(run_raw(runner, [model, folder / "golden.bin"]), "matches no file the manifest lists")


@pytest.mark.parametrize("runner", TENSOR_RUNNERS, ids=IDS)
def test_signature_is_verified_by_name(built, navigation_exports, tmp_path, runner):
    folder = tmp_path / "navigation"
    shutil.copytree(navigation_exports, folder)
    model, golden = model_file(folder, runner), folder / "golden.bin"
    result = run_runner(runner, model, golden, 1, public_key=local_public_key())   # signed here: runs
    assert result["passed"]
    generate_keypair(tmp_path / "other")
    sign_manifest(folder, tmp_path / "other" / "signing_key.pem")                 # now signed by another key
    with pytest.raises(NativeRunnerError, match="does not verify against the public key"):
        run_runner(runner, model, golden, 1, public_key=local_public_key())


def test_aoti_runner_refuses_to_run_without_a_key(built, navigation_exports):
    aoti = next(r for r in TENSOR_RUNNERS if r.artifact == "aoti")
    proc = subprocess.run([str(aoti.binary), str(model_file(navigation_exports, aoti)),
                           str(navigation_exports / "golden.bin")], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert_clean_error(proc, "carry code that runs when loaded")


@pytest.mark.parametrize("runner", TENSOR_RUNNERS, ids=IDS)
def test_paths_with_quotes_and_backslashes_give_valid_json(built, navigation_exports, tmp_path, runner):
    folder = tmp_path / 'we"ird\\dir'
    shutil.copytree(navigation_exports, folder)
    proc = run_raw(runner, [model_file(folder, runner), folder / "golden.bin", "--iterations", 1])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"] == str(model_file(folder, runner))


@pytest.mark.parametrize("runner", TENSOR_RUNNERS, ids=IDS)
def test_golden_written_with_fewer_output_rows_by_the_python_writer(built, navigation_exports, tmp_path, runner):
    golden = read_golden(navigation_exports / "golden.bin")
    golden["output.q_values"] = golden["output.q_values"][:5]
    write_golden(tmp_path / "short.bin", golden)
    assert_clean_error(run_raw(runner, [model_file(navigation_exports, runner), tmp_path / "short.bin",
                                        "--manifest", navigation_exports / "manifest.json"]), "one row per vector")
