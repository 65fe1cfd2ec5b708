"""HRI: command schema and corpus splits, tokenizer, encoder routes, heads, interpreter, exports."""
import json
import re

import numpy as np
import pytest
import torch

from embodied_lib.hri.interpreter import CommandInterpreter
from embodied_lib.hri import commands as C
from embodied_lib.export.artifacts import ArtifactError
from embodied_lib.spec import InputError
from embodied_lib.hri import encoder as E
from embodied_lib.hri import model as H
from embodied_lib.registry import load_runtime
from embodied_lib.runtime.runtimes import eager_runtime, parity_report
from embodied_lib.hri.train import choose_threshold


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
                   if not c.out_of_range and not c.incomplete)
    incomplete = [c for c in corpus["train"] if c.incomplete]
    assert 0.03 < len(incomplete) / len(corpus["train"]) < 0.15
    assert {C.ACTIONS[c.action] for c in incomplete} == {"go_to", "pick", "place", "move", "rotate"}


def test_splits_share_no_template_and_no_synonym():
    for table in (C.TEMPLATES, C.VERBS, C.INCOMPLETE_TEMPLATES, {"directed": C.DIRECTED_MOVE_TEMPLATES}):
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


def test_every_slot_span_reads_back_as_the_value_said():
    """The corpus's slot spans are the words the tagger learns; read by text2num and the word table they must give
    exactly the value each command encodes (complete, in-range commands of every split)."""
    from embodied_lib.hri.slots import read_number

    corpus = C.make_corpus(1500, 300, 600, 0, seed=4)
    checked = 0
    for c in (c for split in ("train", "val", "test") for c in corpus[split] if not c.out_of_range and not c.incomplete):
        truth = C.decode_params(C.ACTIONS[c.action], c.params)
        for slot, spans in c.spans.items():
            for start, end in spans:
                value, problem = read_number(slot, c.text[start:end])
                want = truth[C.SLOT_PARAMETER[slot]]
                assert problem is None and value == (abs(want) if slot == "angle" else want), (c.text, slot)
                checked += 1
    assert checked > 1500


@pytest.mark.parametrize("slot, words, value", [
    ("row", "seven", 7), ("col", "0", 0), ("distance", "half a metre", 50), ("distance", "a metre", 100),
    ("distance", "a hundred cm", 100), ("distance", "30cm", 30), ("distance", "zero point five metres", 50),
    ("distance", "0.25 m", 25), ("angle", "a quarter turn", 90), ("angle", "forty-five degrees", 45),
    ("angle", "one hundred and fifty five degrees", 155), ("angle", "90", 90), ("angle", "around", 180),
    ("distance", "-50 cm", -50)])
def test_numbers_are_read_from_their_words(slot, words, value):
    from embodied_lib.hri.slots import read_number

    assert read_number(slot, words) == (value, None)


@pytest.mark.parametrize("slot, words, problem", [
    ("distance", "30", "no unit"), ("row", "3 5", "more than one number"), ("row", "2.5", "not a whole number"),
    ("angle", "a", "no number"), ("angle", "a bit", "'bit'"), ("distance", "3 inches", "'inches'"),
    ("distance", "2 m cm", "two units")])
def test_what_the_parser_cannot_read_exactly_is_not_read(slot, words, problem):
    from embodied_lib.hri.slots import read_number

    value, why = read_number(slot, words)
    assert value is None and problem in why


def test_the_manifest_word_table_is_the_one_python_uses(hri_exports):
    root, _ = hri_exports
    manifest = json.loads((root / "command_pipeline" / "manifest.json").read_text())
    schema = manifest["metadata"]["command_schema"]
    assert schema["slots"]["words"] == json.loads(json.dumps(C.SLOT_WORDS))
    assert schema["slots"]["tags"] == list(C.TAGS) and schema["needs"] == {a: list(n) for a, n in C.NEEDS.items()}


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


# -- scripted interpreter decisions, bad input (the trained quick model: test_hri_trained.py) ------


def scripted(action: int, tags: dict, colour="none", direction="none", turn="none", confidence=1.0):
    """A stand-in pipeline: the given action and classes, and the tags of the words in ``tags`` (word -> tag)."""
    tok = E.load_tokenizer()

    def run(ids, mask):
        probs = np.full((1, 6), (1 - confidence) / 5, np.float32)
        probs[0, action] = confidence
        words = tok.convert_ids_to_tokens(ids[0].tolist())
        slot = np.zeros((1, ids.shape[1], len(C.TAGS)), np.float32)
        for t, word in enumerate(words):
            slot[0, t, C.TAGS.index(tags.get(word, "O"))] = 1.0
        one_hot = lambda classes, name: np.eye(len(classes), dtype=np.float32)[[classes.index(name)]]
        return (probs, slot, one_hot(C.COLOUR_CLASSES, colour), one_hot(C.DIRECTION_CLASSES, direction),
                one_hot(C.TURN_CLASSES, turn))
    return run


