"""HRI: command schema and corpus splits, tokenizer, encoder routes, heads, interpreter, exports."""
import json
import re

import numpy as np
import pytest
import torch

from embodied_lib.hri.interpreter import CommandInterpreter
from embodied_lib.config import get_config
from embodied_lib.hri import commands as C
from embodied_lib.export.artifacts import ArtifactError
from embodied_lib.spec import InputError
from embodied_lib.hri import encoder as E
from embodied_lib.hri import model as H
from embodied_lib.registry import load_runtime
from embodied_lib.runtime.runtimes import eager_runtime, parity_report
from embodied_lib.hri.train import choose_threshold, train_hri


# -- schema and corpus -----------------------------------------------------------------------

def test_schema_has_six_actions_and_ten_documented_parameters():
    schema = C.schema_json()
    assert len(schema["actions"]) == H.N_ACTIONS == 6
    assert len(schema["parameters"]) == H.N_PARAMS == 10
    for p in schema["parameters"]:
        assert p["meaning"] and p["unit"] and len(p["range"]) == 2 and set(p["used_by"]) <= set(C.ACTIONS)
        assert p["encoded_range"][0] <= p["range"][0] and p["range"][1] <= p["encoded_range"][1]
    for p in C.PARAMETERS:
        lo, hi = p.encoded
        for raw in (lo, (lo + hi) / 2, hi):
            assert C.denormalise(p.name, C.normalise(p.name, raw)) == pytest.approx(raw)


def test_decode_params_reads_only_what_the_action_uses():
    v = C.neutral_vector()
    v[0], v[1], v[2 + C.COLOURS.index("blue")] = C.normalise("row", 3), C.normalise("col", 6), 1.0
    assert C.decode_params("place", v) == {"row": 3, "col": 6, "colour": "blue"}
    assert C.decode_params("stop", v) == {}
    v[9] = C.normalise("angle", -90)
    assert C.decode_params("rotate", v) == {"angle_deg": -90.0}
    v[6], v[7], v[8] = C.normalise("direction_x", 0.1), C.normalise("direction_y", -0.9), C.normalise("distance", 35)
    assert C.decode_params("move", v) == {"direction": "backward", "distance_cm": 35.0}


@pytest.mark.parametrize("params, problem", [
    ({"row": 10, "col": 1}, "row 10 is outside the grid"),
    ({"row": 3, "col": -1}, "col -1 is outside the grid"),
    ({"colour": None}, "not one the robot knows"),
    ({"direction": "backward", "distance_cm": 200.0}, "more than the 100 cm"),
    ({"direction": "forward", "distance_cm": 0.0}, "no distance"),
    ({"angle_deg": -270.0}, "270 degrees is more than 180"),
])
def test_decoding_refuses_what_the_robot_cannot_do(params, problem):
    problems = C.out_of_range(params)
    assert len(problems) == 1 and problem in problems[0]
    assert C.out_of_range({"row": 7, "col": 0, "colour": "red"}) == []
    assert C.out_of_range({"direction": "left", "distance_cm": 100.0}) == [] == C.out_of_range({"angle_deg": 180.0})


def test_out_of_range_values_are_read_as_said_not_clamped_into_range():
    v = C.neutral_vector()
    v[0] = C.normalise("row", 10)          # "go to row 10": encoded as 10, not as 7
    assert C.decode_params("go_to", v)["row"] == 10
    v[8] = C.normalise("distance", 300)    # "3 metres": the top of the encoded range, refused
    assert C.out_of_range(C.decode_params("move", v))


def test_number_words():
    assert [C.number_words(n) for n in (0, 7, 13, 40, 45, 100, 120, 999)] == [
        "zero", "seven", "thirteen", "forty", "forty five", "one hundred", "one hundred and twenty",
        "nine hundred and ninety nine"]


def test_corpus_speaks_like_people():
    corpus = C.make_corpus(600, 0, 0, 0, seed=2)
    text = " ".join(c.text.lower() for c in corpus["train"])
    for form in ("(", ",", "row", "col", "cell", "cm", "centimet", "metre", "half a", "forward", "back",
                 "left", "clockwise", "turn around", "please"):
        assert form in text, form
    assert re.search(r"\d m\b", text)
    assert any(c.text[:1].isupper() for c in corpus["train"]) and any(c.text.endswith(("!", "?", ".")) for c in corpus["train"])
    assert any(w in text for w in ("three", "five", "seven")) and any(ch.isdigit() for ch in text)
    beyond = [c for c in corpus["train"] if c.out_of_range]
    assert 0.08 < len(beyond) / len(corpus["train"]) < 0.2
    assert {C.ACTIONS[c.action] for c in beyond} == {"go_to", "pick", "place", "move", "rotate"}
    assert all(C.out_of_range(C.decode_params(C.ACTIONS[c.action], c.params)) for c in beyond)
    assert not any(C.out_of_range(C.decode_params(C.ACTIONS[c.action], c.params)) for c in corpus["train"]
                   if not c.out_of_range)


