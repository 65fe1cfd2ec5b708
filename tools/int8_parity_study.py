"""Issue 43's measurement: the INT8 parity of many quick manipulation trainings, and where the error comes from.

    .venv/bin/python tools/int8_parity_study.py train    [--seeds 0 1 2 3 4] [--threads 1 2] [--isa avx2] [--dir runs/int8_study]
    .venv/bin/python tools/int8_parity_study.py quantize [--dir runs/int8_study]
    .venv/bin/python tools/int8_parity_study.py layers   [--dir runs/int8_study]
    .venv/bin/python tools/int8_parity_study.py task     [--dir runs/int8_study] [--episodes 20] [--only s0_t1 ...]
    .venv/bin/python tools/int8_parity_study.py report   [--dir runs/int8_study]

``train``: the quick profile's demonstrations once (seed 0, as ``make run``), then one quick training (warm start,
behaviour cloning, one DAgger round) per seed and thread count, each in a process of its own with that many OpenMP
threads (``make test`` gives a worker one, ``make run`` two), into ``<dir>/models/s<seed>_t<threads>/`` (``--isa
avx2``: with the CPU kernels of a machine without AVX-512, ``..._avx2/``).
``quantize``: for each checkpoint, the ONNX INT8 file before and after issue 43's change (the softmax float) and the
ExecuTorch INT8 program, each judged against eager on the parity inputs by the export's own rule, to
``<dir>/quantize.json``: max, p99 and mean |diff|, the gripper agreement, the worst input. ``layers``: per tensor, float vs INT8 (ONNX Runtime's ``qdq_loss_debug``): the
SQNR of every activation the INT8 graph quantizes, to ``<dir>/layers.json``. ``task``: closed-loop success of float
and each INT8 file on the held-out scenes, to ``<dir>/task/<checkpoint>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from embodied_lib.config import PARITY_SEED, RUNS_DIR  # noqa: E402

# Training on a CPU without AVX-512 (the issue's machine may have been one; this one has AVX-512 VNNI): torch's own
# kernels, MKL's and oneDNN's capped at AVX2, so the sums and so the trained model are those of such a machine.
ISA_ENV = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def train(args):
    from embodied_lib.config import get_config
    from embodied_lib.manipulation.demonstrations import DEMONSTRATION_SHARDS, generate_demonstrations

    demos = args.dir / "demonstrations"
    if not list(demos.glob(DEMONSTRATION_SHARDS)):
        cfg = get_config("manipulation", "quick")
        generate_demonstrations(demos, cfg["episodes"], seed=0, workers=cfg["workers"])
    for threads in args.threads:
        for seed in args.seeds:
            out = args.dir / "models" / (f"s{seed}_t{threads}" + (f"_{args.isa}" if args.isa else ""))
            if (out / "model.safetensors").is_file():
                continue
            data = Path(tempfile.mkdtemp(prefix="int8_study_"))
            for shard in demos.glob(DEMONSTRATION_SHARDS):
                shutil.copy(shard, data / shard.name)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(ISA_ENV[args.isa] if args.isa else {})}
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "embodied_lib.manipulation.train", "--profile", "quick",
                            "--reuse-data", "--no-eval", "--seed", str(seed), "--data", str(data), "--out", str(out)],
                           env=env, check=True, cwd=REPO)
            shutil.rmtree(data)
            print(f"s{seed}_t{threads}: {time.perf_counter() - started:.0f} s", flush=True)


def _parity_row(spec, fmt, path, inputs, expected):
    """export.file_parity's verdict, plus where the error is: p99 of the per-input max |diff| and the worst input."""
    from embodied_lib.export import file_parity, run_file

    got = run_file(spec, fmt, path, inputs)
    row = file_parity(spec, fmt, path, inputs, expected, got)
    diff = np.abs(got[0] - expected[0])
    worst = int(diff.max(axis=1).argmax())
    return {**row, "p99_abs_diff": float(np.quantile(diff.max(axis=1), 0.99)),
            "mean_abs_diff": float(diff.mean()), "worst_input": worst, "worst_field": int(diff[worst].argmax()),
            "worst_expected": expected[0][worst].round(3).tolist(), "worst_got": got[0][worst].round(3).tolist()}


