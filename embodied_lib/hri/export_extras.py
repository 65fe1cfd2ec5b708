"""Files the text pipeline needs beside its model: the tokenizer, and test commands with Python's answers."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from embodied_lib.config import TEXT_GOLDEN_SEED
from embodied_lib.hri.commands import make_corpus, refuse_text, text_problem
from embodied_lib.hri.encoder import load_tokenizer, token_words, tokenize
from embodied_lib.hri.slots import decide_outputs

TOKENIZER_FILE = "tokenizer.json"
TEXT_GOLDEN_FILE = "text_golden.jsonl"
# Odd inputs every runtime must handle the same way (the Rust runner reads them from text_golden).
EDGE_CASES = ("", "   ", "?!...", "🤖 pick up the 🟥 cube", "Pick up the RED cube!!!", "tourne à gauche de 90 degrés",
              "stop " * 80, "pick up the \u202ebuc der\u202c cube", "rotate 99999999999999999999999999 degrees",
              "move forward -500 meters", "turn 1e9 degrees", "go to row 3", "rotate a bit", "move forward",
              "move forward 20 cm or 30 cm", "turn left -90 degrees", "move back half a metre", "make a quarter turn",
              "go to row one hundred and fifty column two", "turn around", "move forward 0.25 m", "go to (3, 5)",
              "go to row 3 or 4, column 5", "go to row 3, no, row 5, column 2", "pick up that one", "stop in 5 seconds",
              "go to the second row, column 3", "turn left ninety degrees or maybe forty-five",
              "go to row one hundred, column five", "go to row ninety-nine column 2", "creep twenty cm forward",
              "turn left 90 radians", "turn left over half a turn", "please twirl just ninety seven degrees to your right",
              "move forward 20 cm, no, 30 cm")


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
    names = [o.name for o in spec.outputs]
    with open(golden, "w") as f:
        for text, label in zip(texts, expected):
            ids, mask = tokenize(tokenizer, [text], warn=False)
            with torch.no_grad():
                outputs = {n: o[0].numpy() for n, o in zip(names, pipeline.eval()(torch.from_numpy(ids),
                                                                                    torch.from_numpy(mask)))}
            problem = text_problem(text)
            verdict = (refuse_text(problem) if problem else
                       decide_outputs(text, *token_words(tokenizer, [text])[0], outputs, threshold)[1])
            f.write(json.dumps({"text": text, "label": label, "tokens": int(mask.sum()),
                                "action": int(outputs["action_probs"].argmax()),
                                **{n: v.tolist() for n, v in outputs.items()},
                                "decision": {k: verdict[k] for k in ("action", "params", "refused")}},
                               ensure_ascii=False) + "\n")
    return sorted(set(written)) + [golden]