def test_splits_share_no_template_and_no_synonym():
    for table in (C.TEMPLATES, C.VERBS):
        for split in table.values():
            assert not set(split.train) & set(split.test), split
            assert not set(split.train) & set(split.val), split
    assert not set(C.OBJECT_WORDS.train) & set(C.OBJECT_WORDS.test)
    corpus = C.make_corpus(300, 60, 300, 50, seed=1)
    train_texts = {c.text.lower().rstrip(".") for c in corpus["train"]}
    assert not train_texts & {c.text.lower().rstrip(".") for c in corpus["test"]}
    train_templates = {c.template for c in corpus["train"]}
    for c in corpus["test"]:  # every test command uses an unseen template or an unseen verb
        verb_unseen = not any(v in c.text.lower() for v in C.VERBS[C.ACTIONS[c.action]].train)
        assert c.template not in train_templates or verb_unseen, c.text
    assert {c.action for c in corpus["test"]} == set(range(6))
    assert all(c.action == -1 for c in corpus["ood_test"])
    ood = [c.text for c in corpus["ood_test"]]
    assert "" in ood or any(not t.strip() or not any(ch.isalnum() for ch in t) for t in ood)
    assert any(len(t.split()) > 60 for t in ood)


def test_corpus_is_seeded():
    a, b = C.make_corpus(50, 10, 50, 10, seed=3), C.make_corpus(50, 10, 50, 10, seed=3)
    assert [c.text for c in a["test"]] == [c.text for c in b["test"]]


# -- tokenizer and encoder ---------------------------------------------------------------------

def test_vocabulary_is_the_checked_uncased_wordpiece():
    directory = E.minilm_dir(verify=True)
    assert E._sha256(directory / "vocab.txt") == E.MINILM_SHA256["vocab.txt"]
    tok = E.load_tokenizer()
    assert tok.vocab_size == 30522
    assert tok.tokenize("Pick UP the Red cube") == ["pick", "up", "the", "red", "cube"]


def test_a_changed_package_file_is_refused(monkeypatch):
    monkeypatch.setitem(E.MINILM_SHA256, "vocab.txt", "0" * 64)
    with pytest.raises(RuntimeError, match="expected sha256"):
        E.minilm_dir(verify=True)


def test_widened_distilbert_computes_exactly_minilm():
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(E.minilm_dir()), local_files_only=True).eval()
    widened = E.widen_minilm_to_distilbert()
    assert widened.config.dim == 768 and type(widened).__name__ == "DistilBertModel"
    ids, mask = E.tokenize(E.load_tokenizer(), ["turn left by 90 degrees", "pick up the red cube", ""])
    with torch.no_grad():
        a = bert(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
        b = widened(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    keep = torch.from_numpy(mask).bool()
    torch.testing.assert_close(b[..., :384][keep], a[keep], atol=1e-4, rtol=0)
    torch.testing.assert_close(b[..., 384:][keep], a[keep], atol=1e-4, rtol=0)


def test_pooled_embedding_is_the_sentence_transformers_embedding():
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(E.minilm_dir()), device="cpu")
    texts = ["go to row 3 column 5", "halt"]
    expected = st.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    encoder = E.SentenceEncoder(E.widen_minilm_to_distilbert())
    ids, mask = E.tokenize(E.load_tokenizer(), texts)
    with torch.no_grad():
        ours = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert ours.shape == (2, 768)
    np.testing.assert_allclose(ours[:, :384] * np.sqrt(2), expected, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "mean+first"])
def test_a_fine_tuned_minilm_widens_exactly(pooling):
    """Fine-tuning trains the 384-wide MiniLM; the export carries its 768-wide DistilBERT copy. Both must
    give the same embedding, for weights that are no longer the pretrained ones."""
    torch.manual_seed(0)
    bert = E.load_minilm()
    with torch.no_grad():
        for name, p in bert.named_parameters():
            if "embeddings" not in name:
                p.add_(0.02 * torch.randn_like(p))   # stands in for fine-tuning
    ids, mask = E.tokenize(E.load_tokenizer(), ["go to row 6, column 1", "turn left 90 degrees", ""])
    ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
    with torch.no_grad():
        narrow = E.SentenceEncoder(bert, pooling)(ids, mask)
        wide = E.SentenceEncoder(E.widen_minilm_to_distilbert(state=bert.state_dict()), pooling)(ids, mask)
    assert narrow.shape == wide.shape == (3, 768)
    torch.testing.assert_close(wide, narrow, atol=1e-4, rtol=0)