def quantize(args):
    """Per checkpoint: ``before`` (ONNX Runtime's default static quantization of every op, as up to issue 43) and
    ``after`` (the softmax and its readers float, quantize.save_onnx_int8), with the ExecuTorch INT8 program."""
    import torch

    from embodied_lib.export import PARITY_BATCH, outputs_in_batches
    from embodied_lib.export import quantize as q
    from embodied_lib.export.torch_export import export_program
    from embodied_lib.registry import load_checkpoint

    out_file = args.dir / "quantize.json"
    results = json.loads(out_file.read_text()) if out_file.is_file() else {}
    for checkpoint in sorted((args.dir / "models").glob("s*_t*")):
        if checkpoint.name in results:
            continue
        spec, model = load_checkpoint(checkpoint)
        inputs = spec.sample_inputs(spec.parity_inputs, PARITY_SEED)
        with torch.no_grad():
            expected = outputs_in_batches(model, inputs, PARITY_BATCH)
        folder = args.dir / "exports" / checkpoint.name
        folder.mkdir(parents=True, exist_ok=True)
        program = export_program(spec, model)
        files = {("onnx_int8", "before"): (folder / "before.int8.onnx", dict(float_softmax=False)),
                 ("onnx_int8", "after"): (folder / "after.int8.onnx", dict(float_softmax=True))}
        row = {}
        for (fmt, variant), (path, options) in files.items():
            q.save_onnx_int8(spec, model, program, path, **options)
            row[f"{fmt}/{variant}"] = _parity_row(spec, fmt, path, inputs, expected)
        pte = folder / "manipulation.int8.pte"
        q.save_executorch_int8(spec, model, program, pte)
        row["executorch_int8"] = _parity_row(spec, "executorch_int8", pte, inputs, expected)
        results[checkpoint.name] = row
        print(checkpoint.name, {k: (round(r["max_abs_diff"], 3), r["passed"]) for k, r in row.items()}, flush=True)
        out_file.write_text(json.dumps(results, indent=1) + "\n")


def layers(args):
    """Per checkpoint and ONNX variant: each quantized activation's SQNR in dB (float graph vs the INT8 graph's
    dequantized tensor, ONNX Runtime's qdq_loss_debug) on the parity inputs. Tensors ORT folds a Relu into read as
    the pre-Relu value on the INT8 side, so only their float-vs-INT8 (``xmodel_err``) number is kept."""
    from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                         create_activation_matching,
                                                         modify_model_output_intermediate_tensors)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from embodied_lib.export.onnx_model import save as save_onnx
    from embodied_lib.export.torch_export import export_program
    from embodied_lib.registry import load_checkpoint

    report = {}
    for folder in sorted((args.dir / "exports").glob("s*_t*")):
        spec, model = load_checkpoint(args.dir / "models" / folder.name)
        image, state = spec.sample_inputs(spec.parity_inputs, PARITY_SEED)

        def batches():
            return iter([{"image": image[i:i + 10], "state": state[i:i + 10]} for i in range(0, len(image), 10)])

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            save_onnx(spec, model, export_program(spec, model), tmp / "fp32.onnx")
            quant_pre_process(str(tmp / "fp32.onnx"), str(tmp / "prep.onnx"), skip_symbolic_shape=True)
            modify_model_output_intermediate_tensors(str(tmp / "prep.onnx"), str(tmp / "float.onnx"))
            reference = collect_activations(str(tmp / "float.onnx"), batches())
            for variant in ("before", "after"):
                modify_model_output_intermediate_tensors(str(folder / f"{variant}.int8.onnx"), str(tmp / "int8.onnx"))
                errors = compute_activation_error(create_activation_matching(
                    collect_activations(str(tmp / "int8.onnx"), batches()), reference))
                report[f"{folder.name}/{variant}"] = {k: round(float(v["xmodel_err"]), 1) for k, v in errors.items()
                                                      if "xmodel_err" in v}
                print(folder.name, variant, report[f"{folder.name}/{variant}"], flush=True)
    (args.dir / "layers.json").write_text(json.dumps(report, indent=1) + "\n")


