"""Hostile and careless input against the Python surfaces: model files (trust, manifest schema), inputs,
outputs, command text. Each case names what used to happen (issue 15) and now must not."""
import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embodied_lib.export import FORMATS
from embodied_lib.export.artifacts import ArtifactError
from embodied_lib.export.manifest import read_manifest, validate_manifest
from embodied_lib.export.trust import generate_keypair, local_public_key, sign_manifest, verify_manifest
from embodied_lib.hri import commands as C
from embodied_lib.registry import load_runtime
from embodied_lib.spec import InputError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def folder(tmp_path, navigation_exports):
    copy = tmp_path / "navigation"
    shutil.copytree(navigation_exports, copy)
    return copy


def rewrite_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


# -- trust: code-carrying formats -----------------------------------------------------------------

def craft_pickle_payload(pt2, marker):
    """What an attacker can do to an .export.pt2: mark a weight "use_pickle" and put a pickle there that
    runs code (here: creates ``marker``) when torch.export.load unpickles it (weights_only=False inside)."""
    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with zipfile.ZipFile(pt2) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    config_name = next(n for n in entries if n.endswith("weights/model_weights_config.json"))
    config = json.loads(entries[config_name])
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    entries[config_name] = json.dumps(config).encode()
    entries[config_name.replace("model_weights_config.json", first["path_name"])] = pickle.dumps(Payload())
    with zipfile.ZipFile(pt2, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)


def attacker_rewrites_hashes(folder):
    from embodied_lib.export.artifacts import sha256_of

    def fix(m):
        for a in m["artifacts"]:
            a["sha256"], a["bytes"] = sha256_of(folder / a["file"]), (folder / a["file"]).stat().st_size
    rewrite_manifest(folder, fix)


def test_pickle_payload_in_export_pt2_never_runs_unless_trusted_and_signed(folder, tmp_path):
    marker = tmp_path / "payload_ran"
    craft_pickle_payload(folder / "navigation.export.pt2", marker)
    attacker_rewrites_hashes(folder)   # the sha256 beside the file is no defence: the attacker rewrites it
    with pytest.raises(ArtifactError, match="carry code"):
        load_runtime(folder, "torch_export")
    with pytest.raises(ArtifactError, match="does not verify"):   # our key; the manifest changed after signing
        load_runtime(folder, "torch_export", trusted=True)
    _, attacker_public = generate_keypair(tmp_path / "attacker")
    sign_manifest(folder, tmp_path / "attacker" / "signing_key.pem")   # signed, but by the attacker's key
    with pytest.raises(ArtifactError, match="does not verify"):
        load_runtime(folder, "torch_export", trusted=True, public_key=local_public_key())
    assert not marker.exists(), "the payload ran"
    # the same file, trusted with the attacker's own key, does run: trust is the caller's decision
    with pytest.raises(ArtifactError):
        load_runtime(folder, "torch_export", trusted=True, public_key=attacker_public)
    assert marker.exists()


@pytest.mark.parametrize("fmt", [f for f in FORMATS if FORMATS[f].carries_code])
def test_code_formats_load_when_trusted_with_the_signing_key(navigation_exports, fmt):
    with pytest.raises(ArtifactError, match="carry code"):
        load_runtime(navigation_exports, fmt)
    (q,) = load_runtime(navigation_exports, fmt, trusted=True)(np.zeros((1, 256), np.float32))
    assert q.shape == (1, 4)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if not FORMATS[f].carries_code])
def test_data_formats_load_untrusted(navigation_exports, fmt):
    (q,) = load_runtime(navigation_exports, fmt)(np.zeros((1, 256), np.float32))
    assert np.isfinite(q).all()


def test_unsigned_folder_and_bad_keys_are_named(folder, tmp_path):
    (folder / "manifest.sig").unlink()
    with pytest.raises(ArtifactError, match="not signed"):
        verify_manifest(folder, local_public_key())
    (tmp_path / "not_a_key.pem").write_text("hello")
    sign_manifest(folder)
    with pytest.raises(ArtifactError, match="not a PEM public key"):
        verify_manifest(folder, tmp_path / "not_a_key.pem")
    with pytest.raises(ArtifactError, match="not found"):
        verify_manifest(folder, tmp_path / "missing.pem")


# -- manifest schema ------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    (lambda m: m.pop("artifacts"), "artifacts"),
    (lambda m: m["artifacts"][0].update(bytes=str(m["artifacts"][0]["bytes"])), "artifacts/0/bytes"),
    (lambda m: m["artifacts"][0].update(file="../../../../../etc/passwd"), "artifacts/0/file"),
    (lambda m: m["artifacts"][0].update(file="/etc/passwd"), "artifacts/0/file"),
    (lambda m: m["artifacts"][0].update(sha256=None), "artifacts/0/sha256"),
    (lambda m: m["artifacts"][0].update(format="pickle"), "artifacts/0/format"),
    (lambda m: m["inputs"][0].update(shape=[]), "inputs/0/shape"),
    (lambda m: m.update(tolerance="1e-5"), "tolerance"),
    (lambda m: m["golden"].update(count=0), "golden/count"),
])
def test_manifest_schema_names_the_field(folder, change, field):
    rewrite_manifest(folder, change)
    with pytest.raises(ArtifactError, match=f"field {field}:"):
        load_runtime(folder, "onnx")


def test_manifest_that_is_not_json_text(folder):
    (folder / "manifest.json").write_bytes("{\"model\": \"caf\xe9\"}".encode("latin-1"))
    with pytest.raises(ArtifactError, match="not UTF-8"):
        read_manifest(folder)
    (folder / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArtifactError, match="nests too deeply|not valid JSON"):
        read_manifest(folder)


