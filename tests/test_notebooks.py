"""Run the notebooks headlessly with papermill and the quick profile, in order, as `make run` does."""
import json
import re

import pytest

from embodied_lib.export import FORMATS
from embodied_lib.spec import ROBOT_FORMATS
from embodied_lib.workbook import notebooks


# What an executed notebook may print on stderr or as a warning (reviewed; each line says why it is there).
ALLOWED_NOISE = [
    re.compile(r"^\s*$"),   # an empty stderr line carries nothing
    # 08 shows torch.jit.trace's warning as its evidence that a trace froze a branch (the JSON of the demo)
    re.compile(r'^\s*"tracer_warnings": \[$'),
]
NOISE = re.compile(r"(Warning|warning:|WARNING|\bW\d{4} |Traceback|\[cpuinfo|deprecated)", re.IGNORECASE)


def noise_in(notebook: dict) -> list[str]:
    """Every stderr line, and every output line that looks like a warning, not on ALLOWED_NOISE."""
    found = []
    for i, cell in enumerate(notebook["cells"]):
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            if out.get("output_type") != "stream":
                continue
            for line in "".join(out["text"]).splitlines():
                if (out["name"] == "stderr" or NOISE.search(line)) and not any(p.search(line) for p in ALLOWED_NOISE):
                    found.append(f"cell {i} {out['name']}: {line[:160]}")
    return found


def test_noise_filter_sees_what_it_must():
    """The check itself: a warning, a native library's stderr line and a torch log line are caught."""
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stderr", "text": ["/x.py:3: FutureWarning: old\n"]},
        {"output_type": "stream", "name": "stderr", "text": ["[cpuinfo_utils.cpp:71] Reading file\n"]},
        {"output_type": "stream", "name": "stdout", "text": ["W1130 17:12:31.040000 5554 torch/x.py:630] deprecated\n",
                                                             "success 90 % on 500 maps\n"]}]}]}
    assert len(noise_in(nb)) == 3


