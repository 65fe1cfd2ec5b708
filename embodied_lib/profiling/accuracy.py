"""Task metrics of any exported format, through the same evaluation code as the trained float model.

Navigation: success rate and path ratio on the held-out maps; manipulation: closed-loop success on the
held-out scenes; the text pipeline: action accuracy, exact commands, parameter exact match, OOD and
out-of-range refusal on the test commands. The seeds are the evaluation's (config.EVAL_SEED_BASE, the
HRI corpus seed), never the calibration inputs INT8 was fitted on.
"""
from __future__ import annotations

from pathlib import Path

from embodied_lib.config import EVAL_SEED_BASE, get_config
from embodied_lib.export.manifest import read_manifest

# The headline number of each model, and the drop INT8 may cost (acceptance of the INT8 work, points).
HEADLINE = {"navigation": ("success_rate", 1.0), "manipulation": ("success_rate", 2.0),
            "command_pipeline": ("exact_command_rate", 0.5)}


def task_metrics(export_dir, fmt: str, profile: str | None = None) -> dict:
    """Evaluate ``fmt`` from ``export_dir`` on the model's own task (settings from the profile)."""
    from embodied_lib.registry import load_runtime, make_policy

    export_dir = Path(export_dir)
    model = read_manifest(export_dir)["model"]
    if model == "navigation":
        from embodied_lib.navigation.evaluate import evaluate_policy
        cfg = get_config("navigation", profile)
        policy = make_policy(load_runtime(export_dir, fmt, trusted=True))
        result = evaluate_policy(policy, cfg["grid_size"], cfg["obstacle_fraction"], cfg["eval_maps"])
        return {k: result[k] for k in ("episodes", "success_rate", "path_ratio")}
    if model == "manipulation":
        from embodied_lib.manipulation.evaluate import rollout
        cfg = get_config("manipulation", profile)
        policy = make_policy(load_runtime(export_dir, fmt, trusted=True))
        result = rollout(policy, range(EVAL_SEED_BASE, EVAL_SEED_BASE + cfg["eval_episodes"]))
        return {k: result[k] for k in ("episodes", "success_rate")}
    if model == "command_pipeline":
        from embodied_lib.hri.commands import make_corpus
        from embodied_lib.hri.interpreter import CommandInterpreter
        from embodied_lib.hri.train import evaluate_commands
        cfg = get_config("hri", profile)
        corpus = make_corpus(cfg["n_train"], cfg["n_val"], cfg["n_test"], cfg["n_ood"], seed=cfg["seed"])
        interpreter = CommandInterpreter.from_exports(export_dir, fmt, trusted=True)
        result = evaluate_commands(interpreter, corpus["test"], corpus["ood_test"])
        keep = ("test_commands", "test_accuracy", "exact_command_rate", "parameter_exact", "test_accept_rate",
                "ood_reject_rate", "out_of_range_refuse_rate", "incomplete_refuse_rate")
        return {k: result[k] for k in keep}
    raise ValueError(f"{model} has no task of its own (the HRI heads are judged inside command_pipeline)")


def accuracy_table(export_dir, formats, profile: str | None = None, log=print) -> dict:
    """``task_metrics`` for each format, and each INT8 format's change of the headline metric (points)
    against its float twin (executorch_int8 vs executorch, onnx_int8 vs onnx)."""
    model = read_manifest(export_dir)["model"]
    key, allowed_drop = HEADLINE[model]
    rows = {}
    for fmt in formats:
        rows[fmt] = task_metrics(export_dir, fmt, profile)
        log(f"  {model} {fmt:16s} {key} {rows[fmt][key]:.4f}")
    deltas = {}
    for fmt in formats:
        twin = fmt.removesuffix("_int8")
        if fmt.endswith("_int8") and twin in rows:
            points = 100 * (rows[fmt][key] - rows[twin][key])
            deltas[fmt] = {"vs": twin, "metric": key, "points": round(points, 2), "allowed_drop": allowed_drop,
                           "within": points >= -allowed_drop}
    return {"model": model, "metric": key, "formats": rows, "int8_delta": deltas}
