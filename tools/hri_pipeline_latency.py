"""Issue 25's latency check: the slot pipeline (action, slot tags per token, colour / direction / turn classes)
against the design's pipeline it replaced for the decision (action + the ParamExtractor's [10] parameters), the same
768-wide 6-layer DistilBERT, each exported to every runtime asked for and timed at batch 1 in one run, interleaved.

    .venv/bin/python tools/hri_pipeline_latency.py [--formats onnx executorch] [--iterations 300]
                                                   [--out runs/bench/hri_pipeline_latency.json]

Weights do not change the cost, so both pipelines are built untrained from the packaged encoder's shape; the
tokenizing and decoding around the model are not timed (the same in both).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from embodied_lib.export import export_all  # noqa: E402
from embodied_lib.hri.encoder import encoder_config, load_tokenizer, tokenize, widen_minilm_to_distilbert  # noqa: E402
from embodied_lib.hri.model import (N_PARAMS, PARAMS_JUDGED, build_command_pipeline,  # noqa: E402
                                    command_pipeline_spec)
from embodied_lib.runtime.latency import percentile  # noqa: E402
from embodied_lib.runtime.runtimes import load_artifact  # noqa: E402
from embodied_lib.spec import BATCH, TensorSpec  # noqa: E402

COMMANDS = ["please go to row 3, column 5", "pick up the red cube", "turn left 90 degrees", "move forward 30 cm"]


class RegressionPipeline(torch.nn.Module):
    """The design's text pipeline: token ids + mask -> (action probabilities, ParamExtractor parameters)."""

    def __init__(self, pipeline):
        super().__init__()
        self.pipeline = pipeline

    def forward(self, input_ids, attention_mask):
        p = self.pipeline
        embedding = p.encoder(input_ids, attention_mask)
        probs = p.classifier(embedding)
        return probs, p.extractor(torch.cat([embedding, probs], dim=-1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formats", nargs="+", default=["onnx", "executorch"])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "hri_pipeline_latency.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = encoder_config(widen_minilm_to_distilbert())
    tokenizer = load_tokenizer()
    inputs = [tokenize(tokenizer, [c], warn=False) for c in COMMANDS]
    slots_spec = command_pipeline_spec(config, 0.5, "mean+first")
    slots = build_command_pipeline(config, pooling="mean+first").eval()
    regression_spec = dataclasses.replace(
        slots_spec, name="regression_pipeline", write_extras=None, formats=tuple(args.formats),
        outputs=(slots_spec.outputs[0], TensorSpec("params", (BATCH, N_PARAMS), judged=PARAMS_JUDGED)))
    models = {"design (action + ParamExtractor)": (regression_spec, RegressionPipeline(slots).eval()),
              "slots (action + tags + classes)": (dataclasses.replace(slots_spec, formats=tuple(args.formats)), slots)}
    runtimes, timings = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, (spec, model)) in enumerate(models.items()):
            folder = Path(tmp) / str(k)
            export_all(spec, model, folder, formats=args.formats, log=lambda *_: None)
            for fmt in args.formats:
                runtimes[(fmt, name)] = load_artifact(folder, fmt, spec, trusted=True)
                timings[(fmt, name)] = []
        for run in runtimes.values():   # warm-up
            for ids, mask in inputs:
                run(ids, mask)
        for i in range(args.iterations):   # interleaved, so drift on a shared machine hits both alike
            for key, run in runtimes.items():
                ids, mask = inputs[i % len(inputs)]
                t0 = time.perf_counter()
                run(ids, mask)
                timings[key].append((time.perf_counter() - t0) * 1e3)
    names = list(models)
    result = {"runtime": "Python bindings, batch 1, one process", "iterations": args.iterations, "commands": COMMANDS,
              "target_ratio": 1.2, "by_format": {}}
    for fmt in args.formats:
        rows = {n: {"p50_ms": percentile(timings[(fmt, n)], 50), "p99_ms": percentile(timings[(fmt, n)], 99),
                    "mean_ms": float(np.mean(timings[(fmt, n)]))} for n in names}
        result["by_format"][fmt] = {**rows, "p50_ratio": rows[names[1]]["p50_ms"] / rows[names[0]]["p50_ms"]}
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