def test_low_confidence_reports_why():
    always_unsure = CommandInterpreter(scripted(0, {}, confidence=1 / 6), E.load_tokenizer(), 0.5)
    d = always_unsure.act("go to row 1 column 2")
    assert d.refused and d.action is None and "low confidence: 0.17 < threshold 0.50" in d.reason
    with pytest.raises(TypeError):
        always_unsure.act(None)


def test_a_confident_command_out_of_range_is_refused_with_the_reason():
    sure = CommandInterpreter(scripted(0, {"10": "B-row", "1": "B-col"}), E.load_tokenizer(), 0.5)
    d = sure.act("go to row 10 column 1")
    assert d.refused and d.action is None and d.confidence == 1.0
    assert d.reason == "cannot go_to: row 10 is outside the grid (0-7)" and d.details["params"] == {"row": 10, "col": 1}


@pytest.mark.parametrize("text, tags, classes, reason", [
    ("go to row 3", {"3": "B-row"}, {}, "the command says no column"),
    ("rotate a bit", {}, {"turn": "left"}, "the command says no angle"),
    ("move forward", {}, {"direction": "forward"}, "the command says no distance"),
    ("move 30 cm", {"30": "B-distance", "cm": "I-distance"}, {}, "no direction"),
    ("turn 90 degrees", {"90": "B-angle", "degrees": "I-angle"}, {}, "no turn direction"),
    ("move forward 20 cm or 30 cm", {"20": "B-distance", "30": "B-distance", "cm": "I-distance"},
     {"direction": "forward"}, "two different values for the distance (20, 30)"),
    ("move forward 30", {"30": "B-distance"}, {"direction": "forward"}, "no unit"),
    ("pick up the cube", {}, {}, "the command says no colour"),
])
def test_a_command_that_does_not_say_a_value_is_refused_with_what_is_missing(text, tags, classes, reason):
    action = {"go": 0, "pick": 1, "move": 3, "turn": 4, "rotate": 4}[text.split()[0]]
    d = CommandInterpreter(scripted(action, tags, **classes), E.load_tokenizer(), 0.5).act(text)
    assert d.refused and d.action is None and d.details["refused"] == "incomplete" and reason in d.reason, d.reason


def test_read_values_become_the_schema_vector():
    tags = {"half": "B-distance", "a": "I-distance", "metre": "I-distance"}
    d = CommandInterpreter(scripted(3, tags, direction="backward"), E.load_tokenizer(), 0.5).act("move back half a metre")
    assert d.action == {"action": "move", "params": {"direction": "backward", "distance_cm": 50.0}}
    assert C.decode_params("move", d.outputs["params"]) == d.action["params"]
    d = CommandInterpreter(scripted(4, {"around": "B-angle"}), E.load_tokenizer(), 0.5).act("turn around")
    assert d.action == {"action": "rotate", "params": {"angle_deg": 180.0}}   # half a turn needs no sense


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
                      "command_pipeline": {f"{o}.argmax" for o in H.PIPELINE_OUTPUTS}}[name]


@pytest.mark.parametrize("fmt", ["torch_export", "executorch", "onnx", "executorch_int8", "onnx_int8"])
def test_pipeline_has_dynamic_batch_and_sequence(hri_exports, fmt):
    root, models = hri_exports
    spec, model = models["command_pipeline"]
    run = load_runtime(root / "command_pipeline", fmt, trusted=True)
    tok = E.load_tokenizer()
    for texts in (["stop"], ["go to row 1 column 2", "turn left", "pick up the blue cube and then wait here"]):
        ids, mask = E.tokenize(tok, texts)
        got = run(ids, mask)
        with torch.no_grad():
            want = model(torch.from_numpy(ids), torch.from_numpy(mask))
        assert got[0].shape == (len(texts), 6) and got[1].shape == (len(texts), ids.shape[1], len(C.TAGS))
        atol = spec.int8_tolerance if fmt.endswith("_int8") else 1e-4
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), atol=atol)


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


def test_a_refused_incomplete_command_never_moves_the_robot(monkeypatch):
    """Through the mission runner: the interpreter reads "go to row 3" (no column) and "move forward" (no
    distance) as incomplete, so no robot is built and nothing moves."""
    from embodied_lib.deploy.missions import MissionRunner

    def no_robot(*args, **kwargs):
        raise AssertionError("a refused command built a robot")

    monkeypatch.setattr("embodied_lib.deploy.missions.GridRobot", no_robot)
    monkeypatch.setattr("embodied_lib.deploy.missions.TabletopRobot", no_robot)
    for text, action, tags, classes in (("go to row 3", 0, {"3": "B-row"}, {}),
                                        ("move forward", 3, {}, {"direction": "forward"})):
        runner = MissionRunner(CommandInterpreter(scripted(action, tags, **classes), E.load_tokenizer(), 0.5), None, None)
        result = runner.run(text, map_seed=1_500_000)
        assert result.status == "refused" and result.ticks == 0 and "please say it again" in result.reason, result


