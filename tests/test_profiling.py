"""INT8 exports, the memory harness, the TorchScript baseline and the claim verdicts (embodied_lib.profiling)."""
import json
import shutil

import numpy as np
import pytest
import torch

from embodied_lib.export import FORMATS, export_all, parity_rule
from embodied_lib.export.artifacts import ArtifactError
from embodied_lib.export.golden import read_golden
from embodied_lib.export.manifest import artifact_entry, read_manifest
from embodied_lib.navigation.model import navigation_spec
from embodied_lib.profiling import bench, memory, torchscript
from embodied_lib.registry import load_runtime
from embodied_lib.runtime.runtimes import compare_outputs, run_batched

INT8 = [name for name, f in FORMATS.items() if f.lossy]


@pytest.fixture(scope="module")
def decisive_navigation(tmp_path_factory):
    """An untrained navigation net whose last layer is scaled up, so its Q-values have clear winners (an
    untrained net's near-ties would make 'keeps its decisions' vacuous). INT8's error grows with the scale: x10 reads
    max |diff| 0.125 on the 1,000 parity inputs, inside navigation's 0.25 (x40, the scale before the export judged
    every file, read 0.49 and its INT8 files were refused)."""
    torch.manual_seed(5)
    spec = navigation_spec()
    model = spec.build_model()
    with torch.no_grad():
        model.fc4.weight.mul_(10)
    out = tmp_path_factory.mktemp("int8") / "navigation"
    export_all(spec, model, out, formats=("safetensors", "executorch", "onnx", *INT8), log=lambda *_: None)
    return spec, model, out


def test_int8_is_in_the_registry_and_the_manifest(decisive_navigation):
    spec, _, out = decisive_navigation
    manifest = read_manifest(out)
    for fmt in INT8:
        entry = artifact_entry(manifest, fmt)
        rule = parity_rule(spec, fmt)
        assert {k: entry["parity"][k] for k in rule} == rule and entry["parity"]["tolerance"] > spec.tolerance
        assert entry["parity"]["passed"] and 0 < entry["parity"]["max_abs_diff"] <= rule["tolerance"]
        float_entry = artifact_entry(manifest, fmt.removesuffix("_int8"))
        assert entry["bytes"] < 0.35 * float_entry["bytes"], fmt   # int8 weights: about a quarter
        assert float_entry["parity"]["agreement"] == 1.0


@pytest.mark.parametrize("fmt", INT8)
def test_int8_keeps_decisions_on_golden_inputs(decisive_navigation, fmt):
    spec, _, out = decisive_navigation
    golden = read_golden(out / "golden.bin")
    runtime = load_runtime(out, fmt)      # through the manifest: schema, sha256, contract
    got = run_batched(runtime, (golden["input.state"],))
    result = compare_outputs(spec, (golden["output.q_values"],), got, parity_rule(spec, fmt))
    assert result["passed"], result
    counted = len(golden["input.state"]) - result["near_ties"]
    assert counted >= 24 and result["decision_agreement"]["q_values.argmax"] >= spec.int8_agreement
    # and the float rule would refuse it: INT8 really is lossy, the looser rule is what lets it pass
    assert not compare_outputs(spec, (golden["output.q_values"],), got)["passed"]


@pytest.mark.parametrize("fmt", INT8)
def test_truncated_int8_file_is_refused(decisive_navigation, tmp_path, fmt):
    _, _, out = decisive_navigation
    copy = tmp_path / "navigation"
    shutil.copytree(out, copy)
    path = copy / artifact_entry(read_manifest(copy), fmt)["file"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="truncated or replaced"):
        load_runtime(copy, fmt)


def test_memory_grows_with_a_bigger_model(decisive_navigation, hri_exports, tmp_path):
    """The harness must be able to fail: a model with ~30 MiB more weights must cost ~30 MiB more."""
    from embodied_lib.hri.model import build_command_pipeline, command_pipeline_spec
    _, _, small = decisive_navigation
    encoder = {"vocab_size": 30522, "dim": 256, "n_layers": 1, "n_heads": 4, "hidden_dim": 512,
               "max_position_embeddings": 128, "activation": "gelu"}
    torch.manual_seed(0)
    spec = command_pipeline_spec(encoder, confidence_threshold=0.5)
    big = tmp_path / "command_pipeline"
    export_all(spec, build_command_pipeline(encoder, embed_dim=256).eval(), big, formats=("onnx",), log=lambda *_: None)
    small_numbers, big_numbers = memory.measure(small, "onnx"), memory.measure(big, "onnx")
    weights_mb = artifact_entry(read_manifest(big), "onnx")["bytes"] / 2**20
    assert weights_mb > 30
    assert big_numbers["model_mb"] - small_numbers["model_mb"] > 0.7 * weights_mb, (small_numbers, big_numbers)
    assert abs(big_numbers["baseline_mb"] - small_numbers["baseline_mb"]) < 50   # same imports in every child


def test_memory_harness_reports_a_failing_child_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="memory child for onnx"):
        memory.measure(tmp_path, "onnx")