def test_configured_pretrained_directory_route(tmp_path, monkeypatch):
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    tiny = DistilBertModel(DistilBertConfig(dim=768, n_layers=1, n_heads=12, hidden_dim=64, vocab_size=30522))
    tiny.save_pretrained(tmp_path / "distilbert")
    model, route = E.load_encoder(tmp_path / "distilbert")
    assert "pretrained DistilBERT" in route and model.config.n_layers == 1
    torch.testing.assert_close(model.embeddings.word_embeddings.weight, tiny.embeddings.word_embeddings.weight)
    monkeypatch.setenv(E.DISTILBERT_ENV, str(tmp_path / "distilbert"))
    assert E.load_encoder()[0].config.n_layers == 1
    with pytest.raises(FileNotFoundError, match="not a DistilBERT directory"):
        E.load_encoder(tmp_path / "missing")
    DistilBertModel(DistilBertConfig(dim=64, n_layers=1, n_heads=2, hidden_dim=32)).save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match="768"):
        E.load_encoder(tmp_path / "small")


def test_head_contracts():
    clf, ext = H.ActionClassifier().eval(), H.ParamExtractor().eval()
    e = torch.nn.functional.normalize(torch.randn(5, 768), dim=-1)
    probs = clf(e)
    assert probs.shape == (5, 6) and torch.allclose(probs.sum(-1), torch.ones(5))
    params = ext(torch.cat([e, probs], -1))
    assert params.shape == (5, 10) and ((params >= 0) & (params <= 1)).all()


def test_threshold_keeps_the_requested_share():
    conf = np.linspace(0, 1, 101)
    t = choose_threshold(conf, 0.9)
    assert np.mean(conf >= t) >= 0.9 and np.mean(conf >= t + 0.02) < 0.9


# -- training smoke, interpreter, bad input ----------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("hri_runs")
    cfg = get_config("hri", "quick", n_train=600, n_val=60, n_test=240, n_ood=60, epochs=6, baseline_epochs=30,
                     device="cpu")
    pipeline, metrics = train_hri(cfg, out, progress=False)
    _, frozen = train_hri({**cfg, "finetune": False}, progress=False)
    return out, pipeline, metrics, frozen


def test_training_smoke_beats_chance_and_writes_checkpoints(trained):
    out, _, m, _ = trained
    assert m["route"] == "fine-tuned encoder" and m["device"] == "cpu"
    assert m["test_accuracy"] > 3 * m["chance_accuracy"]
    assert 0 < m["confidence_threshold"] < 1
    assert np.array(m["confusion_matrix"]).sum() == m["test_commands"] > 0
    assert set(m["parameter_exact"]) == {"row", "col", "colour", "direction", "distance_cm", "angle_deg"}
    for name in ("action_classifier", "param_extractor", "command_pipeline"):
        assert (out / name / "model.safetensors").is_file()
    assert json.loads((out / "hri" / "metrics.json").read_text())["encoder_route"].startswith("all-MiniLM")


def test_fine_tuning_beats_the_frozen_encoder(trained):
    """The quick profile's claim, measured in one test: the same corpus, the frozen encoder with trained
    heads against the encoder fine-tuned with them. At this size (600 commands, 114 steps) the gap is
    small (measured 44.3 % vs 39.0 %); on the full profile it is ~83 % vs 46 % (see notebook 03)."""
    _, _, finetuned, frozen = trained
    assert frozen["route"].startswith("frozen")
    assert finetuned["exact_command_rate"] >= frozen["exact_command_rate"] + 0.02, (finetuned, frozen)
    assert finetuned["parameter_exact"]["direction"] > frozen["parameter_exact"]["direction"]


@pytest.fixture(scope="module")
def interpreter(trained):
    _, pipeline, m, _ = trained
    return CommandInterpreter.from_pipeline(pipeline, m["confidence_threshold"])


def test_interprets_a_clear_command(interpreter):
    d = interpreter.act("please pick up the red cube")
    assert d.details["best_guess"] == "pick" and set(d.details["probabilities"]) == set(C.ACTIONS)
    assert d.refused == (d.confidence < interpreter.threshold)
    if not d.refused:
        assert d.action == {"action": "pick", "params": d.details["params"]} and "colour" in d.action["params"]
    assert set(d.outputs) == {"action_probs", "params"} and d.outputs["params"].shape == (10,)


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