def test_manifest_contract_must_match_the_model(folder):
    rewrite_manifest(folder, lambda m: m["inputs"][0].update(name="observation"))
    with pytest.raises(ArtifactError, match="differ from the navigation contract"):
        load_runtime(folder, "onnx")


def test_a_link_out_of_the_folder_is_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(folder / "navigation.onnx", outside)
    (folder / "navigation.onnx").symlink_to(outside)
    with pytest.raises(ArtifactError, match="outside"):
        load_runtime(folder, "onnx")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=20)


@FUZZ
@given(key=st.sampled_from(["model", "inputs", "outputs", "tolerance", "artifacts", "golden", "extra_files"]),
       value=_json)
def test_fuzzed_manifest_field_is_an_artifact_error_or_valid(navigation_exports, key, value):
    manifest = json.loads((navigation_exports / "manifest.json").read_text())
    manifest[key] = value
    try:
        validate_manifest(manifest)
    except ArtifactError as exc:
        assert "field" in str(exc)


# -- inputs and outputs ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manipulation_onnx(manipulation_exports):
    out, _, _ = manipulation_exports
    return load_runtime(out, "onnx")


def test_inputs_must_share_the_batch(manipulation_onnx):
    with pytest.raises(InputError, match="share the batch"):
        manipulation_onnx(np.zeros((2, 3, 400, 400), np.float32), np.zeros((1, 10), np.float32))


def test_camera_frame_in_0_255_is_refused(manipulation_onnx):
    with pytest.raises(InputError, match="divide 0-255 pixels by 255"):
        manipulation_onnx(np.full((1, 3, 400, 400), 128, np.float32), np.zeros((1, 10), np.float32))


def test_huge_finite_values_are_refused(navigation_exports):
    run = load_runtime(navigation_exports, "onnx")
    state = np.zeros((1, 256), np.float32)
    state[0, 3] = 3e38
    with pytest.raises(InputError, match="outside the valid range"):
        run(state)


def test_token_ids_and_masks_are_checked(hri_exports):
    root, _ = hri_exports
    run = load_runtime(root / "command_pipeline", "onnx")
    ids, mask = np.full((1, 4), 101, np.int64), np.ones((1, 4), np.int64)
    with pytest.raises(InputError, match="outside the valid range"):
        run(np.array([[101, -5, 102, 0]]), mask)
    with pytest.raises(InputError, match="outside the valid range"):
        run(np.array([[101, 30522, 102, 0]]), mask)
    with pytest.raises(InputError, match="outside the valid range"):
        run(ids, np.full((1, 4), 2, np.int64))
    with pytest.raises(InputError, match="row of zeros"):
        run(ids, np.zeros((1, 4), np.int64))


@FUZZ
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=256, max_size=256))
def test_fuzzed_navigation_state_is_refused_or_gives_finite_q_values(navigation_exports, values):
    run = load_runtime(navigation_exports, "onnx")
    try:
        (q,) = run(np.array([values], np.float32))
    except InputError:
        return
    assert np.isfinite(q).all() and q.shape == (1, 4)


# -- command text ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported_interpreter(hri_exports):
    from embodied_lib.hri.interpreter import CommandInterpreter

    root, _ = hri_exports
    return CommandInterpreter.from_exports(root / "command_pipeline", "onnx")


@pytest.mark.parametrize("text, reason", [
    ("pick up the \u202ebuc der\u202c cube", "bidirectional"),
    ("pick up the red\ud800 cube", "surrogate"),
    ("rotate 99999999999999999999999999 degrees", "beyond anything a parameter can be"),
    ("move forward -500 meters", "beyond anything a parameter can be"),
    ("turn 1e9 degrees", "beyond anything a parameter can be"),
])
def test_hostile_text_is_refused_with_a_reason(exported_interpreter, text, reason):
    d = exported_interpreter.act(text)
    assert d.refused and d.action is None and reason in d.reason


def test_missing_or_tampered_tokenizer_is_refused_at_load(tmp_path, hri_exports):
    from embodied_lib.hri.interpreter import CommandInterpreter

    root, _ = hri_exports
    folder = tmp_path / "command_pipeline"
    shutil.copytree(root / "command_pipeline", folder)
    tokenizer = folder / "tokenizer.json"
    text = tokenizer.read_text()
    tokenizer.write_text(text.replace('"red"', '"tmp"').replace('"blue"', '"red"').replace('"tmp"', '"blue"'))
    with pytest.raises(ArtifactError, match="tokenizer.json does not match the sha256"):
        CommandInterpreter.from_exports(folder, "onnx")
    tokenizer.unlink()
    with pytest.raises(ArtifactError, match="tokenizer.json not found"):
        CommandInterpreter.from_exports(folder, "onnx")


@FUZZ
@given(st.text(max_size=80))
def test_fuzzed_text_is_decided_or_refused_never_raised(exported_interpreter, text):
    d = exported_interpreter.act(text)
    assert d.refused == (d.action is None)
    if d.refused:
        assert d.reason
    else:
        assert d.action["action"] in C.ACTIONS and not C.out_of_range(d.action["params"])


def test_onnx_file_of_another_contract_is_refused(folder, hri_exports):
    """A valid ONNX model whose inputs are not the manifest's (the hash rewritten to match)."""
    root, _ = hri_exports
    shutil.copy(root / "action_classifier" / "action_classifier.onnx", folder / "navigation.onnx")
    attacker_rewrites_hashes(folder)
    with pytest.raises(ArtifactError, match=r"has inputs \[\('embedding', 2\)\] .* contract has \[\('state', 2\)\]"):
        load_runtime(folder, "onnx")
