"""Files the text pipeline needs beside its model: the tokenizer, and test commands with Python's answers."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from embodied_lib.config import TEXT_GOLDEN_SEED
from embodied_lib.hri.commands import decide, make_corpus, refuse_text, text_problem
from embodied_lib.hri.encoder import load_tokenizer, tokenize

TOKENIZER_FILE = "tokenizer.json"
TEXT_GOLDEN_FILE = "text_golden.jsonl"
# Odd inputs every runtime must handle the same way (the Rust runner reads them from text_golden).
EDGE_CASES = ("", "   ", "?!...", "🤖 pick up the 🟥 cube", "Pick up the RED cube!!!", "tourne à gauche de 90 degrés",
              "stop " * 80, "pick up the \u202ebuc der\u202c cube", "rotate 99999999999999999999999999 degrees",
              "move forward -500 meters", "turn 1e9 degrees")


def write_pipeline_extras(spec, pipeline, out_dir) -> list[Path]:
    """tokenizer.json (+ its config) and text_golden.jsonl: test commands and Python's answers (the outputs,
    and the decision: action, decoded parameters, refused or not and why)."""
    threshold = spec.metadata.get("confidence_threshold") or 0.0
    out_dir = Path(out_dir)
    tokenizer = load_tokenizer()
    written = [Path(p) for p in tokenizer.save_pretrained(str(out_dir)) if Path(p).exists()]
    corpus = make_corpus(0, 0, 240, 60, seed=TEXT_GOLDEN_SEED)
    texts = [c.text for c in corpus["test"]] + [c.text for c in corpus["ood_test"]] + list(EDGE_CASES)
    expected = [c.action for c in corpus["test"]] + [-1] * (len(corpus["ood_test"]) + len(EDGE_CASES))
    golden = out_dir / TEXT_GOLDEN_FILE
    with open(golden, "w") as f:
        for text, label in zip(texts, expected):
            ids, mask = tokenize(tokenizer, [text], warn=False)
            with torch.no_grad():
                probs, params = pipeline.eval()(torch.from_numpy(ids), torch.from_numpy(mask))
            problem = text_problem(text)
            verdict = refuse_text(problem) if problem else decide(probs[0].numpy(), params[0].numpy(), threshold)
            f.write(json.dumps({"text": text, "label": label, "tokens": int(mask.sum()),
                                "action": int(probs[0].argmax()), "probs": probs[0].tolist(),
                                "params": params[0].tolist(),
                                "decision": {k: verdict[k] for k in ("action", "params", "refused")}},
                               ensure_ascii=False) + "\n")
    return sorted(set(written)) + [golden]
