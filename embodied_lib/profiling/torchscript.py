"""TorchScript, the retired path: a traced baseline for the tables, and why torch.export replaced it.

``trace(spec, model, path)`` writes ``torch.jit.trace`` of a model (what the design document's migration
table starts from) so its latency and memory can stand beside the formats we ship. It is never an export
format here: a TorchScript file carries code, and tracing can be silently wrong, as ``branch_demo`` shows
with code that runs.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch


@contextlib.contextmanager
def _quiet():
    """torch.jit.trace warns that it is deprecated on every call; the demo records what it needs."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def trace(spec, model, path) -> Path:
    """torch.jit.trace at batch 2 (as the exports), saved with torch.jit.save."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model.eval(), spec.example_inputs(batch=2), check_trace=False, strict=False)
    torch.jit.save(traced, str(path))
    return path


class SignGate(torch.nn.Module):
    """A data-dependent branch: double a positive reading, negate any other (a stand-in for
    "if the gripper is closed, ..." logic inside a policy)."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return -x


class SignGateCond(torch.nn.Module):
    """The same rule written for export: both branches stay in the graph (torch.cond)."""

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, (x,))


def branch_demo() -> dict:
    """Trace on a positive input, then feed a negative one: the trace returns the wrong branch without an
    error. torch.export refuses the same module and names the data-dependent condition; written with
    torch.cond, it exports and is right on both inputs."""
    positive, negative = torch.ones(1, 3), -torch.ones(1, 3)
    model = SignGate()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("always")
        traced = torch.jit.trace(model, positive)
    tracer_warnings = sorted({str(w.message).split(".")[0] for w in caught if w.category.__name__ == "TracerWarning"})
    with _quiet():
        try:
            torch.export.export(model, (positive,))
            export_error = None
        except Exception as exc:  # torch raises a guard error type that moves between releases
            export_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        exported = torch.export.export(SignGateCond(), (positive,)).module()
    return {
        "eager_on_negative": model(negative).tolist(),
        "traced_on_negative": traced(negative).tolist(),
        "trace_is_silently_wrong": not torch.equal(traced(negative), model(negative)),
        "tracer_warnings": tracer_warnings,
        "export_refuses": export_error is not None,
        "export_error": export_error,
        "cond_export_on_negative": exported(negative).tolist(),
        "cond_export_is_right": torch.equal(exported(negative), model(negative))
        and torch.equal(exported(positive), model(positive)),
    }
