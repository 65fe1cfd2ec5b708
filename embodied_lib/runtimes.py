"""Load any exported artifact through its own runtime, and check it against eager PyTorch.

    run = load_runtime("exports/navigation", "onnx")
    q_values, = run(states)          # numpy or tensors in, numpy out; inputs validated
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from embodied_lib.export import FORMATS
from embodied_lib.export.artifacts import ArtifactError, require_file
from embodied_lib.export.manifest import artifact_entry, read_manifest
from embodied_lib.models import get_spec


class Runtime:
    """One artifact behind its runtime, with the spec's input checks in front of it."""

    def __init__(self, spec, fmt: str, path: Path, run):
        self.spec, self.format, self.path, self._run = spec, fmt, path, run

    def __call__(self, *inputs) -> tuple[np.ndarray, ...]:
        tensors = self.spec.check_inputs(*inputs)
        outputs = self._run(*tensors)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return tuple(o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outputs)

    def __repr__(self):
        return f"Runtime({self.spec.name}, {self.format}, {self.path})"


def load_runtime(export_dir, fmt: str) -> Runtime:
    """Open ``fmt`` from ``export_dir`` after checking the file against the manifest."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {list(FORMATS)}")
    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    entry = artifact_entry(manifest, fmt)
    spec = get_spec(manifest["model"], **manifest["spec_args"])
    path = require_file(export_dir / entry["file"], entry["sha256"], entry["bytes"])
    return Runtime(spec, fmt, path, FORMATS[fmt].load(path, spec))


def eager_runtime(spec, model) -> Runtime:
    model = model.eval()

    def run(*inputs):
        with torch.no_grad():
            return model(*inputs)
    return Runtime(spec, "eager", Path("<in memory>"), run)


def run_batched(runtime: Runtime, inputs, batch_size: int = 256) -> tuple[np.ndarray, ...]:
    n, batch_size = inputs[0].shape[0], min(batch_size, runtime.spec.max_batch)
    chunks = [runtime(*(a[i:i + batch_size] for a in inputs)) for i in range(0, n, batch_size)]
    return tuple(np.concatenate(parts) for parts in zip(*chunks))


def parity_report(export_dir, reference: Runtime, n: int = 1000, seed: int = 11, formats=None) -> list[dict]:
    """Max |diff| and argmax agreement of every artifact vs ``reference`` on ``n`` sampled inputs."""
    manifest = read_manifest(export_dir)
    spec = reference.spec
    inputs = spec.sample_inputs(n, seed)
    expected = run_batched(reference, inputs)
    rows = []
    for entry in manifest["artifacts"]:
        fmt = entry["format"]
        if formats and fmt not in formats:
            continue
        got = run_batched(load_runtime(export_dir, fmt), inputs)
        max_diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected))
        argmax_agree = float(np.mean(got[0].argmax(axis=1) == expected[0].argmax(axis=1)))
        rows.append({"format": fmt, "file": entry["file"], "inputs": n, "max_abs_diff": max_diff,
                     "argmax_agreement": argmax_agree, "tolerance": spec.tolerance,
                     "passed": max_diff <= spec.tolerance and argmax_agree == 1.0})
    return rows


__all__ = ["ArtifactError", "Runtime", "eager_runtime", "load_runtime", "parity_report", "run_batched"]
