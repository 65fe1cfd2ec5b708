"""Raw text -> robot command decision: the HRI pipeline as a deployed system would call it.

    interpreter = CommandInterpreter.from_exports("exports/command_pipeline")   # ONNX Runtime
    interpreter("pick up the red cube")
    # {'action': 'pick', 'confidence': 0.99, 'params': {'colour': 'red'}, 'accepted': True, 'reason': None, ...}

Bad input never crashes: text with no letters or digits (empty, punctuation, emoji only) is
rejected before the model with that reason; text over MAX_TOKENS tokens is truncated with a
warning; anything the model is unsure of (max probability < threshold) is rejected with the
confidence in the reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from embodied_lib.data.commands import ACTIONS, decode_params, make_corpus
from embodied_lib.models.hri import MAX_TOKENS, load_tokenizer, tokenize

TOKENIZER_FILE = "tokenizer.json"
TEXT_GOLDEN_FILE = "text_golden.jsonl"
# Odd inputs every runtime must handle the same way (the Rust runner reads them from text_golden).
EDGE_CASES = ("", "   ", "?!...", "🤖 pick up the 🟥 cube", "Pick up the RED cube!!!", "tourne à gauche de 90 degrés",
              "stop " * 80)


class CommandInterpreter:
    def __init__(self, run, tokenizer, threshold: float):
        """``run(input_ids, attention_mask) -> (action_probs, params)`` on int64 arrays."""
        self.run, self.tokenizer, self.threshold = run, tokenizer, float(threshold)

    @classmethod
    def from_pipeline(cls, pipeline, threshold: float, tokenizer=None):
        pipeline = pipeline.eval()

        def run(ids, mask):
            with torch.no_grad():
                probs, params = pipeline(torch.from_numpy(ids), torch.from_numpy(mask))
            return probs.numpy(), params.numpy()
        return cls(run, tokenizer or load_tokenizer(), threshold)

    @classmethod
    def from_exports(cls, export_dir, fmt: str = "onnx"):
        from transformers import DistilBertTokenizerFast

        from embodied_lib.export.manifest import read_manifest
        from embodied_lib.runtimes import load_runtime

        export_dir = Path(export_dir)
        runtime = load_runtime(export_dir, fmt)
        tokenizer = DistilBertTokenizerFast(tokenizer_file=str(export_dir / TOKENIZER_FILE), model_max_length=MAX_TOKENS)
        threshold = read_manifest(export_dir)["metadata"]["confidence_threshold"]
        return cls(lambda ids, mask: runtime(ids, mask), tokenizer, threshold)

    def __call__(self, text: str) -> dict:
        if not isinstance(text, str):
            raise TypeError(f"a command must be a str, got {type(text).__name__}")
        result = {"text": text, "action": None, "confidence": 0.0, "probabilities": {}, "params": {},
                  "accepted": False, "reason": None, "warnings": []}
        if not any(ch.isalnum() for ch in text):
            result["reason"] = "no words in the command (empty, spaces, punctuation or symbols only)"
            return result
        n_tokens = len(self.tokenizer.tokenize(text))
        if n_tokens > MAX_TOKENS - 2:
            result["warnings"].append(f"command has {n_tokens} tokens; only the first {MAX_TOKENS - 2} were read")
        ids, mask = tokenize(self.tokenizer, [text], warn=False)
        probs, params = self.run(ids, mask)
        best = int(np.argmax(probs[0]))
        result.update(action=ACTIONS[best], confidence=float(probs[0, best]),
                      probabilities={a: round(float(p), 4) for a, p in zip(ACTIONS, probs[0])},
                      params=decode_params(ACTIONS[best], params[0]))
        result["accepted"] = result["confidence"] >= self.threshold
        if not result["accepted"]:
            result["reason"] = (f"low confidence: {result['confidence']:.2f} < threshold {self.threshold:.2f} "
                                f"(not a command this robot knows?)")
        return result


def write_pipeline_extras(pipeline, out_dir) -> list[Path]:
    """tokenizer.json (+ its config) and text_golden.jsonl: test commands and Python's answers."""
    out_dir = Path(out_dir)
    tokenizer = load_tokenizer()
    written = [Path(p) for p in tokenizer.save_pretrained(str(out_dir)) if Path(p).exists()]
    corpus = make_corpus(0, 0, 240, 60, seed=5)
    texts = [c.text for c in corpus["test"]] + [c.text for c in corpus["ood_test"]] + list(EDGE_CASES)
    expected = [c.action for c in corpus["test"]] + [-1] * (len(corpus["ood_test"]) + len(EDGE_CASES))
    golden = out_dir / TEXT_GOLDEN_FILE
    with open(golden, "w") as f:
        for text, label in zip(texts, expected):
            ids, mask = tokenize(tokenizer, [text], warn=False)
            with torch.no_grad():
                probs, params = pipeline.eval()(torch.from_numpy(ids), torch.from_numpy(mask))
            f.write(json.dumps({"text": text, "label": label, "tokens": int(mask.sum()),
                                "action": int(probs[0].argmax()), "probs": probs[0].tolist(),
                                "params": params[0].tolist()}, ensure_ascii=False) + "\n")
    return sorted(set(written)) + [golden]
