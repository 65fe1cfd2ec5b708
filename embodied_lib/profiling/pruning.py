"""Pruning, measured: what zeroed weights and what narrower layers do to file size, latency and the task.

    python -m embodied_lib.profiling --profile full     # also writes runs/bench/profiling/pruning.json, and adds
                                                        # its verdicts to summary.json

The design document's "remove unused model parameters" can mean two things, and this module measures both:

- **magnitude** (unstructured): the smallest 50 % / 90 % of each layer's weights set to zero
  (``torch.nn.utils.prune.l1_unstructured``). Every tensor keeps its shape, so the ``.pte`` and ``.onnx`` keep their
  size, and XNNPACK and ONNX Runtime run the same dense kernels on the zeros.
- **structured**: whole neurons and channels removed along torch-pruning's dependency graph (DepGraph, L2 magnitude
  of each coupled group; ``kept_layers`` says which layers keep their width), then a short fine-tune on the model's
  own data. What is left is a smaller dense network with the same inputs and outputs.

Each variant is exported like any model, into a folder of its own: the narrower widths are in the manifest's
``spec_args`` and layer graph, so every loader, native runner and twin rebuilds it as it rebuilds the original, and
parity is judged against the variant's own eager model under the format's own rule. The task metric (held-out maps
or scenes, ``embodied_lib.profiling.accuracy``) is compared with the unpruned model's, on the same episodes.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embodied_lib.config import DATA_DIR, PRUNING_SEED, get_config, seed_everything
from embodied_lib.export import export_all
from embodied_lib.export.manifest import read_manifest
from embodied_lib.export.workflow import parity_rows
from embodied_lib.native import native_parity, p50_in_turns
from embodied_lib.profiling.accuracy import HEADLINE, task_metrics
from embodied_lib.progress import progress_bar
from embodied_lib.registry import get_spec, load_checkpoint, load_runtime
from embodied_lib.runtime.latency import golden_batch1, time_calls, time_calls_in_turns
from embodied_lib.spec import load_state_dict_strict

ALLOWED_DROP = 2.0           # points of the task metric a pruned file may lose and still be called usable
CLAIM = "Pruning: remove unused parameters"
TARGET_SPEEDUP = 1.5         # C++ ExecuTorch batch-1 p50, unpruned over pruned
MAGNITUDE_FORMATS = ("executorch", "onnx")   # enough to show that zeros change neither size nor latency
PARITY_INPUTS = 200          # sampled inputs of each variant's parity check (export_all)
NATIVE_PARITY_ITERATIONS = 20


def prunable(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def kept_layers(name: str, model: nn.Module) -> list[nn.Module]:
    """Layers whose output width structured pruning leaves alone. Navigation: the action layer (the interface).
    Manipulation: every linear layer and the keypoint layer too, so only the convolution channels narrow. Measured:
    the convolutions hold 99 % of its MACs, and its other 0.33 ms of a 0.54 ms batch-1 call is the 4x average pool
    of the raw 400 x 400 frame, which no pruning touches; narrowing the small MLPs costs task success and buys
    nothing."""
    if name == "navigation":
        return [model.fc4]
    if name == "manipulation":
        return [m for m in model.modules() if isinstance(m, nn.Linear)] + [model.encoder[-1].keypoints]
    raise ValueError(f"{name} is not pruned here (navigation and manipulation are)")


def zero_fraction(model: nn.Module) -> float:
    weights = [m.weight for m in prunable(model)]
    return float(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))


def magnitude_pruned(model: nn.Module, amount: float) -> nn.Module:
    """A copy with the smallest ``amount`` of every Linear / Conv2d weight (by |w|, per layer) set to zero."""
    from torch.nn.utils import prune

    pruned = copy.deepcopy(model).eval()
    for module in prunable(pruned):
        prune.l1_unstructured(module, "weight", amount)
        prune.remove(module, "weight")   # the zeros become the weight itself; no mask left behind
    return pruned


def count_macs_params(spec, model: nn.Module) -> tuple[int, int]:
    """Multiply-accumulates of one batch-1 call and the parameter count (torch-pruning's counter)."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, spec.example_inputs(batch=1))
    return int(macs), int(params)


def structured_pruned(spec, model: nn.Module, ratio: float):
    """``(spec, model)`` of a narrower network: ``ratio`` of the neurons / channels of every hidden layer removed,
    chosen by the L2 norm of each coupled group (torch-pruning's DepGraph keeps every layer that reads a removed
    channel consistent). The model is rebuilt from the new spec and loaded strictly, so what is exported is exactly
    what the manifest's spec_args describe."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    pruner = tp.pruner.MagnitudePruner(pruned, spec.example_inputs(batch=1),
                                       importance=tp.importance.GroupMagnitudeImportance(p=2),
                                       pruning_ratio=ratio, ignored_layers=kept_layers(spec.name, pruned),
                                       round_to=8)   # widths in multiples of 8: what SIMD kernels tile by
    pruner.step()
    narrow = get_spec(spec.name, **{**spec.spec_args, **pruned.widths()})
    rebuilt = narrow.build_model()
    load_state_dict_strict(rebuilt, pruned.state_dict(), source=f"{spec.name} pruned by {ratio:.0%}")
    return narrow, rebuilt.eval()


def distillation_states(spec, n: int) -> torch.Tensor:
    """States an agent sees (fresh maps plus a few moves: the spec's sampler, under PRUNING_SEED)."""
    (states,) = spec.sample_inputs(n, PRUNING_SEED)
    return torch.from_numpy(states)


def distil_navigation(model: nn.Module, teacher: nn.Module, states: torch.Tensor, cfg: dict,
                      progress: bool = True) -> dict:
    """Fine-tune a pruned Q-network towards the unpruned one's Q-values on ``states`` (distillation_states): policy
    distillation, the usual way to recover a pruned DQN without new episodes."""
    seed_everything(PRUNING_SEED)
    with torch.no_grad():
        targets = teacher.eval()(states)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg["distil_lr"])
    generator = torch.Generator().manual_seed(PRUNING_SEED)
    losses = []
    for _ in progress_bar(range(cfg["distil_steps"]), desc="distilling the pruned Q-network", unit="steps",
                          disable=not progress, leave=False):
        idx = torch.randint(len(states), (cfg["distil_batch"],), generator=generator)
        loss = F.mse_loss(model(states[idx]), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return {"method": "distillation of the unpruned Q-values", "states": len(states), "steps": cfg["distil_steps"],
            "first_loss": losses[0], "last_loss": float(np.mean(losses[-50:]))}


def fine_tune_manipulation(spec, model: nn.Module, cfg: dict, data_dir: Path, progress: bool = True):
    """Behaviour cloning again, from the pruned weights, on the demonstrations (and DAgger corrections) the model
    was trained on, for ``cfg["fine_tune_epochs"]`` epochs at the training profile's settings."""
    from embodied_lib.manipulation.train import train_bc

    train_cfg = get_config("manipulation", cfg["profile"])
    tuned, metrics = train_bc(train_cfg, data_dir, progress=progress, init_state=model.state_dict(),
                              epochs=cfg["fine_tune_epochs"], spec=spec, desc="fine-tuning the pruned network")
    return tuned.eval(), {"method": "behaviour cloning from the pruned weights", "frames": metrics["frames"],
                          "epochs": cfg["fine_tune_epochs"], "offline_val_mse": metrics["offline_val_mse"]}


def cpp_executorch_p50(folders: dict, iterations: int, rounds: int) -> dict:
    """The C++ ExecuTorch runner's batch-1 p50 of each folder's .pte, ``rounds`` processes per folder taken in turns
    (native.p50_in_turns): every variant gets the same turns."""
    return p50_in_turns({label: ("executorch", folder, "executorch") for label, folder in folders.items()},
                        rounds, iterations)


def measure(folder: Path, spec, model: nn.Module, iterations: int, profile: str | None, native: bool) -> dict:
    """Size, MACs, parameters, Python ExecuTorch batch-1 latency and the task metric of one export folder, plus, with
    ``native``, every native runner's parity on its golden vectors (the C++ latency is timed for all variants
    together, in turns)."""
    manifest = read_manifest(folder)
    sizes = {a["format"]: a["bytes"] for a in manifest["artifacts"]}
    macs, params = count_macs_params(spec, model)
    inputs = golden_batch1(folder)
    runtime = load_runtime(folder, "executorch")
    with torch.no_grad():
        python = time_calls(lambda: runtime(*inputs), iterations)
    native = native_parity(folder, iterations=NATIVE_PARITY_ITERATIONS) if native else []
    metric_key, _ = HEADLINE[spec.name]
    metric = task_metrics(folder, "executorch", profile)
    return {"folder": str(folder), "parameters": params, "macs": macs, "zero_fraction": round(zero_fraction(model), 4),
            "pte_bytes": sizes.get("executorch"), "onnx_bytes": sizes.get("onnx"),
            "python_executorch_p50_ms": python["p50_ms"], "iterations": iterations,
            "metric": metric_key, "task": metric, "task_value": metric[metric_key],
            "native_parity": [{k: r[k] for k in ("runner", "language", "file", "max_abs_diff", "tolerance", "passed")}
                              for r in native]}


def prune_model(name: str, runs_dir: Path, out_dir: Path, cfg: dict, profile: str | None, formats=None,
                data_dir: Path = DATA_DIR, log=print, progress: bool = True) -> dict:
    """Every variant of one model (unpruned, magnitude at cfg["magnitude"], structured at cfg["structured"]), each
    exported under ``out_dir/<model>_<variant>`` and measured in this one run. The unpruned model is exported again
    beside them, the same way, so every row compares files made and timed alike."""
    spec, model = load_checkpoint(runs_dir / name)
    variants = {"unpruned": ("none", 0.0, spec, model, None)}   # label -> (kind, ratio, spec, model, fine-tune)
    states = distillation_states(spec, cfg["distil_states"]) if name == "navigation" else None
    for amount in cfg["magnitude"]:
        zeroed = magnitude_pruned(model, amount)
        variants[f"magnitude_{round(amount * 100)}"] = ("magnitude", amount, spec, zeroed, None)
    for ratio in cfg["structured"]:
        narrow_spec, narrow = structured_pruned(spec, model, ratio)
        if name == "navigation":
            tuning = distil_navigation(narrow, model, states, cfg, progress)
        else:
            narrow, tuning = fine_tune_manipulation(narrow_spec, narrow, {**cfg, "profile": profile},
                                                    data_dir / "manipulation", progress)
        variants[f"structured_{round(ratio * 100)}"] = ("structured", ratio, narrow_spec, narrow, tuning)
    rows, folders = {}, {}
    bar = progress_bar(variants.items(), desc=f"{name}: export and measure", unit="variants", disable=not progress)
    for label, (kind, ratio, vspec, vmodel, tuning) in bar:
        folder = folders[label] = out_dir / f"{name}_{label}"
        chosen = list(formats or vspec.formats) if kind == "structured" else list(MAGNITUDE_FORMATS)
        # every file against the variant's own eager model, checked by the export (its manifest records the verdicts)
        manifest = export_all(vspec, vmodel, folder, formats=chosen, log=lambda *_: None,
                              parity_inputs=min(vspec.parity_inputs, PARITY_INPUTS))
        row = {"kind": kind, "ratio": ratio, "fine_tune": tuning}
        if kind == "structured":
            parity = parity_rows(manifest)
            (folder / "parity.json").write_text(json.dumps(parity, indent=2) + "\n")
            row.update(widths=vmodel.widths(), parity=[{k: r[k] for k in ("format", "max_abs_diff", "passed")}
                                                        for r in parity])
        rows[label] = {**row, **measure(folder, vspec, vmodel, cfg["iterations"], profile, kind == "structured")}
    for label, timing in cpp_executorch_p50(folders, cfg["iterations"], cfg["latency_rounds"]).items():
        rows[label]["cpp_executorch_p50_ms"] = timing["p50_ms"]
        rows[label]["cpp_executorch_round_p50s_ms"] = timing["round_p50s_ms"]
    base = rows["unpruned"]
    for label, row in rows.items():
        row["speedup_cpp_x"] = round(base["cpp_executorch_p50_ms"] / row["cpp_executorch_p50_ms"], 3)
        row["speedup_python_x"] = round(base["python_executorch_p50_ms"] / row["python_executorch_p50_ms"], 3)
        row["pte_size_x"] = round(row["pte_bytes"] / base["pte_bytes"], 4)
        row["delta_points"] = round(100 * (row["task_value"] - base["task_value"]), 2)
        row["usable"] = row["delta_points"] >= -ALLOWED_DROP
        log(f"{name} {label:14s} {row['metric']} {row['task_value']:.3f} ({row['delta_points']:+.1f} points), "
            f"C++ ExecuTorch p50 {row['cpp_executorch_p50_ms']:.4f} ms ({row['speedup_cpp_x']:.2f}x), "
            f".pte {row['pte_bytes'] / 2**10:,.0f} KiB")
    return {"model": name, "metric": base["metric"], "allowed_drop_points": ALLOWED_DROP, "variants": rows,
            "speed_floor": speed_floor(spec, model, cfg["iterations"])}


class _InputStage(nn.Module):
    """The model's input stage alone, with the model's inputs: what no pruning can remove."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        return self.model.input_stage(inputs[0]).mean(dim=(1, 2, 3)).unsqueeze(1) + inputs[-1][:, :1]


class _Nothing(nn.Module):
    def forward(self, *inputs):
        return inputs[-1][:, :1] + 1.0


def speed_floor(spec, model: nn.Module, iterations: int) -> dict | None:
    """For a model with an ``input_stage`` (manipulation: the 4x average pool and normalisation of the raw 400 x 400
    frame), the batch-1 time of that stage against the whole model's, each lowered to an XNNPACK program and timed in
    one process, call by call in turn, less a program that does nothing (the call overhead): the largest speed-up
    pruning every other layer could buy. None for a model without one."""
    if not hasattr(model, "input_stage"):
        return None
    import tempfile

    from executorch.runtime import Runtime

    from embodied_lib.export import executorch_pte

    inputs = spec.example_inputs(batch=1)
    runtime, programs = Runtime.get(), {}
    with tempfile.TemporaryDirectory() as folder:
        for label, module in (("model", model), ("input_stage", _InputStage(model)), ("call", _Nothing())):
            path = Path(folder) / f"{label}.pte"
            executorch_pte.save(spec, module, torch.export.export(module.eval(), inputs), path)
            programs[label] = runtime.load_program(path)
        methods = {label: program.load_method("forward") for label, program in programs.items()}
        timed = time_calls_in_turns({label: (lambda m=m: m.execute(list(inputs))) for label, m in methods.items()},
                                    iterations)
    times = {label: t["p50_ms"] for label, t in timed.items()}
    model_ms, stage_ms = times["model"] - times["call"], times["input_stage"] - times["call"]
    return {"model_ms": round(model_ms, 4), "input_stage_ms": round(stage_ms, 4),
            "input_stage_share": round(stage_ms / model_ms, 3), "max_speedup_x": round(model_ms / stage_ms, 2),
            "measured": "Python ExecuTorch p50, less an empty program's"}


def verdict(result: dict) -> dict:
    """The design document's "remove unused parameters", from one model's variants."""
    rows = result["variants"]
    magnitude = {k: r for k, r in rows.items() if r["kind"] == "magnitude"}
    structured = {k: r for k, r in rows.items() if r["kind"] == "structured"}
    good = {k: r for k, r in structured.items() if r["usable"] and r["speedup_cpp_x"] >= TARGET_SPEEDUP}
    numbers = {k: {"pte_size_x": r["pte_size_x"], "speedup_cpp_x": r["speedup_cpp_x"],
                   "delta_points": r["delta_points"]} for k, r in rows.items() if k != "unpruned"}
    if good:
        best = max(good, key=lambda k: good[k]["speedup_cpp_x"])
        text = (f"holds only when structured: {best} is {good[best]['speedup_cpp_x']:.2f}x faster in C++ ExecuTorch, "
                f"{good[best]['pte_size_x']:.2f}x the .pte, {good[best]['delta_points']:+.1f} points; zeroed weights "
                f"change neither size nor speed")
    else:
        text = ("does not hold here: no structured ratio is both >= 1.5x faster and within 2 points; zeroed weights "
                "change neither size nor speed")
        usable = {k: r for k, r in structured.items() if r["usable"]}
        if usable:
            best = max(usable, key=lambda k: usable[k]["speedup_cpp_x"])
            text += (f"; the fastest usable one, {best}, is {usable[best]['speedup_cpp_x']:.2f}x "
                     f"({usable[best]['delta_points']:+.1f} points)")
        floor = result.get("speed_floor")
        if floor:
            text += (f"; {floor['input_stage_share']:.0%} of a call is the input stage no pruning removes, so "
                     f"pruning every other layer could buy at most {floor['max_speedup_x']:.2f}x")
    return {"claim": CLAIM, "model": result["model"], "variants": numbers, "speed_floor": result.get("speed_floor"),
            "magnitude_changes_size": any(abs(r["pte_size_x"] - 1) > 0.01 for r in magnitude.values()),
            "verdict": text}


def run(runs_dir, out_dir, profile: str | None = None, models=None, formats=None, log=print,
        progress: bool = True) -> dict:
    """Prune each trained model of ``models`` (default: the profile's) from its checkpoint in ``runs_dir``, its
    structured variants exported to ``formats`` (default: the profile's; None there: every format of the model); write
    ``out_dir/pruning.json``; return it with a verdict per model."""
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    cfg = get_config("pruning", profile)
    started = time.time()
    results = {}
    for name in models or cfg["models"]:
        model_started = time.time()
        results[name] = prune_model(name, runs_dir, out_dir / "pruned", cfg, profile, formats or cfg["formats"],
                                    log=log, progress=progress)
        results[name]["seconds"] = round(time.time() - model_started, 1)
    out = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "profile": profile, "settings": cfg,
           "seconds": round(time.time() - started, 1), "models": results,
           "claims": [verdict(r) for r in results.values()]}
    (out_dir / "pruning.json").write_text(json.dumps(out, indent=2) + "\n")
    summary_file = out_dir / "summary.json"
    if summary_file.is_file():   # the profiling bench's verdicts and these in one list, from the CLI and notebook 08
        summary = json.loads(summary_file.read_text())
        summary["claims"] = [c for c in summary["claims"] if c["claim"] != CLAIM] + out["claims"]
        summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return out