def test_a_word_is_in_a_slot_only_when_all_its_pieces_are():
    """"anticlockwise" is four word pieces; the first tagged as part of the angle and the rest not is no angle word:
    the span reads "one hundred and eighty", never "one hundred and eighty anti"."""
    from embodied_lib.hri.encoder import token_words
    from embodied_lib.hri.slots import read_slots

    tok = E.load_tokenizer()
    text = "turn one hundred and eighty anticlockwise"
    offsets, word_ids = token_words(tok, [text])[0]
    pieces = tok.convert_ids_to_tokens(tok(text)["input_ids"])
    assert pieces[6:8] == ["anti", "##cl"]
    tags = [0, 0] + [C.TAGS.index("B-angle")] + [C.TAGS.index("I-angle")] * 4 + [0] * (len(pieces) - 7)
    assert read_slots(text, offsets, tags)["angle"][0]["problem"]          # token by token: "... anti"
    reading = read_slots(text, offsets, tags, word_ids)["angle"]
    assert reading == [{"words": "one hundred and eighty", "value": 180.0, "problem": None}]


def test_a_number_no_slot_reads_is_refused_and_a_pronoun_one_is_not():
    """The tagger reads "row 3 or 4" as row 3 and leaves the 4 untagged: the command says a value nobody read, so
    it is refused as incomplete with that number named. "that one" is a pronoun, not a number; stop is never
    refused for a stray number."""
    tok = E.load_tokenizer()
    go_to = CommandInterpreter(scripted(0, {"3": "B-row", "5": "B-col"}), tok, 0.5)
    assert go_to.act("go to row 3 column 5").action == {"action": "go_to", "params": {"row": 3, "col": 5}}
    for text, stray in (("go to row 3 or 4, column 5", "4"), ("go to row 3, no, row four, column 5", "4")):
        d = go_to.act(text)
        assert d.refused and d.details["refused"] == "incomplete" and f"it also says {stray}," in d.reason, d.reason
    pick = CommandInterpreter(scripted(1, {}, colour="red"), tok, 0.5)
    assert pick.act("pick up the red one").action == {"action": "pick", "params": {"colour": "red"}}
    assert pick.act("pick up the red cube 2").refused
    stop = CommandInterpreter(scripted(C.ACTIONS.index("stop"), {}), tok, 0.5)
    assert stop.act("stop in 5 seconds").action == {"action": "stop", "params": {}}


def test_a_number_is_read_whole_from_its_words():
    """The tagger marks part of a number: the slot reads the whole number its words say, never a piece of it; a
    number two slots share is read as neither; a word tagged by mistake before the number, or alone, says no
    number and is left out; a word after the number is still read ("90 radians" is not 90 degrees)."""
    tok = E.load_tokenizer()

    def act(action, tags, text, **classes):
        return CommandInterpreter(scripted(action, tags, **classes), tok, 0.5).act(text)

    d = act(0, {"one": "B-row", "five": "B-col"}, "go to row one hundred, column five")
    assert d.details["refused"] == "out of range" and d.details["params"] == {"row": 100, "col": 5}, d.reason
    d = act(0, {"one": "B-row", "hundred": "B-angle", "five": "B-col"}, "go to row one hundred, column five")
    assert d.details["refused"] == "incomplete" and "'one hundred' is tagged as both the row and the angle" in d.reason
    d = act(0, {"ninety": "B-row", "nine": "B-col", "2": "B-col"}, "go to row ninety-nine column 2")
    assert d.details["refused"] == "incomplete" and "'ninety-nine' is tagged as both the row and the column" in d.reason
    move = C.ACTIONS.index("move")
    for tags in ({"creep": "B-distance", "twenty": "I-distance", "cm": "I-distance"},
                 {"creep": "B-distance", "twenty": "B-distance", "cm": "I-distance"}):
        d = act(move, tags, "creep twenty cm forward", direction="forward")
        assert d.action == {"action": "move", "params": {"direction": "forward", "distance_cm": 20.0}}, d.reason
    d = act(C.ACTIONS.index("rotate"), {"90": "B-angle", "ra": "I-angle", "##dian": "I-angle", "##s": "I-angle"}, "turn left 90 radians", turn="left")
    assert d.details["refused"] == "incomplete" and "'radians'" in d.reason


def test_an_action_with_one_number_reads_every_tagged_word_as_it():
    """Move reads only a distance, rotate only an angle: a number the tagger gave another slot is that one ("ninety
    seven" half distance, half angle in a rotate is 97 degrees; a second number tagged angle in a move is a second
    distance, so the move is asked again, never carried out with the first)."""
    tok = E.load_tokenizer()
    rotate = CommandInterpreter(scripted(C.ACTIONS.index("rotate"), {"ninety": "B-distance", "seven": "B-angle",
                                                                       "degrees": "I-angle"}, turn="right"), tok, 0.5)
    d = rotate.act("twirl ninety seven degrees to your right")
    assert d.action == {"action": "rotate", "params": {"angle_deg": -97.0}}, d.reason
    move = CommandInterpreter(scripted(C.ACTIONS.index("move"), {"20": "B-distance", "cm": "I-distance", "30": "B-angle"},
                                       direction="forward"), tok, 0.5)
    d = move.act("move forward 20 cm, no, 30 cm")
    assert d.details["refused"] == "incomplete" and "two different values for the distance" in d.reason, d.reason
