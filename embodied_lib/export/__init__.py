"""Export any ModelSpec'd model to every deployment format, with a manifest and golden vectors.

One path with flags (ExecuTorch examples-style)::

    python -m embodied_lib.export --model navigation --checkpoint runs/navigation --out exports/navigation

Each format is a module with ``save(spec, model, program, path)`` and
``load(path, spec) -> run(*tensors)``; FORMATS below is the only list of them.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from embodied_lib.config import PARITY_SEED
from embodied_lib.export import aoti_package, executorch_pte, onnx_model, quantize, torch_export, trust, weights
from embodied_lib.export.artifacts import ArtifactError, ModelBytes, sha256_of
from embodied_lib.export.golden import make_golden, write_golden
from embodied_lib.export.manifest import package_versions, write_manifest
from embodied_lib.export.parity import compare_outputs


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str          # file name = <model><suffix>
    runtime: str         # what runs it
    save: Callable
    load: Callable
    carries_code: bool = False   # loading runs code: only trusted and signed (embodied_lib.export.trust)
    lossy: bool = False          # INT8: judged by spec.int8_tolerance and spec.int8_agreement, not spec.tolerance
    max_batch: int | None = None  # a program made for batches up to this only (None: the spec's max_batch)


FORMATS = {f.name: f for f in (
    Format("torch_export", ".export.pt2", "torch.export.load (Python)", torch_export.save, torch_export.load,
           carries_code=True),
    Format("executorch", ".pte", "ExecuTorch runtime, XNNPACK backend", executorch_pte.save, executorch_pte.load),
    Format("onnx", ".onnx", "ONNX Runtime", onnx_model.save, onnx_model.load),
    Format("safetensors", ".safetensors", "weights for a rebuilt module (PyTorch, LibTorch, tch-rs)",
           weights.save_safetensors, weights.load_safetensors),
    Format("pth", ".pth", "plain-dict state_dict (PyTorch weights_only, LibTorch pickle_load)",
           weights.save_pth, weights.load_pth),
    Format("aoti", ".aoti.pt2", "AOTInductor package loader (Python, C++)", aoti_package.save,
           aoti_package.load, carries_code=True),
    Format("executorch_int8", ".int8.pte", "ExecuTorch runtime, XNNPACK backend, INT8 (PT2E)",
           quantize.save_executorch_int8, quantize.load_executorch_int8, lossy=True),
    Format("onnx_int8", ".int8.onnx", "ONNX Runtime, INT8 (QDQ static or dynamic)", quantize.save_onnx_int8,
           onnx_model.load, lossy=True),
    # the robot's models (spec.ROBOT_FORMATS): what the control loops load, Python and C++ alike
    Format("executorch_batch1", ".batch1.pte", "ExecuTorch runtime, XNNPACK backend, batch 1 (the control loops')",
           executorch_pte.save_batch1, executorch_pte.load, max_batch=1),
    # not in a model's own formats (spec.ALL_FORMATS): the profiling bench writes it beside the XNNPACK program
    Format("executorch_undelegated", ".undelegated.pte", "ExecuTorch runtime, no delegate (optimized and portable "
           "kernels)", executorch_pte.save_undelegated, executorch_pte.load),
)}


def parity_rule(spec, fmt: str) -> dict:
    """How a format is judged against eager: max |diff| within ``tolerance`` and at least ``agreement`` of the
    decisions whose reference margin exceeds ``tie_margin``. Float formats: the spec's tolerance for both,
    every decision. INT8: the spec's looser int8_tolerance for the values, int8_tie_margin for near-ties (a
    decision INT8 rounding alone can flip) and int8_agreement of the rest (the same-argmax / same-gripper
    rate; the task metrics in embodied_lib.profiling say what a flipped decision costs).
    The manifest carries it per artifact, so the native runners judge a file as Python does."""
    if FORMATS[fmt].lossy:
        return {"tolerance": spec.int8_tolerance, "tie_margin": spec.int8_tie_margin,
                "agreement": spec.int8_agreement}
    return {"tolerance": spec.tolerance, "tie_margin": spec.tolerance, "agreement": 1.0}


PARITY_BATCH = 256


def outputs_in_batches(run, inputs, batch: int) -> tuple[np.ndarray, ...]:
    """``run`` (a loaded format, or the eager module) over NumPy ``inputs`` in batches of ``batch``; NumPy out."""
    parts = []
    for i in range(0, inputs[0].shape[0], batch):
        out = run(*(torch.from_numpy(np.ascontiguousarray(a[i:i + batch])) for a in inputs))
        out = out if isinstance(out, (tuple, list)) else (out,)
        parts.append([o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in out])
    return tuple(np.concatenate(p) for p in zip(*parts))


def run_file(spec, fmt: str, path: Path, inputs) -> tuple[np.ndarray, ...]:
    """The file just written, run through its own runtime on ``inputs`` (in batches it accepts)."""
    form = FORMATS[fmt]
    run = form.load(ModelBytes(path, path.read_bytes()), spec)
    return outputs_in_batches(run, inputs, min(PARITY_BATCH, spec.max_batch, form.max_batch or spec.max_batch))


def file_parity(spec, fmt: str, path: Path, inputs, expected, got=None) -> dict:
    """The file just written, run on the parity ``inputs`` (``got``: its outputs, if already run) and judged against
    eager's ``expected`` outputs by its format's rule: the verdict its manifest entry carries (export.parity)."""
    got = run_file(spec, fmt, path, inputs) if got is None else got
    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
        raise ArtifactError(f"{path} returned shapes {[list(g.shape) for g in got]}, eager "
                            f"{[list(e.shape) for e in expected]}: the export is broken")
    rule = parity_rule(spec, fmt)
    result = compare_outputs(spec, expected, got, rule)
    if not math.isfinite(result["max_abs_diff"]):   # NaN or Inf in an output: no number to record, and a failure
        result.update(max_abs_diff=None, passed=False)
    return {**rule, "inputs": int(inputs[0].shape[0]),
            **{k: result[k] for k in ("max_abs_diff", "decision_agreement", "near_ties", "passed")}}


GOLDEN_FILE = "golden.bin"
# Outputs far outside anything the model can produce are a damaged file or a failed runtime, not an answer:
# a bounded output (tanh, probabilities) may not leave its bounds by more than half their magnitude; an
# unbounded one (Q-values, logits) may not exceed OUTPUT_LIMIT_FACTOR x the largest golden output (at least 1).
# Written per output into the manifest as "max_abs" (at most MAX_OUTPUT_LIMIT), read by every runtime.
OUTPUT_LIMIT_FACTOR = 100.0
MAX_OUTPUT_LIMIT = 1e6


def bounded_limit(bounds) -> float:
    return 1.5 * max(abs(float(b)) for b in bounds)


def output_limit(judged, golden_values) -> float:
    """The ``max_abs`` of one output: from its bounds, else from the golden vectors the export wrote."""
    if judged.bounds is not None:
        return bounded_limit(judged.bounds)
    largest = float(abs(golden_values).max()) if golden_values.size else 0.0
    return min(MAX_OUTPUT_LIMIT, OUTPUT_LIMIT_FACTOR * max(1.0, largest))


def export_all(spec, model, out_dir, formats=None, golden_count: int | None = None, log=print,
               signing_key=None, parity_inputs: int | None = None) -> dict:
    """Write every requested format plus golden vectors and manifest.json into ``out_dir``, and sign the
    manifest (``manifest.sig``) with ``signing_key`` (default: this machine's key, made on first use).

    Each file is run on ``parity_inputs`` sampled inputs (default: the spec's) against eager before the manifest
    is written, and its entry records the verdict (``file_parity``); loaders serve only files that passed
    (export.parity.refusal). Nothing is raised here for a failed file: ``export.workflow`` decides what stops."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    names = list(formats or spec.formats)
    unknown = set(names) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; choose from {list(FORMATS)}")
    program = torch_export.export_program(spec, model)
    inputs = spec.sample_inputs(parity_inputs or spec.parity_inputs, PARITY_SEED)
    with torch.no_grad():
        expected = outputs_in_batches(model, inputs, min(PARITY_BATCH, spec.max_batch))
    artifacts = []
    for name in names:
        fmt = FORMATS[name]
        path = out_dir / f"{spec.name}{fmt.suffix}"
        started = time.perf_counter()
        fmt.save(spec, model, program, path)
        seconds = time.perf_counter() - started
        artifacts.append({
            "format": name, "file": path.name, "runtime": fmt.runtime,
            "sha256": sha256_of(path), "bytes": path.stat().st_size,
            "inputs": [s.to_json() for s in spec.inputs],
            "outputs": [s.to_json() for s in spec.outputs],
            "export_seconds": round(seconds, 2),
            "parity": file_parity(spec, name, path, inputs, expected),
            **({"max_batch": fmt.max_batch} if fmt.max_batch else {}),
        })
        verdict = artifacts[-1]["parity"]
        log(f"  {name:13s} {path.name:28s} {path.stat().st_size / 1e6:7.2f} MB  {seconds:5.1f} s  "
            f"parity {'passed' if verdict['passed'] else 'FAILED (never served)'}")
    golden_count = golden_count or spec.golden_count
    extras = [Path(p) for p in spec.write_extras(spec, model, out_dir)] if spec.write_extras else []
    architecture = spec.architecture(model)
    golden = make_golden(spec, model, n=golden_count)
    write_golden(out_dir / GOLDEN_FILE, golden)
    described = spec.to_json()
    for out, ts in zip(described["outputs"], spec.outputs):
        out["max_abs"] = output_limit(ts.judged, golden[f"output.{ts.name}"])
    manifest = {
        "model": spec.name,
        **{k: v for k, v in described.items() if k != "model"},
        "versions": package_versions(),
        "architecture": architecture,
        "artifacts": artifacts,
        "golden": {"file": GOLDEN_FILE, "sha256": sha256_of(out_dir / GOLDEN_FILE), "count": golden_count,
                   "tensors": {k: list(v.shape) for k, v in golden.items()}},
        "extra_files": [{"file": p.name, "sha256": sha256_of(p), "bytes": p.stat().st_size} for p in extras],
    }
    write_manifest(out_dir, manifest)
    trust.sign_manifest(out_dir, signing_key)
    return manifest


__all__ = ["ArtifactError", "FORMATS", "bounded_limit", "export_all", "file_parity", "output_limit", "outputs_in_batches",
           "parity_rule", "run_file"]
