"""Every exported format, loaded through its own runtime, reproduces eager PyTorch."""
import json

import numpy as np
import pytest
import torch

from embodied_lib.export import FORMATS, parity_rule
from embodied_lib.export.artifacts import sha256_of
from embodied_lib.export.golden import read_golden
from embodied_lib.export.manifest import FORMAT_NAMES, artifact_entry, read_manifest
from embodied_lib.registry import load_runtime
from embodied_lib.runtime.runtimes import eager_runtime, parity_report
from embodied_lib.spec import InputError

# Tolerance: float32 kernels may sum in another order (XNNPACK, ONNX Runtime), which moves
# outputs of this size by ~1e-7; 1e-5 leaves room for that and catches any real change.
TOLERANCE = 1e-5   # INT8 files are judged by their own, looser rule (parity_rule; tests/test_profiling.py)


def test_parity_on_1000_states_for_every_format(navigation_model, navigation_exports):
    spec, model = navigation_model
    rows = parity_report(navigation_exports, eager_runtime(spec, model), n=1000)
    assert {r["format"] for r in rows} == set(FORMATS)
    for row in rows:
        assert row["inputs"] == 1000 and row["passed"], row
        if FORMATS[row["format"]].lossy:
            assert row["max_abs_diff"] <= parity_rule(spec, row["format"])["tolerance"], row
            continue
        assert row["max_abs_diff"] <= TOLERANCE, row
        assert row["decision_agreement"] == {"q_values.argmax": 1.0}, row
        assert row["passed"], row


@pytest.mark.parametrize("fmt", [f for f in FORMATS if not FORMATS[f].max_batch])
@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch(navigation_model, navigation_exports, fmt, batch):
    spec, model = navigation_model
    (states,) = spec.sample_inputs(batch, seed=3)
    (got,) = load_runtime(navigation_exports, fmt, trusted=True)(states)
    with torch.no_grad():
        expected = model(torch.from_numpy(states)).numpy()
    assert got.shape == (batch, 4)
    np.testing.assert_allclose(got, expected, atol=parity_rule(spec, fmt)["tolerance"], rtol=0)


def test_the_batch1_program_is_what_a_loop_loads_and_it_refuses_a_batch(navigation_model, navigation_exports):
    """ExecuTorch plans activation memory for the largest batch a program takes: the robot's loops load the program
    made for batch 1, listed in the manifest with its max_batch; it refuses a batch with a clear error."""
    spec, model = navigation_model
    assert artifact_entry(read_manifest(navigation_exports), "executorch_batch1")["max_batch"] == 1
    loop = load_runtime(navigation_exports, "executorch", batch1=True)
    assert loop.format == "executorch_batch1" and loop.path.name == "navigation.batch1.pte"
    assert load_runtime(navigation_exports, "onnx", batch1=True).format == "onnx"   # no batch-1 file of its own
    (states,) = spec.sample_inputs(2, seed=3)
    (got,) = loop(states[:1])
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(states[:1])).numpy(), atol=TOLERANCE, rtol=0)
    with pytest.raises(InputError, match=r"batch size must be in \[1, 1\], got 2"):
        loop(states)
    assert load_runtime(navigation_exports, "executorch").format == "executorch"   # batched work keeps the shipped file


def test_manifest_describes_every_artifact(navigation_exports):
    manifest = json.loads((navigation_exports / "manifest.json").read_text())
    assert manifest["model"] == "navigation"
    assert manifest["metadata"]["channels"] == ["agent", "goal", "obstacle", "visited"]
    assert manifest["metadata"]["actions"] == ["up", "down", "left", "right"]
    assert set(manifest["versions"]) >= {"torch", "executorch", "onnx", "onnxruntime"}
    assert all(manifest["versions"][k] for k in ("torch", "executorch", "onnx", "onnxruntime"))
    assert [a["format"] for a in manifest["artifacts"]] == list(FORMATS)
    for artifact in manifest["artifacts"]:
        path = navigation_exports / artifact["file"]
        assert sha256_of(path) == artifact["sha256"]
        assert path.stat().st_size == artifact["bytes"]
        assert artifact["inputs"] == [{"name": "state", "shape": ["batch", 256], "dtype": "float32", "valid": [0.0, 1.0]}]
        assert artifact["outputs"] == [{"name": "q_values", "shape": ["batch", 4], "dtype": "float32",
                                        "judged": {"kind": "discrete", "labels": ["up", "down", "left", "right"]}}]


def test_golden_vectors_hold_eager_outputs(navigation_model, navigation_exports):
    spec, model = navigation_model
    golden = read_golden(navigation_exports / "golden.bin")
    assert list(golden) == ["input.state", "output.q_values"]
    assert golden["input.state"].shape == (32, 256)
    with torch.no_grad():
        expected = model(torch.from_numpy(golden["input.state"])).numpy()
    assert np.array_equal(golden["output.q_values"], expected)


def test_pth_is_a_plain_dict_that_loads_with_weights_only(navigation_exports):
    state = torch.load(navigation_exports / "navigation.pth", weights_only=True)
    assert type(state) is dict  # an OrderedDict is what C++ pickle_load rejects
    assert sorted(state) == sorted(f"fc{i}.{p}" for i in range(1, 5) for p in ("weight", "bias"))


def test_the_manifest_schema_names_every_registry_format():
    assert FORMAT_NAMES == tuple(FORMATS)   # a format the schema does not know would make its manifests unreadable


