"""HRI: the quick profile's model as notebook 03 trained it in the test session's workbook run (its metrics, the
interpreter on clear, empty, long and non-ASCII text). In the workbook's pytest-xdist group (tests/conftest.py)."""
import json

import numpy as np
import pytest

from embodied_lib.config import get_config
from embodied_lib.hri import commands as C
from embodied_lib.hri import model as H
from embodied_lib.hri.interpreter import CommandInterpreter
from embodied_lib.hri.train import load_trained


@pytest.fixture(scope="module")
def trained(executed_workbook):
    """The quick profile's model as notebook 03 trained it in the workbook run (train_hri with the quick settings;
    training it a second time here took ~3-9 minutes of make test). Tiny-budget runs of the training CLI, in one and
    two processes, are in test_scale."""
    root, _ = executed_workbook
    runs = root / "runs"
    loaded = load_trained(runs, get_config("hri", "quick"))
    assert loaded is not None, "notebook 03 left no quick-profile HRI checkpoint in the workbook's runs/"
    return runs, *loaded


def test_training_smoke_beats_chance_and_writes_checkpoints(trained):
    out, _, m = trained
    assert m["route"] == "fine-tuned encoder" and m["processes"] == 1
    assert m["test_accuracy"] > 3 * m["chance_accuracy"]
    assert 0 < m["confidence_threshold"] < 1
    assert np.array(m["confusion_matrix"]).sum() == m["test_commands"] > 0
    assert set(m["parameter_exact"]) == {"row", "col", "colour", "direction", "distance_cm", "angle_deg"}
    for name in ("action_classifier", "param_extractor", "command_pipeline"):
        assert (out / name / "model.safetensors").is_file()
    assert json.loads((out / "hri" / "metrics.json").read_text())["encoder_route"].startswith("all-MiniLM")
    # notebook 03's REUSE loads a saved model only when it was trained with the same settings
    assert load_trained(out, get_config("hri", "quick", seed=1)) is None
    assert load_trained(out / "nowhere", get_config("hri", "quick")) is None


def test_slots_read_numbers_better_than_the_param_extractor(trained):
    """The design change, measured on the same held-out commands: the numbers read from their words beat the
    ParamExtractor's regression of them (which reads almost no distance or angle exactly)."""
    _, _, m = trained
    slots, regression = m["parameter_exact"], m["param_extractor"]["parameter_exact"]
    for key in ("distance_cm", "angle_deg"):
        assert slots[key] >= regression[key] + 0.3, (slots, regression)
    assert slots["row"] > regression["row"] and slots["col"] > regression["col"]
    assert m["incomplete_refuse_rate"] >= 0.5 and m["out_of_range_refuse_rate"] >= 0.9


@pytest.fixture(scope="module")
def interpreter(trained):
    _, pipeline, m = trained
    return CommandInterpreter.from_pipeline(pipeline, m["confidence_threshold"])


def test_interprets_a_clear_command(interpreter):
    d = interpreter.act("please pick up the red cube")
    assert d.details["best_guess"] == "pick" and set(d.details["probabilities"]) == set(C.ACTIONS)
    assert d.refused == (d.confidence < interpreter.threshold)
    if not d.refused:
        assert d.action == {"action": "pick", "params": d.details["params"]} and "colour" in d.action["params"]
    assert set(d.outputs) == {*H.PIPELINE_OUTPUTS, "params"} and d.outputs["params"].shape == (10,)
    assert d.outputs["slot_probs"].shape[1] == len(C.TAGS)


@pytest.mark.parametrize("text", ["", "   ", "?!...", "🤖🤖", "#$%"])
def test_no_words_is_rejected_with_a_reason(interpreter, text):
    d = interpreter.act(text)
    assert d.refused and d.action is None and "no words" in d.reason


def test_long_text_is_truncated_with_a_warning(interpreter):
    d = interpreter.act("stop " * 200)
    assert any("only the first 62" in w for w in d.details["warnings"])
    assert d.details["best_guess"] in C.ACTIONS


@pytest.mark.parametrize("text", ["tourne à gauche 🤖", "こんにちは", "pick up the ñandú cube"])
def test_non_ascii_never_crashes(interpreter, text):
    d = interpreter.act(text)
    assert d.details["best_guess"] in C.ACTIONS and 0 <= d.confidence <= 1
