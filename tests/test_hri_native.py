"""The HRI heads in the generic native runners, and the whole text pipeline in Rust."""
import json
import subprocess

import numpy as np
import pytest

from embodied_lib.export.golden import read_golden
from embodied_lib.export.manifest import read_manifest
from embodied_lib.native import RUNNERS, NativeRunnerError, build_cpp, build_rust, native_parity, run_runner, rust_env

TOLERANCE = 1e-5          # heads: same float32 arithmetic, another summation order
PIPELINE = next(r for r in RUNNERS if r.name == "text_pipeline")


@pytest.fixture(scope="module")
def built():
    build_cpp(quiet=True)
    build_rust(quiet=True)


@pytest.mark.parametrize("head", ["action_classifier", "param_extractor"])
def test_heads_run_in_every_tensor_runner(built, hri_exports, head):
    root, _ = hri_exports
    rows = native_parity(root / head, iterations=5)
    assert {r["runner"] for r in rows} == {"executorch", "libtorch", "aoti", "onnxruntime", "tch", "ort"}
    golden = read_golden(root / head / "golden.bin")
    first_output = next(k for k in golden if k.startswith("output."))
    for row in rows:
        assert row["max_abs_diff"] <= TOLERANCE, row
        assert row["actions"] == golden[first_output].argmax(axis=1).tolist()


def test_rust_text_pipeline_agrees_with_python_on_every_command(built, hri_exports):
    root, _ = hri_exports
    rows = native_parity(root / "command_pipeline", iterations=5)
    assert [r["runner"] for r in rows] == ["text_pipeline"]
    lines = (root / "command_pipeline" / "text_golden.jsonl").read_text().splitlines()
    assert rows[0]["vectors"] == len(lines) > 250
    assert rows[0]["action_agreement"] == len(lines)
    assert rows[0]["max_abs_diff"] <= 1e-4
    texts = [json.loads(line)["text"] for line in lines]
    assert "" in texts and any(len(t) > 300 for t in texts) and any("🤖" in t for t in texts)


def test_rust_text_pipeline_bad_inputs(built, hri_exports, tmp_path):
    root, _ = hri_exports
    export = root / "command_pipeline"
    model, golden = export / "command_pipeline.onnx", export / "text_golden.jsonl"
    broken = tmp_path / "command_pipeline.onnx"
    broken.write_bytes(model.read_bytes()[:100_000])
    with pytest.raises(NativeRunnerError, match="tokenizer"):  # no tokenizer.json beside it
        run_runner(PIPELINE, broken, golden, 1)
    (tmp_path / "tokenizer.json").write_bytes((export / "tokenizer.json").read_bytes())
    with pytest.raises(NativeRunnerError, match="cannot load .*command_pipeline.onnx as an ONNX model"):
        run_runner(PIPELINE, broken, golden, 1)
    bad_golden = tmp_path / "bad.jsonl"
    bad_golden.write_text('{"text": "stop"}\nnot json\n')
    with pytest.raises(NativeRunnerError, match="no probs|not JSON"):
        run_runner(PIPELINE, model, bad_golden, 1)
    with pytest.raises(NativeRunnerError, match="not a text pipeline"):
        (tmp_path / "x").mkdir()
        head = root / "action_classifier" / "action_classifier.onnx"
        (tmp_path / "x" / "tokenizer.json").write_bytes((export / "tokenizer.json").read_bytes())
        (tmp_path / "x" / "m.onnx").write_bytes(head.read_bytes())
        run_runner(PIPELINE, tmp_path / "x" / "m.onnx", golden, 1)
    help_run = subprocess.run([str(PIPELINE.binary), "--help"], capture_output=True, text=True, env=rust_env())
    assert help_run.returncode == 0 and "usage:" in help_run.stdout


def test_heads_manifest_carries_the_schema_for_native_decoding(hri_exports):
    root, _ = hri_exports
    for head in ("action_classifier", "param_extractor"):
        meta = read_manifest(root / head)["metadata"]
        assert len(meta["command_schema"]["parameters"]) == 10 and meta["confidence_threshold"] == 0.5
    assert np.isfinite(read_golden(root / "param_extractor" / "golden.bin")["output.params"]).all()


@pytest.mark.parametrize("runner", [r for r in RUNNERS if r.name in ("libtorch", "tch")], ids=["libtorch", "tch"])
def test_rebuilt_network_runners_refuse_an_unknown_model_name(built, hri_exports, tmp_path, runner):
    root, _ = hri_exports
    source = root / "action_classifier" / f"action_classifier{'.pth' if runner.name == 'libtorch' else '.safetensors'}"
    renamed = tmp_path / f"mystery{source.suffix}"
    renamed.write_bytes(source.read_bytes())
    with pytest.raises(NativeRunnerError, match="unknown model 'mystery'"):
        run_runner(runner, renamed, root / "action_classifier" / "golden.bin", 1)
    wrong = tmp_path / f"navigation{source.suffix}"  # a head's weights under the navigation name
    wrong.write_bytes(source.read_bytes())
    with pytest.raises(NativeRunnerError, match="no (entry|tensor) fc3.weight"):
        run_runner(runner, wrong, root / "action_classifier" / "golden.bin", 1)