def task(args):
    """Per checkpoint: closed-loop success of eager float32 and of each INT8 file (after the change) on the quick
    profile's held-out scenes (config.EVAL_SEED_BASE: never demonstrations, calibration or parity inputs), through
    the same policy and rollout as notebook 08's task metrics (profiling.accuracy), to ``<dir>/task/<checkpoint>.json``."""
    from embodied_lib.config import EVAL_SEED_BASE, get_config
    from embodied_lib.export import FORMATS
    from embodied_lib.export.artifacts import ModelBytes
    from embodied_lib.manipulation.evaluate import rollout
    from embodied_lib.registry import load_checkpoint, make_policy
    from embodied_lib.runtime.runtimes import Runtime, eager_runtime

    episodes = args.episodes or get_config("manipulation", "quick")["eval_episodes"]
    seeds = range(EVAL_SEED_BASE, EVAL_SEED_BASE + episodes)
    (args.dir / "task").mkdir(exist_ok=True)
    for checkpoint in sorted((args.dir / "models").glob("s*_t*")):
        out_file = args.dir / "task" / f"{checkpoint.name}.json"   # one file each: several processes may share the work
        if out_file.is_file() or (args.only and checkpoint.name not in args.only):
            continue
        spec, model = load_checkpoint(checkpoint)
        folder = args.dir / "exports" / checkpoint.name
        runtimes = {"float32 (eager)": eager_runtime(spec, model)}
        for label, fmt, path in (("onnx_int8", "onnx_int8", folder / "after.int8.onnx"),
                                 ("executorch_int8", "executorch_int8", folder / "manipulation.int8.pte")):
            runtimes[label] = Runtime(spec, fmt, path, FORMATS[fmt].load(ModelBytes(path, path.read_bytes()), spec))
        row = {}
        for label, runtime in runtimes.items():
            result = rollout(make_policy(runtime), seeds)
            row[label] = {"episodes": result["episodes"], "success_rate": result["success_rate"],
                          "successes": result["successes"]}
        print(checkpoint.name, {k: v["success_rate"] for k, v in row.items()}, flush=True)
        out_file.write_text(json.dumps(row, indent=1) + "\n")


def report(args):
    """The tables of the closing note, from what the other phases wrote: ``<dir>/report.md``."""
    lines = []
    quantized = json.loads((args.dir / "quantize.json").read_text())
    lines += ["| training | ONNX INT8 before | ONNX INT8 after | ExecuTorch INT8 | worst input (before) |",
              "|---|---|---|---|---|"]

    def cell(r):
        return f"{r['max_abs_diff']:.3f} (p99 {r['p99_abs_diff']:.3f}) {'pass' if r['passed'] else '**FAIL**'}"
    for name, row in quantized.items():
        before = row["onnx_int8/before"]
        def vector(v):
            return "[" + ", ".join(f"{x:.2f}" for x in v) + "]"
        lines.append(f"| {name} | {cell(before)} | {cell(row['onnx_int8/after'])} | {cell(row['executorch_int8'])} | "
                     f"#{before['worst_input']} field {before['worst_field']}: {vector(before['worst_expected'])} -> "
                     f"{vector(before['worst_got'])} |")
    for label, key in (("before", "onnx_int8/before"), ("after", "onnx_int8/after"), ("ExecuTorch", "executorch_int8")):
        values = [row[key]["max_abs_diff"] for row in quantized.values()]
        failed = sum(not row[key]["passed"] for row in quantized.values())
        lines.append(f"\n{label}: max |diff| {min(values):.3f}-{max(values):.3f} (median {np.median(values):.3f}), "
                     f"{failed} of {len(values)} over the rule")
    if (args.dir / "layers.json").is_file():
        layers = json.loads((args.dir / "layers.json").read_text())
        tensors = sorted({t for row in layers.values() for t in row})
        lines += ["", "SQNR (dB, float vs INT8, median over trainings) per quantized tensor:", "",
                  "| tensor | before | after |", "|---|---|---|"]
        for t in tensors:
            med = {v: [row[t] for k, row in layers.items() if k.endswith(v) and t in row] for v in ("/before", "/after")}
            lines.append(f"| {t} | " + " | ".join(f"{np.median(m):.1f}" if m else "float (not quantized)"
                                                  for m in med.values()) + " |")
    tasks = {p.stem: json.loads(p.read_text()) for p in sorted((args.dir / "task").glob("*.json"))}
    if tasks:
        labels = list(next(iter(tasks.values())))
        lines += ["", "| training | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for name, row in tasks.items():
            lines.append(f"| {name} | " + " | ".join(f"{row[k]['success_rate']:.0%}" for k in labels) + " |")
        pooled = {k: [s for row in tasks.values() for s in row[k]["successes"]] for k in labels}
        lines.append("| pooled | " + " | ".join(f"{np.mean(v):.1%} of {len(v)}" for v in pooled.values()) + " |")
    text = "\n".join(lines) + "\n"
    (args.dir / "report.md").write_text(text)
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=("train", "quantize", "layers", "task", "report"))
    parser.add_argument("--dir", type=Path, default=RUNS_DIR / "int8_study")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--isa", choices=sorted(ISA_ENV), help="train: cap the CPU instruction set (ISA_ENV)")
    parser.add_argument("--only", nargs="+", help="task: these checkpoints only (e.g. s0_t1 s0_t2)")
    parser.add_argument("--episodes", type=int, default=None, help="task: held-out scenes per model (default: the "
                        "quick profile's eval_episodes)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    {"train": train, "quantize": quantize, "layers": layers, "task": task, "report": report}[args.phase](args)


if __name__ == "__main__":
    main()
