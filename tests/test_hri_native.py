"""The HRI heads in the generic native runners, and the whole text pipeline in Rust."""
import hashlib
import json
import subprocess

import numpy as np
import pytest

from embodied_lib.export.golden import read_golden, write_golden
from embodied_lib.export.manifest import artifact_entry, read_manifest
from embodied_lib.export.trust import local_public_key
from embodied_lib.native import RUNNERS, NativeRunnerError, build_cpp, build_rust, native_parity, run_runner, rust_env
from embodied_lib.hri.model import PIPELINE_OUTPUTS

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
    assert {r["runner"] for r in rows} == {"executorch", "libtorch", "aoti", "onnxruntime", "tch", "ort", "executorch_rs",
                                           "executorch_int8", "onnxruntime_int8", "ort_int8", "executorch_rs_int8"}
    golden = read_golden(root / head / "golden.bin")
    first_output = next(k for k in golden if k.startswith("output."))
    for row in rows:
        if row["runner"].endswith("_int8"):   # INT8: the manifest's looser rule, checked by the runner itself
            assert row["passed"] and row["tolerance"] > TOLERANCE, row
            continue
        assert row["max_abs_diff"] <= TOLERANCE and row["passed"], row
        if head == "action_classifier":  # probabilities: judged by their argmax
            assert row["decision"] == "argmax" and row["decisions"] == golden[first_output].argmax(axis=1).tolist()
        else:  # continuous parameters: judged by value only, never by an argmax
            assert row["decision"] is None and row["decisions"] == []


def test_rust_text_pipeline_agrees_with_python_on_every_command(built, hri_exports):
    root, _ = hri_exports
    rows = [r for r in native_parity(root / "command_pipeline", iterations=5) if r["runner"] == "text_pipeline"]
    assert len(rows) == 1
    lines = (root / "command_pipeline" / "text_golden.jsonl").read_text().splitlines()
    assert rows[0]["vectors"] == len(lines) > 250
    # the decision is the whole command: action, decoded parameters, refused or not (and why), made in Rust
    # from the manifest's schema and threshold, equal to Python's on every line
    assert rows[0]["decision"] == "command" and rows[0]["decision_agreement"] == 1.0
    assert rows[0]["max_abs_diff"] <= 1e-4 and rows[0]["passed"]
    texts = [json.loads(line)["text"] for line in lines]
    assert "" in texts and any(len(t) > 300 for t in texts) and any("🤖" in t for t in texts)


def test_text_pipeline_pte_runs_in_the_executorch_runners_with_int64_token_ids(built, hri_exports, tmp_path):
    """The text pipeline's .pte (fp32 and INT8) takes int64 token ids and an int64 mask: both ExecuTorch runners turn
    golden.bin's whole numbers back into int64 and keep the parity rule of each file; a fraction is refused."""
    root, _ = hri_exports
    export = root / "command_pipeline"
    rows = {r["runner"]: r for r in native_parity(export, iterations=3)}
    assert set(rows) == {"text_pipeline", "executorch", "executorch_int8", "executorch_rs", "executorch_rs_int8"}, rows
    assert all(r["passed"] for r in rows.values()), rows
    assert all(r["vectors"] == 32 for name, r in rows.items() if name != "text_pipeline"), rows
    assert rows["executorch"]["max_abs_diff"] <= 1e-4 and rows["executorch_rs"]["max_abs_diff"] <= 1e-4
    assert rows["executorch"]["decisions"] == rows["executorch_rs"]["decisions"]   # the action argmax, per command
    golden = read_golden(export / "golden.bin")
    ids = golden["input.input_ids"].copy()
    ids[0, 1] += 0.5   # no token id is a fraction
    golden["input.input_ids"] = ids
    write_golden(tmp_path / "golden.bin", golden)
    for name in ("executorch", "executorch_rs"):
        runner = next(r for r in RUNNERS if r.name == name)
        with pytest.raises(NativeRunnerError, match="int64, but the golden file holds .*not a whole number"):
            run_runner(runner, export / "command_pipeline.pte", tmp_path / "golden.bin", 1,
                       manifest=export / "manifest.json")


def test_rust_text_pipeline_checks_the_parameters_too(built, hri_exports, tmp_path):
    root, _ = hri_exports
    export = root / "command_pipeline"
    model = export / "command_pipeline.onnx"
    result = run_runner(PIPELINE, model, export / "text_golden.jsonl", 1)
    assert set(result["max_abs_diff_by_output"]) == set(PIPELINE_OUTPUTS)
    assert result["max_abs_diff_by_output"]["slot_probs"] <= result["tolerance"] == 1e-4
    # one colour score of one command off by 0.01: the action probabilities still agree, the run must not pass
    rows = [json.loads(line) for line in (export / "text_golden.jsonl").read_text().splitlines()]
    rows[3]["colour_probs"][2] += 0.01
    rows[5]["decision"]["refused"] = "out of range"   # and one decision Python did not make
    tampered = tmp_path / "text_golden.jsonl"
    tampered.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run_runner(PIPELINE, model, tampered, 1, manifest=export / "manifest.json")
    assert abs(result["max_abs_diff_by_output"]["colour_probs"] - 0.01) < 1e-3
    assert result["max_abs_diff_by_output"]["action_probs"] <= 1e-4 and not result["passed"]
    assert result["decision"]["agreement"] == result["decision"]["compared"] - 1 == len(rows) - 1


def _folder_listing(folder, export, files):
    """A copy of the export's manifest in ``folder`` that lists ``files`` (name -> bytes) with their real
    hashes: what someone who controls the folder can write (the signature is what they cannot)."""
    manifest = json.loads((export / "manifest.json").read_text())
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
        entry = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for key in ("artifacts", "extra_files"):
            for e in manifest[key]:
                if e["file"] == name:
                    e.update(entry)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


