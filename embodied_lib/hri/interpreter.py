"""Raw text -> robot command decision: the HRI pipeline behind the policy interface.

    interpreter = CommandInterpreter.from_exports("exports/command_pipeline")   # ONNX Runtime
    decision = interpreter.act("pick up the red cube")
    decision.action      # {'action': 'pick', 'params': {'colour': 'red'}}, or None when refused
    decision.confidence  # 0.99;  decision.reason: why it was refused;  decision.details: best guess, slots, warnings

How it reads: the pipeline's outputs (action probabilities, slot tags per token, colour / direction / turn
classes) -> ``hri.slots``: the tagged words, found by the tokenizer's offsets, read by text2num -> ``slots.decide``.

Bad input never crashes: text with no letters or digits (empty, punctuation, emoji only) is
refused before the model with that reason; text over MAX_TOKENS tokens is truncated with a
warning; anything the model is unsure of (max probability < threshold) is refused with the
confidence in the reason. The threshold judges the action type only; a value the action needs that the
words do not give ("go to row 3", "rotate a bit"), or give twice differently, is refused with what is
missing; every parameter is then checked against the schema's valid range, and a command the robot cannot
carry out ("row 10", "3 metres", "270 degrees", "the orange cube") is refused with the reason, never clamped.
"""
from __future__ import annotations

from pathlib import Path

from embodied_lib.export.manifest import MANIFEST_NAME, parse_manifest, read_manifest_bytes
from embodied_lib.export.artifacts import ArtifactError, read_verified
from embodied_lib.hri.commands import ACTIONS, refuse_text, text_problem
from embodied_lib.hri.encoder import MAX_TOKENS, encoder_config, load_tokenizer, token_words, tokenize
from embodied_lib.hri.export_extras import TOKENIZER_FILE
from embodied_lib.hri.model import PIPELINE_OUTPUTS, command_pipeline_spec
from embodied_lib.hri.slots import decide_outputs
from embodied_lib.policy import Decision, Policy
from embodied_lib.runtime.runtimes import eager_runtime, load_artifact


class CommandInterpreter(Policy):
    def __init__(self, run, tokenizer, threshold: float):
        """``run(input_ids, attention_mask) -> (action_probs, slot_probs, colour_probs, direction_probs, turn_probs)``
        on int64 arrays (a Runtime or any callable)."""
        self.run, self.tokenizer, self.threshold = run, tokenizer, float(threshold)

    @classmethod
    def from_pipeline(cls, pipeline, threshold: float, tokenizer=None):
        """Eager PyTorch: a trained CommandPipeline."""
        spec = command_pipeline_spec(encoder_config(pipeline.encoder.distilbert), threshold, pipeline.encoder.pooling)
        return cls(eager_runtime(spec, pipeline), tokenizer or load_tokenizer(), threshold)

    @classmethod
    def from_exports(cls, export_dir, fmt: str = "onnx", trusted: bool = False, public_key=None):
        """Any exported format of the pipeline, with the tokenizer and threshold exported beside it."""
        from transformers import DistilBertTokenizerFast  # heavy; only the text pipeline needs it

        from tokenizers import Tokenizer

        export_dir = Path(export_dir)
        data = read_manifest_bytes(export_dir)   # read once, for the spec and for the load
        manifest = parse_manifest(data, export_dir / MANIFEST_NAME)
        runtime = load_artifact(export_dir, fmt, command_pipeline_spec(**manifest["spec_args"]), trusted, public_key,
                                manifest_bytes=data)
        manifest = runtime.manifest   # the one the model was verified under, not a second read
        entry = next((e for e in manifest.get("extra_files", []) if e["file"] == TOKENIZER_FILE), None)
        if entry is None:
            raise ArtifactError(f"{export_dir}/manifest.json lists no {TOKENIZER_FILE}; re-export the command pipeline")
        # a swapped vocabulary lies: the bytes hashed are the bytes the tokenizer is built from
        verified = read_verified(export_dir / TOKENIZER_FILE, entry["sha256"], entry["bytes"], "tokenizer file")
        try:
            backend = Tokenizer.from_str(verified.data.decode("utf-8"))
        except (UnicodeDecodeError, Exception) as exc:   # tokenizers raises its own Exception type
            raise ArtifactError(f"{verified.path} is not a tokenizer.json ({str(exc)[:200]})") from None
        tokenizer = DistilBertTokenizerFast(tokenizer_object=backend, model_max_length=MAX_TOKENS)
        return cls(runtime, tokenizer, manifest["metadata"]["confidence_threshold"])

    def act(self, text: str) -> Decision:
        if not isinstance(text, str):
            raise TypeError(f"a command must be a str, got {type(text).__name__}")
        details = {"text": text, "best_guess": None, "params": {}, "slots": {}, "probabilities": {}, "warnings": [],
                   "refused": None}
        if problem := text_problem(text):
            verdict = refuse_text(problem)
            details["refused"] = verdict["refused"]
            return Decision(None, confidence=0.0, details=details, reason=verdict["reason"])
        # verbose=False: the length is checked here, so the tokenizer need not warn about it as well
        n_tokens = len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        if n_tokens > MAX_TOKENS - 2:
            details["warnings"].append(f"command has {n_tokens} tokens; only the first {MAX_TOKENS - 2} were read")
        ids, mask = tokenize(self.tokenizer, [text], warn=False)
        outputs = dict(zip(PIPELINE_OUTPUTS, (o[0] for o in self.run(ids, mask))))
        offsets, word_ids = token_words(self.tokenizer, [text])[0]
        readings, verdict = decide_outputs(text, offsets, word_ids, outputs, self.threshold)
        details.update(best_guess=verdict["action"], params=verdict["params"], slots=readings, refused=verdict["refused"],
                       probabilities={a: round(float(p), 4) for a, p in zip(ACTIONS, outputs["action_probs"])})
        outputs["params"] = verdict["vector"]   # the schema's [10] encoding of what was read
        command = None if verdict["refused"] else {"action": verdict["action"], "params": verdict["params"]}
        return Decision(command, outputs, verdict["confidence"], reason=verdict["reason"], details=details)
