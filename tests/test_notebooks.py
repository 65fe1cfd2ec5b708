"""Run the notebooks headlessly with papermill and the quick profile, in order, as `make run` does."""
import json

import pytest

from embodied_lib.export import FORMATS
from embodied_lib.workbook import notebooks, run_notebook

KERNEL = "embodied-workbook"


@pytest.fixture
def isolated_outputs(tmp_path, monkeypatch):
    """Point the library (in the papermill kernel too) at temporary runs/ and exports/."""
    monkeypatch.setenv("EMBODIED_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("EMBODIED_EXPORTS", str(tmp_path / "exports"))
    monkeypatch.setenv("EMBODIED_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.slow
def test_every_notebook_runs_in_order_with_the_quick_profile(isolated_outputs):
    selected = notebooks(["01", "02", "03", "04", "05", "06", "07", "08"])
    assert [p.name for p in selected] == ["01_navigation_dqn.ipynb", "02_manipulation_vision.ipynb", "03_hri_distilbert.ipynb",
                                          "04_export_all_formats.ipynb", "05_native_cpp.ipynb", "06_native_rust.ipynb",
                                          "07_deployment_control_loop.ipynb", "08_quantization_and_profiling.ipynb"]
    for path in selected:
        executed = run_notebook(path, "quick", KERNEL, isolated_outputs / "executed")
        nb = json.loads(executed.read_text())
        errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors

    metrics = json.loads((isolated_outputs / "runs" / "navigation" / "metrics.json").read_text())
    assert metrics["evaluation"]["episodes"] == 500
    assert metrics["evaluation"]["success_rate"] >= metrics["random_policy"]["success_rate"] + 0.3

    out = isolated_outputs / "exports" / "navigation"
    manifest = json.loads((out / "manifest.json").read_text())
    for fmt in FORMATS.values():
        assert (out / f"navigation{fmt.suffix}").is_file()
    assert [a["format"] for a in manifest["artifacts"]] == list(FORMATS)
    assert (out / "golden.bin").is_file()
    parity = json.loads((out / "parity.json").read_text())
    assert len(parity) == len(FORMATS) and all(r["passed"] for r in parity)

    hri = json.loads((isolated_outputs / "runs" / "hri" / "metrics.json").read_text())
    assert hri["test_accuracy"] > 2 * hri["chance_accuracy"]
    for model in ("action_classifier", "param_extractor", "command_pipeline"):
        rows = json.loads((isolated_outputs / "exports" / model / "parity.json").read_text())
        assert rows and all(r["passed"] for r in rows), model
    assert (isolated_outputs / "exports" / "command_pipeline" / "tokenizer.json").is_file()

    manipulation = json.loads((isolated_outputs / "runs" / "manipulation" / "metrics.json").read_text())
    assert manipulation["history"]["train_loss"][-1] < manipulation["history"]["train_loss"][0]
    assert manipulation["closed_loop"]["expert"]["success_rate"] >= 0.9
    rows = json.loads((isolated_outputs / "exports" / "manipulation" / "parity.json").read_text())
    assert len(rows) == len(FORMATS) and all(r["passed"] for r in rows)

    # notebook 07 wrote what the CLI writes: every injected fault fell back in its tick, refusals moved nothing
    deploy = isolated_outputs / "runs" / "deploy"
    faults = json.loads((deploy / "faults.json").read_text())
    assert set(faults["fault_totals"]) == {"model_exception", "nan_output", "out_of_bounds_output", "late_inference",
                                           "dropped_frame", "stale_frame"}
    assert all(t["fell_back_same_tick"] == t["injected"] > 0 for t in faults["fault_totals"].values())
    assert faults["corrupt_model_at_startup"]["robot_moves"] == 0
    missions = json.loads((deploy / "missions.json").read_text())
    assert missions["commands"] == 36 and missions["stop_correct"]["n"] > 0
    assert all(r["ticks"] == 0 for r in missions["rows"] if r["status"] == "refused")
    realtime = json.loads((deploy / "realtime.json").read_text())
    assert realtime["ticks"] == 200 and realtime["channels"]["navigation"]["episodes"] > 0

    # notebook 08 wrote what `python -m embodied_lib.profiling` writes
    profiling = isolated_outputs / "runs" / "profiling"
    summary = json.loads((profiling / "summary.json").read_text())
    assert summary["torchscript_branch_demo"]["trace_is_silently_wrong"] and summary["torchscript_branch_demo"]["export_refuses"]
    assert {c["claim"] for c in summary["claims"]} >= {"INT8 gives a 4x memory reduction",
                                                       "ExecuTorch uses 10-50 % less memory than TorchScript"}
    for model in ("navigation",):   # the quick profile's; the full one profiles every model (make bench)
        result = json.loads((profiling / f"{model}.json").read_text())
        assert 0 < result["sizes"]["int8_over_fp32"]["executorch_int8"] < 0.35, model
        assert set(result["accuracy"]["int8_delta"]) == {"executorch_int8", "onnx_int8"}, model
        assert all(r["peak_mb"] > 0 for r in result["memory"]), model
        assert result["planned_memory"]["executorch"]["bytes"] > 0, model