def test_a_profile_can_leave_formats_out_of_one_model(navigation_model, tmp_path):
    """The quick profile's export settings (config "export"): the named model loses those formats, the others keep
    all of theirs, and parity covers exactly what was written."""
    from embodied_lib.config import get_config
    from embodied_lib.export.workflow import export_and_check_all
    from embodied_lib.spec import save_checkpoint

    spec, model = navigation_model
    save_checkpoint(spec, model, tmp_path / "runs" / "navigation")
    assert get_config("export", "full")["skip_formats"] == {}
    results = export_and_check_all({"navigation": tmp_path / "runs" / "navigation"}, tmp_path / "exports",
                                   formats=["onnx", "executorch", "executorch_int8"], parity_inputs=20,
                                   skip_formats={"navigation": ("executorch_int8",), "command_pipeline": ("onnx",)},
                                   log=lambda *_: None)
    written = [a["format"] for a in results["navigation"]["manifest"]["artifacts"]]
    assert written == ["onnx", "executorch"] and [r["format"] for r in results["navigation"]["parity"]] == written
    assert not (tmp_path / "exports" / "navigation" / "navigation.int8.pte").exists()


def test_a_failed_int8_file_is_recorded_and_never_served(failed_int8_exports):
    """Issue 43: the export writes each file's parity verdict into its manifest entry; Python's loader refuses a file
    whose verdict failed, naming why, and serves the rest. parity_report reports it without loading it."""
    from embodied_lib.export.artifacts import ArtifactError
    from embodied_lib.registry import get_spec, load_runtime
    from embodied_lib.runtime.runtimes import eager_runtime, parity_report

    manifest = read_manifest(failed_int8_exports)
    verdicts = {a["format"]: a["parity"] for a in manifest["artifacts"]}
    assert {f: v["passed"] for f, v in verdicts.items()} == {"executorch": True, "onnx": True, "executorch_int8": False,
                                                             "onnx_int8": False}
    assert all(v["inputs"] == 1000 and v["max_abs_diff"] > v["tolerance"] for f, v in verdicts.items() if "int8" in f)
    for fmt in ("executorch_int8", "onnx_int8"):
        with pytest.raises(ArtifactError, match=r"navigation\.int8\.\w+ failed its parity check at export: max \|diff\| "
                                                r"[\d.e-]+ against a tolerance of 1e-09.*never served"):
            load_runtime(failed_int8_exports, fmt)
    load_runtime(failed_int8_exports, "onnx")   # the files that passed load as ever
    spec = get_spec("navigation")
    rows = {r["format"]: r for r in parity_report(failed_int8_exports, eager_runtime(spec, spec.build_model()), n=5)}
    assert not rows["onnx_int8"]["passed"] and "never served" in rows["onnx_int8"]["refused"]


def test_a_file_without_a_verdict_is_refused(navigation_exports, tmp_path):
    """A manifest entry with no verdict (an older export, or one edited by hand) is not served either."""
    import shutil

    from embodied_lib.export.artifacts import ArtifactError
    from embodied_lib.registry import load_runtime

    folder = tmp_path / "navigation"
    shutil.copytree(navigation_exports, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["artifacts"]:
        del entry["parity"]["passed"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="navigation.onnx has no parity verdict in its manifest.*re-export it"):
        load_runtime(folder, "onnx")


def test_the_workflow_goes_on_past_a_failed_int8_file_and_stops_on_a_float_one(navigation_model, tmp_path, monkeypatch):
    """export_and_check: a lossy file that fails is in the rows (and the summary names it) and the export returns;
    a float file that fails raises, after the manifest that records it is written."""
    import dataclasses

    from embodied_lib.export import workflow
    from embodied_lib.workbook import summary

    spec, model = navigation_model
    strict = dataclasses.replace(spec, int8_tolerance=1e-9)
    monkeypatch.setattr(workflow, "load_checkpoint", lambda _: (strict, model))
    out = tmp_path / "exports" / "navigation"
    result = workflow.export_and_check("unused", out, formats=["onnx", "onnx_int8"], parity_inputs=50, log=lambda *_: None)
    assert [(r["format"], r["passed"]) for r in result["parity"]] == [("onnx", True), ("onnx_int8", False)]
    shown = summary(tmp_path / "runs", tmp_path / "exports")
    assert "FAILED (never served)" in shown and "Files refused by every loader" in shown
    assert "navigation/navigation.int8.onnx failed its parity check" in shown

    wrong = dataclasses.replace(spec, tolerance=1e-30)   # no float runtime sums in eager's exact order
    monkeypatch.setattr(workflow, "load_checkpoint", lambda _: (wrong, model))
    with pytest.raises(workflow.FloatParityError, match="float files failed parity"):
        workflow.export_and_check("unused", out, formats=["executorch"], parity_inputs=50, log=lambda *_: None)
    assert read_manifest(out)["artifacts"][0]["parity"]["passed"] is False


def test_a_verdict_of_nan_outputs_is_refused_with_its_reason():
    """A file whose outputs held NaN or Inf records max_abs_diff null (no number to record); its refusal says so
    instead of failing to format the missing number."""
    from embodied_lib.export.parity import refusal, verdict_row

    entry = {"format": "onnx_int8", "file": "m.int8.onnx", "parity": {
        "tolerance": 0.6, "tie_margin": 0.01, "agreement": 0.95, "inputs": 100, "max_abs_diff": None,
        "decision_agreement": {"action.gripper_closed": 0.5}, "near_ties": 0, "passed": False}}
    assert "max |diff| NaN/Inf against a tolerance of 0.6" in refusal(entry)
    assert verdict_row(entry)["passed"] is False and "NaN/Inf" in verdict_row(entry)["refused"]