@pytest.mark.slow
def test_every_notebook_runs_in_order_with_the_quick_profile(executed_workbook):
    root, _ = executed_workbook
    selected = notebooks(["01", "02", "03", "04", "05", "06", "07", "08"])
    assert [p.name for p in selected] == ["01_navigation_dqn.ipynb", "02_manipulation_vision.ipynb", "03_hri_distilbert.ipynb",
                                          "04_export_all_formats.ipynb", "05_native_cpp.ipynb", "06_native_rust.ipynb",
                                          "07_deployment_control_loop.ipynb", "08_quantization_and_profiling.ipynb"]
    noise = []
    for path in selected:
        nb = json.loads((root / "executed" / path.name).read_text())
        errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors
        noise += [f"{path.name} {line}" for line in noise_in(nb)]
        # widgets (progress bars, the command box, rollout viewers) were saved with the notebook
        shows_widgets = any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                            for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
        if shows_widgets:
            assert nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"], path.name
    assert not noise, "\n".join(noise)
    # a progress bar saved mid-run reads "0/12000"; the plain line after it says it finished
    dqn = json.loads((root / "executed" / "01_navigation_dqn.ipynb").read_text())
    lines = ["".join(o["text"]) for c in dqn["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
             if o.get("output_type") == "stream"]
    assert any(re.search(r"DQN: ([\d,]+)/\1 steps in", t) for t in lines), lines

    metrics = json.loads((root / "runs" / "navigation" / "metrics.json").read_text())
    assert metrics["evaluation"]["episodes"] == 500
    assert metrics["evaluation"]["success_rate"] >= 0.9, metrics["evaluation"]   # 20,000 steps: ~95 % (seeds 0-2)

    out = root / "exports" / "navigation"
    manifest = json.loads((out / "manifest.json").read_text())
    for fmt in ROBOT_FORMATS:
        assert (out / f"navigation{FORMATS[fmt].suffix}").is_file()
    assert [a["format"] for a in manifest["artifacts"]] == list(ROBOT_FORMATS)
    assert (out / "golden.bin").is_file()
    parity = json.loads((out / "parity.json").read_text())
    assert len(parity) == len(ROBOT_FORMATS) and all(r["passed"] for r in parity)

    hri = json.loads((root / "runs" / "hri" / "metrics.json").read_text())
    assert hri["test_accuracy"] > 2 * hri["chance_accuracy"]
    assert hri["exact_command_rate"] >= 0.9, hri["exact_command_rate"]   # a workshop sees a model that works
    assert hri["exact_command_rate"] > max(hri["param_extractor"]["parameter_exact"][k] for k in ("distance_cm", "angle_deg"))
    for model in ("action_classifier", "param_extractor", "command_pipeline"):
        rows = json.loads((root / "exports" / model / "parity.json").read_text())
        assert rows and all(r["passed"] for r in rows), model
    assert (root / "exports" / "command_pipeline" / "tokenizer.json").is_file()

    manipulation = json.loads((root / "runs" / "manipulation" / "metrics.json").read_text())
    assert manipulation["history"]["train_loss"][-1] < manipulation["history"]["train_loss"][0]
    assert manipulation["closed_loop"]["expert"]["success_rate"] >= 0.9
    closed_loop = manipulation["closed_loop"]["policy"]
    assert closed_loop["episodes"] >= 20 and closed_loop["success_rate"] >= 0.8, closed_loop   # a policy that works
    assert [r["round"] for r in manipulation["dagger"]] == [1]
    rows = json.loads((root / "exports" / "manipulation" / "parity.json").read_text())
    assert len(rows) == len(ROBOT_FORMATS) and all(r["passed"] for r in rows)

    # notebook 07 wrote what the CLI writes: every injected fault fell back in its tick, refusals moved nothing
    deploy = root / "runs" / "deploy"
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
    profiling = root / "runs" / "profiling"
    summary = json.loads((profiling / "summary.json").read_text())
    assert summary["torchscript_branch_demo"]["trace_is_silently_wrong"] and summary["torchscript_branch_demo"]["export_refuses"]
    assert {c["claim"] for c in summary["claims"]} >= {"INT8 gives a 4x memory reduction",
                                                       "ExecuTorch uses 10-50 % less memory than TorchScript"}
    simd = [c for c in summary["claims"] if c["claim"].startswith("SIMD") and c["model"] == "navigation"]
    assert {c["runner"] for c in simd} == {"C++ executorch", "Rust executorch_rs"}, summary["claims"]
    assert all(c["xnnpack_p50_ms"] > 0 and c["undelegated_p50_ms"] > 0 for c in simd), simd
    rust = [c for c in summary["claims"] if c["claim"].startswith("Rust + ExecuTorch") and c["model"] == "navigation"]
    assert {c["file"] for c in rust} == {f"executorch{fmt}{shipped}" for fmt in ("", "_int8")
                                        for shipped in ("", " (batch-1 program)")}, rust
    assert all(c["rounds"] == 1 and c["cpp_p50_ms"] > 0 and c["rust_p50_ms"] > 0 for c in rust), rust
    for model in ("navigation",):   # the quick profile's; the full one profiles every model (make bench)
        result = json.loads((profiling / f"{model}.json").read_text())
        assert 0 < result["sizes"]["int8_over_fp32"]["executorch_int8"] < 0.35, model
        assert set(result["accuracy"]["int8_delta"]) == {"executorch_int8", "onnx_int8"}, model
        assert all(r["peak_mb"] > 0 for r in result["memory"]), model
        assert result["planned_memory"]["executorch"]["bytes"] > 0, model

    # notebook 08's pruning: zeros keep the file, narrower layers shrink it; every runtime ran each structured variant
    pruned = json.loads((profiling / "pruning.json").read_text())
    variants = pruned["models"]["navigation"]["variants"]
    assert set(variants) == {"unpruned", "magnitude_90", "structured_50"}   # the quick profile's; full: two of each
    zeros = variants["magnitude_90"]
    assert zeros["pte_size_x"] == 1.0 and zeros["macs"] == variants["unpruned"]["macs"], zeros
    assert abs(zeros["zero_fraction"] - 0.9) < 0.01
    for label in ("structured_50",):
        v = variants[label]
        assert v["pte_size_x"] < 0.5 and v["macs"] < variants["unpruned"]["macs"] / 2, (label, v)
        assert {p["format"] for p in v["parity"]} == set(pruned["settings"]["formats"]), v["parity"]
        assert all(p["passed"] for p in v["parity"]), v["parity"]
        assert {"executorch", "executorch_rs", "libtorch", "tch"} <= {p["runner"] for p in v["native_parity"]}
        assert all(p["passed"] for p in v["native_parity"]), v["native_parity"]
        assert len(v["cpp_executorch_round_p50s_ms"]) == 5 and v["cpp_executorch_p50_ms"] > 0
    summary = json.loads((profiling / "summary.json").read_text())   # pruning added its verdict
    (claim,) = [c for c in summary["claims"] if c["claim"].startswith("Pruning")]
    assert claim == pruned["claims"][0]
    assert claim["model"] == "navigation" and claim["verdict"].startswith(("holds only when structured", "does not hold"))