def test_rust_text_pipeline_bad_inputs(built, hri_exports, tmp_path):
    root, _ = hri_exports
    export = root / "command_pipeline"
    model, golden = export / "command_pipeline.onnx", export / "text_golden.jsonl"
    broken = tmp_path / "command_pipeline.onnx"
    broken.write_bytes(model.read_bytes()[:100_000])
    with pytest.raises(NativeRunnerError, match="truncated, corrupted or replaced"):   # checked against the manifest
        run_runner(PIPELINE, broken, golden, 1, manifest=export / "manifest.json")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / model.name).write_bytes(model.read_bytes())
    with pytest.raises(NativeRunnerError, match="tokenizer.json not found"):
        run_runner(PIPELINE, alone / model.name, golden, 1, manifest=export / "manifest.json")
    swapped = (export / "tokenizer.json").read_text().replace('"red"', '"tmp"').replace('"blue"', '"red"')
    (alone / "tokenizer.json").write_text(swapped.replace('"tmp"', '"blue"'))
    with pytest.raises(NativeRunnerError, match=r"tokenizer.json \(\d+ bytes\) matches no file the manifest lists"):
        run_runner(PIPELINE, alone / model.name, golden, 1, manifest=export / "manifest.json")
    # a folder whose manifest vouches for a broken file: the runtime's own error, naming the file
    tokenizer = (export / "tokenizer.json").read_bytes()
    manifest = _folder_listing(tmp_path / "lying", export, {model.name: broken.read_bytes(), "tokenizer.json": tokenizer})
    with pytest.raises(NativeRunnerError, match="cannot load .*command_pipeline.onnx as an ONNX model"):
        run_runner(PIPELINE, tmp_path / "lying" / model.name, golden, 1, manifest=manifest)
    head = (root / "action_classifier" / "action_classifier.onnx").read_bytes()
    manifest = _folder_listing(tmp_path / "head", export, {model.name: head, "tokenizer.json": tokenizer})
    with pytest.raises(NativeRunnerError, match="not a text pipeline"):
        run_runner(PIPELINE, tmp_path / "head" / model.name, golden, 1, manifest=manifest)
    # ...and a signature check catches every one of these folders
    with pytest.raises(NativeRunnerError, match="manifest signature .* not found"):
        run_runner(PIPELINE, tmp_path / "head" / model.name, golden, 1, manifest=manifest, public_key=local_public_key())
    bad_golden = tmp_path / "bad.jsonl"
    bad_golden.write_text('{"text": "stop"}\nnot json\n')
    with pytest.raises(NativeRunnerError, match="no action_probs|not JSON"):
        run_runner(PIPELINE, model, bad_golden, 1, manifest=export / "manifest.json")
    bad_golden.write_text('{"text": "stop", "action_probs": [0.1, "x"], "slot_probs": [[0.5]]}\n')
    with pytest.raises(NativeRunnerError, match="action_probs holds a non-number"):
        run_runner(PIPELINE, model, bad_golden, 1, manifest=export / "manifest.json")
    help_run = subprocess.run([str(PIPELINE.binary), "--help"], capture_output=True, text=True, env=rust_env())
    assert help_run.returncode == 0 and "usage:" in help_run.stdout


def test_heads_manifest_carries_the_schema_for_native_decoding(hri_exports):
    root, _ = hri_exports
    for head in ("action_classifier", "param_extractor"):
        meta = read_manifest(root / head)["metadata"]
        assert len(meta["command_schema"]["parameters"]) == 10 and meta["confidence_threshold"] == 0.5
    assert np.isfinite(read_golden(root / "param_extractor" / "golden.bin")["output.params"]).all()


TWINS = [r for r in RUNNERS if r.runs == "architecture"]


@pytest.mark.parametrize("runner", TWINS, ids=[r.name for r in TWINS])
def test_twins_build_from_the_manifest_and_refuse_what_they_cannot(built, hri_exports, tmp_path, runner):
    root, _ = hri_exports
    export = root / "action_classifier"
    manifest = read_manifest(export)
    weights = export / artifact_entry(manifest, runner.artifact)["file"]
    renamed = tmp_path / f"mystery{weights.suffix}"  # the file name no longer matters: the manifest does
    renamed.write_bytes(weights.read_bytes())
    result = run_runner(runner, renamed, export / "golden.bin", 1, manifest=export / "manifest.json")
    assert result["passed"] and result["model_name"] == "action_classifier"

    def with_manifest(change):
        edited = json.loads(json.dumps(manifest))
        change(edited)
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps(edited))
        return path

    lstm = with_manifest(lambda m: m["architecture"]["nodes"].insert(2, {"op": "lstm", "params": "rnn"}))
    with pytest.raises(NativeRunnerError, match="unsupported layer 'lstm'") as err:
        run_runner(runner, renamed, export / "golden.bin", 1, manifest=lstm)
    assert err.value.returncode == 1
    deeper = with_manifest(lambda m: m["architecture"]["nodes"].append(
        {"op": "linear", "params": "fc3", "in_features": 6, "out_features": 6}))
    with pytest.raises(NativeRunnerError, match="no (entry|tensor) fc3.weight"):
        run_runner(runner, renamed, export / "golden.bin", 1, manifest=deeper)
    none = with_manifest(lambda m: m.update(architecture=None))
    with pytest.raises(NativeRunnerError, match="no architecture a twin can rebuild"):
        run_runner(runner, renamed, export / "golden.bin", 1, manifest=none)
