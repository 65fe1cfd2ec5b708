"""Issue 10's latency check: the fine-tuned pipeline's pooling (mean+first) against the pooling it replaced
(mean), same 768-wide 6-layer DistilBERT, both exported to ONNX and timed at batch 1 in one run, interleaved.

    .venv/bin/python tools/hri_pipeline_latency.py [--iterations 300] [--out runs/bench/hri_pipeline_latency.json]

Weights do not change the cost, so both pipelines are built untrained from the packaged encoder's shape.
"""
from __future__ import annotations

import argparse
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
from embodied_lib.hri.model import build_command_pipeline, command_pipeline_spec  # noqa: E402
from embodied_lib.registry import load_runtime  # noqa: E402
from embodied_lib.runtime.latency import percentile  # noqa: E402

COMMANDS = ["please go to row 3, column 5", "pick up the red cube", "turn left 90 degrees", "move forward 30 cm"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench" / "hri_pipeline_latency.json")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = encoder_config(widen_minilm_to_distilbert())
    tokenizer = load_tokenizer()
    inputs = [tokenize(tokenizer, [c], warn=False) for c in COMMANDS]
    runtimes, timings = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for pooling in ("mean", "mean+first"):
            spec = command_pipeline_spec(config, 0.5, pooling)
            model = build_command_pipeline(config, pooling=pooling).eval()
            export_all(spec, model, Path(tmp) / pooling.replace("+", "_"), formats=["onnx"], log=lambda *_: None)
            runtimes[pooling] = load_runtime(Path(tmp) / pooling.replace("+", "_"), "onnx")
            timings[pooling] = []
        for run in runtimes.values():   # warm-up
            for ids, mask in inputs:
                run(ids, mask)
        for i in range(args.iterations):   # interleaved, so drift on a shared machine hits both alike
            for pooling, run in runtimes.items():
                ids, mask = inputs[i % len(inputs)]
                t0 = time.perf_counter()
                run(ids, mask)
                timings[pooling].append((time.perf_counter() - t0) * 1e3)
    rows = {p: {"p50_ms": percentile(t, 50), "p99_ms": percentile(t, 99), "mean_ms": float(np.mean(t))}
            for p, t in timings.items()}
    result = {"runtime": "ONNX Runtime (Python), batch 1", "iterations": args.iterations, "commands": COMMANDS,
              "before (mean pooling)": rows["mean"], "after (mean+first pooling)": rows["mean+first"],
              "p50_ratio": rows["mean+first"]["p50_ms"] / rows["mean"]["p50_ms"], "target_ratio": 1.2}
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