def test_low_confidence_reports_why():
    always_unsure = CommandInterpreter(lambda ids, mask: (np.full((1, 6), 1 / 6, np.float32),
                                                          np.zeros((1, 10), np.float32)), E.load_tokenizer(), 0.5)
    d = always_unsure.act("go to row 1 column 2")
    assert d.refused and d.action is None and "low confidence: 0.17 < threshold 0.50" in d.reason
    with pytest.raises(TypeError):
        always_unsure.act(None)


def test_a_confident_command_out_of_range_is_refused_with_the_reason():
    params = C.neutral_vector()
    params[0], params[1] = C.normalise("row", 10), C.normalise("col", 1)
    sure = CommandInterpreter(lambda ids, mask: (np.eye(6, dtype=np.float32)[:1], params[None]), E.load_tokenizer(), 0.5)
    d = sure.act("go to row 10 column 1")
    assert d.refused and d.action is None and d.confidence == 1.0
    assert d.reason == "cannot go_to: row 10 is outside the grid (0-7)" and d.details["params"] == {"row": 10, "col": 1}


# -- exports -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["action_classifier", "param_extractor", "command_pipeline"])
def test_every_format_matches_eager(hri_exports, name):
    root, models = hri_exports
    spec, model = models[name]
    rows = parity_report(root / name, eager_runtime(spec, model), n=spec.parity_inputs if name != "command_pipeline" else 50)
    assert [r["format"] for r in rows] == list(spec.formats)
    assert all(r["passed"] for r in rows), rows
    # float formats to the spec's tolerance; INT8 to its own, looser rule (checked by passed, above)
    assert all(r["max_abs_diff"] <= spec.tolerance for r in rows if not r["format"].endswith("_int8")), rows
    judged = {k for r in rows for k in r["decision_agreement"]}
    assert judged == {"action_classifier": {"action_probs.argmax"}, "param_extractor": set(),
                      "command_pipeline": {"action_probs.argmax"}}[name]


@pytest.mark.parametrize("fmt", ["torch_export", "executorch", "onnx", "executorch_int8", "onnx_int8"])
def test_pipeline_has_dynamic_batch_and_sequence(hri_exports, fmt):
    root, models = hri_exports
    spec, model = models["command_pipeline"]
    run = load_runtime(root / "command_pipeline", fmt, trusted=True)
    tok = E.load_tokenizer()
    for texts in (["stop"], ["go to row 1 column 2", "turn left", "pick up the blue cube and then wait here"]):
        ids, mask = E.tokenize(tok, texts)
        probs, params = run(ids, mask)
        with torch.no_grad():
            ep, epar = model(torch.from_numpy(ids), torch.from_numpy(mask))
        assert probs.shape == (len(texts), 6) and params.shape == (len(texts), 10)
        atol = spec.int8_tolerance if fmt.endswith("_int8") else 1e-4
        np.testing.assert_allclose(probs, ep.numpy(), atol=atol)
        np.testing.assert_allclose(params, epar.numpy(), atol=atol)


def test_pipeline_export_ships_tokenizer_schema_and_threshold(hri_exports):
    root, _ = hri_exports
    manifest = json.loads((root / "command_pipeline" / "manifest.json").read_text())
    files = {f["file"] for f in manifest["extra_files"]}
    assert {"tokenizer.json", "text_golden.jsonl"} <= files
    assert manifest["metadata"]["confidence_threshold"] == 0.5
    assert manifest["metadata"]["command_schema"]["actions"] == list(C.ACTIONS)
    assert [i["dtype"] for i in manifest["inputs"]] == ["int64", "int64"]
    interp = CommandInterpreter.from_exports(root / "command_pipeline", "onnx")
    assert interp.act("go to row 2 column 3").details["best_guess"] in C.ACTIONS


def test_pipeline_rejects_bad_token_inputs(hri_exports):
    root, _ = hri_exports
    run = load_runtime(root / "command_pipeline", "onnx")
    with pytest.raises(InputError, match="dtype int64"):
        run(np.zeros((1, 5), np.float32), np.ones((1, 5), np.float32))
    with pytest.raises(InputError, match=r"sequence size must be in \[2, 64\]"):
        run(np.zeros((1, 65), np.int64), np.ones((1, 65), np.int64))
    (root / "broken").mkdir(exist_ok=True)
    with pytest.raises(ArtifactError):
        load_runtime(root / "broken", "onnx")