def test_executorch_planned_memory_is_read_from_the_program(decisive_navigation):
    spec, _, out = decisive_navigation
    planned = bench.planned_memory(out / "navigation.pte")
    # activations of the widest layer at the largest batch the export accepts, float32
    assert planned["bytes"] >= spec.max_batch * 256 * 4


def test_trace_freezes_a_branch_that_export_reports():
    demo = torchscript.branch_demo()
    assert demo["trace_is_silently_wrong"] and demo["tracer_warnings"]
    assert demo["export_refuses"] and "data-dependent" in demo["export_error"]
    assert demo["cond_export_is_right"]


def test_torchscript_trace_of_a_model_matches_eager(tmp_path):
    torch.manual_seed(2)
    spec = navigation_spec()
    model = spec.build_model()
    path = torchscript.trace(spec, model, tmp_path / "nav.torchscript.pt")
    x = torch.from_numpy(spec.sample_inputs(5, 1)[0])
    torch.testing.assert_close(torch.jit.load(str(path))(x), model(x))


def _model(memory_rows, file_ratio, latency=None):
    return {"sizes": {"int8_over_fp32": {"executorch_int8": file_ratio}}, "memory": memory_rows, "latency": latency or []}


def test_verdicts_can_say_a_claim_does_not_hold():
    python = lambda runtime, fmt, mb: {"runtime": runtime, "language": "Python", "format": fmt, "model_mb": mb, "peak_mb": 700 + mb}
    rows = [python("Python ExecuTorch", "executorch", 72.0), python("Python TorchScript (retired)", "torchscript", 11.0),
            python("Python ExecuTorch INT8", "executorch_int8", 71.0)]
    latency = [{"runtime": "Python eager", "p50_ms": 1.0}, {"runtime": "C++ executorch_int8", "p50_ms": 0.6}]
    claims = bench.verdicts({"navigation": _model(rows, 0.27, latency)})
    by_claim = {c["claim"]: c for c in claims}
    assert by_claim["ExecuTorch uses 10-50 % less memory than TorchScript"]["verdict"] == "ExecuTorch uses more"
    int8 = by_claim["INT8 gives a 4x memory reduction"]
    assert int8["verdict"] == "holds for the file; not in a running process" and int8["file_reduction_x"]["executorch_int8"] == 3.7
    assert by_claim["batch-1 latency: native ExecuTorch INT8 vs Python eager fp32"]["verdict"] == "does not hold here"
    rows[0]["model_mb"] = 8.0
    claims = bench.verdicts({"navigation": _model(rows, 0.27)})
    assert claims[0]["verdict"] == "holds" and claims[0]["ratio"] == pytest.approx(8 / 11, abs=1e-3)
    rows.append(python("Python ExecuTorch (batch-1 program)", "executorch", 4.0))   # preferred when measured
    claims = bench.verdicts({"navigation": _model(rows, 0.27)})
    assert claims[0]["verdict"] == "ExecuTorch uses less, by more than 50 %" and claims[0]["shipped_dynamic_batch_model_mb"] == 8.0


def test_rust_and_cpp_executorch_are_timed_in_turns_on_the_same_files(decisive_navigation):
    from embodied_lib.native import native_parity

    _, _, out = decisive_navigation
    measured = native_parity(out, 20)
    rows = bench.rust_vs_cpp(out, None, measured, 50, rounds=2)
    assert {r["file"] for r in rows} == {"executorch", "executorch_int8"}
    for r in rows:
        assert len(r["cpp_round_p50s_ms"]) == len(r["rust_round_p50s_ms"]) == r["rounds"] == 2
        assert r["cpp_p50_ms"] == pytest.approx(float(np.median(r["cpp_round_p50s_ms"])))
        assert r["ratio"] == round(r["rust_p50_ms"] / r["cpp_p50_ms"], 3)
    claims = bench.verdicts({"navigation": {**_model([], 0.27), "rust_vs_cpp": [{**rows[0], "ratio": 1.42}]}})
    rust = [c for c in claims if c["claim"].startswith("Rust + ExecuTorch")]
    assert [c["verdict"] for c in rust] == ["does not hold here"]


def test_accuracy_table_compares_int8_with_its_float_twin(decisive_navigation):
    from embodied_lib.profiling.accuracy import accuracy_table
    _, _, out = decisive_navigation
    table = accuracy_table(out, ["executorch", "executorch_int8"], "quick", log=lambda *_: None)
    assert table["formats"]["executorch"]["episodes"] == 500
    delta = table["int8_delta"]["executorch_int8"]
    points = 100 * (table["formats"]["executorch_int8"]["success_rate"] - table["formats"]["executorch"]["success_rate"])
    assert delta["vs"] == "executorch" and delta["points"] == pytest.approx(points, abs=0.01)
    assert delta["within"] == (points >= -1.0)
    json.dumps(table)   # what the CLI writes
    assert np.isfinite(table["formats"]["executorch"]["success_rate"])
