"""Load any exported artifact through its own runtime, and check it against eager PyTorch.

    run = load_artifact("exports/navigation", "onnx", spec)   # embodied_lib.registry.load_runtime finds the spec
    q_values, = run(states)          # numpy or tensors in, numpy out; inputs validated

Parity follows how the spec judges each output (``embodied_lib.spec.Judgement``): values within the
spec's tolerance always; the argmax for discrete outputs and probabilities; the binary decisions
(manipulation's gripper) for continuous outputs, never their argmax.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from embodied_lib.config import PARITY_SEED
from embodied_lib.export import FORMATS, bounded_limit, outputs_in_batches, parity_rule
from embodied_lib.export.artifacts import REEXPORT_HINT, ArtifactError, read_verified
from embodied_lib.export.manifest import MANIFEST_NAME, artifact_entry, parse_manifest, read_manifest, read_manifest_bytes
from embodied_lib.export.parity import compare_outputs, decisions, refusal, verdict_row
from embodied_lib.export.trust import local_public_key, verify_manifest


class OutputError(RuntimeError):
    """A runtime returned something the contract does not allow (NaN, Inf, the wrong shape)."""


class Runtime:
    """One artifact behind its runtime, with the spec's input checks in front of it and output checks after."""

    def __init__(self, spec, fmt: str, path: Path, run, manifest: dict | None = None):
        self.spec, self.format, self.path, self._run = spec, fmt, path, run
        self.manifest = manifest   # the manifest it was loaded under (None for eager)
        self._limits = output_limits(spec, manifest)

    def __call__(self, *inputs) -> tuple[np.ndarray, ...]:
        tensors = self.spec.check_inputs(*inputs)
        outputs = self._run(*tensors)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        outputs = tuple(o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outputs)
        if len(outputs) != len(self.spec.outputs):
            raise OutputError(f"{self} returned {len(outputs)} outputs, the contract has {len(self.spec.outputs)}")
        batch = tensors[0].shape[0]
        sizes = {d: int(n) for ts, t in zip(self.spec.inputs, tensors) for d, n in zip(ts.shape, t.shape)
                 if isinstance(d, str)}   # named dynamic dims (batch, sequence): an output's must be its input's
        for out, ts in zip(outputs, self.spec.outputs):
            if out.shape[0] != batch or out.shape[1:] != tuple(sizes.get(d, d) for d in ts.shape[1:]):
                raise OutputError(f"{self} returned {ts.name} of shape {list(out.shape)}, expected {ts.describe()} "
                                  f"with batch {batch}")
            if not np.isfinite(out).all():
                raise OutputError(f"{self} returned NaN or Inf in {ts.name}; the input was inside the contract, "
                                  f"so the model file is damaged or the runtime failed")
            limit = self._limits[ts.name]
            if out.size and np.abs(out).max() > limit:
                raise OutputError(f"{self} returned {float(np.abs(out).max()):.3g} in {ts.name}, beyond the "
                                  f"{limit:g} this model can produce (export.output_limit); the model file is "
                                  f"damaged or the runtime failed")
        return outputs

    def __repr__(self):
        return f"Runtime({self.spec.name}, {self.format}, {self.path})"


def output_limits(spec, manifest: dict | None) -> dict[str, float]:
    """Per output, the largest magnitude this model can produce (export.output_limit): from the spec's bounds
    where the output has them, else the manifest's ``max_abs`` (from the golden vectors), else infinity."""
    declared = {t["name"]: t.get("max_abs") for t in (manifest or {}).get("outputs", [])}
    limits = {}
    for ts in spec.outputs:
        bounds = ts.judged.bounds
        limits[ts.name] = (bounded_limit(bounds) if bounds is not None
                           else float(declared.get(ts.name) or np.inf))
    return limits


def _contract(tensors) -> list:
    return [(t["name"], list(t["shape"]), t["dtype"]) for t in tensors]


