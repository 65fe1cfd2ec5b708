"""Parity: how an exported file is judged against eager PyTorch, and the verdict every loader reads.

``export_all`` runs each file it writes on the spec's parity inputs before it writes the manifest, and records the
result in the file's manifest entry (``parity``: the rule, the measured ``max_abs_diff`` and ``decision_agreement``,
and ``passed``). A file whose verdict is not ``passed`` is never served: Python (``runtime.runtimes.load_artifact``),
the C++ runners and controller (``runner_common.hpp: verify_model_file``) and the Rust runners
(``runner-common: verify_model_file``) refuse it with the reason below. A lossy (INT8) file that fails is kept,
so the failure can be looked at, and the workbook goes on without it; a float file that fails means the model or
the exporter is wrong, and the export stops (``export.workflow``).
"""
from __future__ import annotations

import numpy as np

from embodied_lib.export.artifacts import REEXPORT_HINT


def decisions(judged, values: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each decision an output carries, per row: ``name -> (decision, margin)``.

    The margin says how far the reference is from flipping that decision (top-1 minus top-2 score for
    an argmax, distance to the threshold for a binary decision); a row whose margin is within the
    tolerance is a near-tie that rounding alone may flip, and parity does not count it.
    """
    out = {}
    values = values.reshape(-1, values.shape[-1])   # a per-token output ([B, T, K]): every token is a row
    if judged.uses_argmax:
        top2 = np.sort(values, axis=1)[:, -2:]
        out["argmax"] = (values.argmax(axis=1), top2[:, 1] - top2[:, 0])
    for rule in judged.decisions:
        column = values[:, rule.index]
        out[rule.name] = (column > rule.above, np.abs(column - rule.above))
    return out


def compare_outputs(spec, expected, got, rule: dict | None = None) -> dict:
    """Max |diff| over every output, and the agreement of every decision the spec's outputs carry.

    ``rule`` (embodied_lib.export.parity_rule; default: the spec's float rule) gives the value tolerance,
    the tie margin (a decision whose reference margin is within it is a near-tie that rounding alone may
    flip, and is not counted) and the share of counted decisions that must agree (1.0 for float formats)."""
    rule = rule or {"tolerance": spec.tolerance, "tie_margin": spec.tolerance, "agreement": 1.0}
    max_diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected))
    agreement, ties = {}, 0
    for ts, e, g in zip(spec.outputs, expected, got):
        want, have = decisions(ts.judged, e), decisions(ts.judged, g)
        for name, (reference, margin) in want.items():
            counted = margin > rule["tie_margin"]
            ties += int((~counted).sum())
            key = f"{ts.name}.{name}"
            agreement[key] = float(np.mean(have[name][0][counted] == reference[counted])) if counted.any() else 1.0
    passed = max_diff <= rule["tolerance"] and all(a >= rule["agreement"] for a in agreement.values())
    return {"max_abs_diff": max_diff, "decision_agreement": agreement, "near_ties": ties,
            "tolerance": rule["tolerance"], "required_agreement": rule["agreement"], "passed": passed}


def refusal(entry: dict) -> str | None:
    """Why the file of manifest ``entry`` must not be loaded (its parity verdict), or None when it may be."""
    verdict = entry.get("parity") or {}
    if verdict.get("passed") is True:
        return None
    if "passed" not in verdict:
        return (f"{entry.get('file')} has no parity verdict in its manifest (an export from before verdicts were "
                f"recorded, or an edited manifest); {REEXPORT_HINT}")
    agreement = ", ".join(f"{k} {v:.3f}" for k, v in (verdict.get("decision_agreement") or {}).items())
    diff = verdict.get("max_abs_diff")   # None: the file's outputs held NaN or Inf
    return (f"{entry.get('file')} failed its parity check at export: max |diff| "
            f"{'NaN/Inf' if diff is None else f'{diff:.4g}'} "
            f"against a tolerance of {verdict.get('tolerance')}, decision agreement {agreement or 'n/a'} against "
            f"{verdict.get('agreement')} required, on {verdict.get('inputs')} inputs; the file is kept for inspection "
            f"and never served")


def verdict_row(entry: dict) -> dict:
    """A file's row of a parity table, from the verdict its manifest entry records (and why it is refused, if so)."""
    verdict = entry.get("parity") or {}
    refused = refusal(entry)
    return {"format": entry["format"], "file": entry["file"], "inputs": verdict.get("inputs"),
            "max_abs_diff": verdict.get("max_abs_diff"), "decision_agreement": verdict.get("decision_agreement"),
            "near_ties": verdict.get("near_ties"), "tolerance": verdict.get("tolerance"),
            "required_agreement": verdict.get("agreement"), "passed": refused is None,
            **({"refused": refused} if refused else {})}


def served_formats(manifest: dict) -> list[str]:
    """The formats of an export that loaders serve (their verdict passed), in manifest order: what a table of
    runtimes, a runner sweep or a benchmark iterates over, so a refused file is left out rather than stopping it."""
    return [entry["format"] for entry in manifest["artifacts"] if refusal(entry) is None]