def load_artifact(export_dir, fmt: str, spec, trusted: bool = False, public_key=None,
                  manifest_bytes: bytes | None = None) -> Runtime:
    """Open ``fmt`` from ``export_dir`` after checking the manifest (schema, contract) and the file (sha256).

    Code-carrying formats (``FORMATS[fmt].carries_code``: torch.export, AOTInductor) load only with
    ``trusted=True`` and a manifest signature that verifies against ``public_key`` (default: this
    machine's export key, so only exports signed here; embodied_lib.export.trust): a sha256 beside a file
    proves nothing about who wrote both. ``manifest_bytes``: manifest.json as the caller already read it (read
    once: the bytes whose signature is checked are the bytes parsed); the model file is read once too, and the
    runtime gets those bytes, not the path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {list(FORMATS)}")
    export_dir = Path(export_dir)
    if manifest_bytes is None:
        manifest_bytes = read_manifest_bytes(export_dir)   # one read: the bytes verified are the bytes parsed
    manifest = parse_manifest(manifest_bytes, export_dir / MANIFEST_NAME)
    if manifest["model"] != spec.name:
        raise ArtifactError(f"{export_dir} holds {manifest['model']!r}, not {spec.name!r}")
    for side, declared, ours in (("inputs", manifest["inputs"], spec.inputs), ("outputs", manifest["outputs"], spec.outputs)):
        if _contract(declared) != _contract([t.to_json() for t in ours]):
            raise ArtifactError(f"{export_dir}: the manifest's {side} {_contract(declared)} differ from the "
                                f"{spec.name} contract {_contract([t.to_json() for t in ours])}; {REEXPORT_HINT}")
    entry = artifact_entry(manifest, fmt)
    refused = refusal(entry)
    if refused:
        raise ArtifactError(f"{export_dir}: {refused}")
    if FORMATS[fmt].carries_code:
        if not trusted:
            raise ArtifactError(f"{fmt} files carry code that runs when loaded; load {entry['file']} only from a "
                                f"source you trust: trusted=True with the public key that signed the manifest "
                                f"(or use a data format: {', '.join(n for n, f in FORMATS.items() if not f.carries_code)})")
        verify_manifest(export_dir, public_key or local_public_key(), manifest_bytes)
    path = export_dir / entry["file"]
    if path.resolve().parent != export_dir.resolve():   # a link out of the folder is not the folder's file
        raise ArtifactError(f"{path} resolves outside {export_dir}; a manifest may only name files in its folder")
    file = read_verified(path, entry["sha256"], entry["bytes"])   # the bytes hashed are the bytes loaded
    if entry.get("max_batch"):   # a program made for smaller batches (executorch_batch1): inputs are checked for it
        spec = dataclasses.replace(spec, max_batch=min(spec.max_batch, entry["max_batch"]))
    return Runtime(spec, fmt, path, FORMATS[fmt].load(file, spec), manifest)


def eager_runtime(spec, model) -> Runtime:
    model.eval()

    def run(*inputs):
        with torch.no_grad():
            return model(*inputs)
    return Runtime(spec, "eager", Path("<in memory>"), run)


def run_batched(runtime: Runtime, inputs, batch_size: int = 256) -> tuple[np.ndarray, ...]:
    return outputs_in_batches(runtime, inputs, min(batch_size, runtime.spec.max_batch))


def parity_report(export_dir, reference: Runtime, n: int = 1000, seed: int = PARITY_SEED, formats=None,
                  public_key=None) -> list[dict]:
    """Every artifact vs ``reference`` on ``n`` sampled inputs, judged as the spec says (compare_outputs): a check
    again of an export folder. A file whose export-time verdict failed is never loaded (load_artifact refuses it):
    its row is that verdict, with ``refused`` saying why.

    Parity checks exports you made: code-carrying formats load trusted, verified against ``public_key``
    (default: this machine's export key, which export_all signs with)."""
    manifest = read_manifest(export_dir)
    spec = reference.spec
    inputs = spec.sample_inputs(n, seed)
    expected = run_batched(reference, inputs)
    rows = []
    for entry in manifest["artifacts"]:
        fmt = entry["format"]
        if formats and fmt not in formats:
            continue
        if refusal(entry):
            rows.append(verdict_row(entry))
            continue
        runtime = load_artifact(export_dir, fmt, spec, trusted=True, public_key=public_key)
        got = run_batched(runtime, inputs)
        rows.append({"format": fmt, "file": entry["file"], "inputs": n,
                     **compare_outputs(spec, expected, got, parity_rule(spec, fmt))})
    return rows


__all__ = ["ArtifactError", "OutputError", "Runtime", "compare_outputs", "decisions", "eager_runtime", "load_artifact",
           "parity_report", "run_batched"]
