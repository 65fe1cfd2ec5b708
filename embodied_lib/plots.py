"""Figures the notebooks show: maps, observations, learning curves, rollouts, latency, tables.

Every figure ends in ``finish(fig, caption)``: it refuses a figure with an unlabelled axis and writes the
caption under it, so what a plot shows is said on the plot (tests/test_plots.py calls every function here).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

import torch

from embodied_lib.manipulation.model import CONV_BLOCKS, POOL, frames_to_tensor
from embodied_lib.navigation.env import CELL_COLOURS, CHANNELS, GridWorldEnv, render_grid


class UnlabelledFigure(ValueError):
    """A figure with an axis that says nothing about what it measures."""


def finish(fig, caption: str):
    """Check every axis is labelled, put ``caption`` under the figure, lay it out; returns ``fig``."""
    if not caption or not caption.strip():
        raise UnlabelledFigure("every figure needs a caption: one sentence saying what to look at")
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        missing = [name for name, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if not label.strip()]
        if missing:
            raise UnlabelledFigure(f"axes {ax.get_title() or ax.get_label()!r} has no {' or '.join(missing)}-axis label")
    fig.tight_layout()
    fig.text(0.5, -0.03, caption, ha="center", va="top", wrap=True, fontsize=9, style="italic")
    fig.embodied_caption = caption
    return fig


def grid_legend(fig, ncol: int = 5):
    """Which colour is what in a rendered grid map."""
    fig.legend(handles=[Patch(facecolor=np.array(c) / 255, edgecolor="grey", label=name)
                        for name, c in CELL_COLOURS.items()],
               loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=ncol, fontsize=8, frameon=False)
    fig.subplots_adjust(top=0.8)


def _image_axes(ax, what: str = "pixel"):
    """Label an image panel's axes (kept visible: an image's axes are its coordinates)."""
    ax.set(xlabel=f"x ({what})" if what == "pixel" else "column", ylabel=f"y ({what})" if what == "pixel" else "row")
    ax.tick_params(labelsize=7)


def _cells(ax, grid_size: int, cell_pixels: int = 24):
    ticks = (np.arange(grid_size) + 0.5) * cell_pixels
    ax.set_xticks(ticks, range(grid_size))
    ax.set_yticks(ticks, range(grid_size))
    _image_axes(ax, "cell")


def show_maps(seeds, grid_size: int = 8, obstacle_fraction: float = 0.15, caption: str | None = None):
    """One rendered map per seed: red robot, green goal, dark obstacles."""
    fig, axes = plt.subplots(1, len(seeds), figsize=(3 * len(seeds), 3.6))
    for ax, seed in zip(np.atleast_1d(axes), seeds):
        env = GridWorldEnv(grid_size, obstacle_fraction, render_mode="rgb_array")
        _, info = env.reset(seed=seed)
        ax.imshow(env.render())
        ax.set_title(f"map {seed}: shortest path {info['shortest_path']}", fontsize=9)
        _cells(ax, grid_size)
    finish(fig, caption or f"{len(seeds)} held-out maps: each seed is one map, solvable by construction (BFS), "
                           "robot and goal placed at random.")
    grid_legend(fig)
    return fig


def show_observation(obs: np.ndarray, grid_size: int = 8, caption: str | None = None):
    """The four robot-centred channels of one observation vector."""
    grid = obs.reshape(len(CHANNELS), grid_size, grid_size)
    fig, axes = plt.subplots(1, len(CHANNELS), figsize=(3 * len(CHANNELS), 3.4))
    offsets = np.arange(grid_size) - grid_size // 2
    for ax, name, channel in zip(axes, CHANNELS, grid):
        ax.imshow(channel, cmap="Greys", vmin=0, vmax=1)
        ax.set_title(f"channel '{name}'")
        ax.set_xticks(range(grid_size), offsets, fontsize=7)
        ax.set_yticks(range(grid_size), offsets, fontsize=7)
        ax.set(xlabel="column offset from robot", ylabel="row offset from robot")
    fig.suptitle("what the network sees: a window centred on the robot (black = 1)")
    return finish(fig, caption or "The robot is always at offset (0, 0). In 'obstacle', the solid black band is "
                               "the world's edge: cells outside the map count as blocked, so the robot can see a wall.")


def _smooth(values, window: int):
    values = np.asarray(values, dtype=float)
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_learning_curves(metrics: dict, caption: str | None = None):
    h = metrics["history"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
    window = max(1, min(100, len(h["episode_return"]) // 10))
    x = h["episode_step"][window - 1:] if len(h["episode_return"]) >= window else h["episode_step"]
    axes[0].plot(x, _smooth(h["episode_return"], window))
    axes[0].set(title=f"episode return (mean of {window})", xlabel="env step", ylabel="return per episode")
    axes[1].plot(h["step"], h["loss"], alpha=0.6)
    axes[1].set(title="Huber TD loss", xlabel="env step", ylabel="loss", yscale="log")
    axes[2].plot(h["validation_step"], h["validation_success"], marker="o", label="validation success")
    axes[2].axhline(metrics["random_policy"]["success_rate"], color="grey", ls="--", label="random policy")
    axes[2].set(title="greedy success on validation maps", xlabel="env step", ylabel="success rate", ylim=(0, 1.02))
    axes[2].legend(loc="lower right")
    return finish(fig, caption or "Return rises as exploration (epsilon) decays; the loss is noisy by nature in "
                                  "DQN; the checkpoint kept is the one with the best validation success (right).")


def rollout_frames(policy, seed: int, grid_size: int = 8, obstacle_fraction: float = 0.15):
    """Run one episode of ``policy`` on map ``seed``: the rendered grid after every step, and a title each."""
    env = GridWorldEnv(grid_size, obstacle_fraction, render_mode="rgb_array")
    obs, info = env.reset(seed=seed)
    policy.reset()
    frames, titles = [env.render()], [f"map {seed}, step 0 (shortest path {info['shortest_path']})"]
    terminated = truncated = False
    while not (terminated or truncated):
        decision = policy.act(obs)
        obs, _, terminated, truncated, info = env.step(decision.action)
        frames.append(env.render())
        titles.append(f"map {seed}, step {info['steps']}: action {decision.action}"
                      + (" - goal reached" if terminated else " - out of steps" if truncated else ""))
    return frames, titles


def plot_rollout(policy, seed: int, grid_size: int = 8, obstacle_fraction: float = 0.15, caption: str | None = None):
    """Start, path taken by ``policy`` (embodied_lib.policy.Policy), and end state of one episode."""
    env = GridWorldEnv(grid_size, obstacle_fraction, render_mode="rgb_array")
    obs, info = env.reset(seed=seed)
    policy.reset()
    start = env.render()
    path = [env.agent]
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(policy.act(obs).action)
        path.append(env.agent)
    end = render_grid(env.agent, env.goal, env.obstacles, env.visited)
    fig, axes = plt.subplots(1, 2, figsize=(7, 4.2))
    axes[0].imshow(start)
    axes[0].set_title(f"map {seed}: start")
    axes[1].imshow(end)
    cell = start.shape[0] / grid_size
    rows, cols = zip(*path)
    axes[1].plot((np.array(cols) + 0.5) * cell, (np.array(rows) + 0.5) * cell, "r-", lw=2)
    outcome = "reached goal" if terminated else "did not reach goal"
    axes[1].set_title(f"{outcome}: {info['steps']} steps (shortest {info['shortest_path']})", fontsize=9)
    for ax in axes:
        _cells(ax, grid_size)
    finish(fig, caption or "The red line is the path the greedy policy took; light blue cells are the ones it visited.")
    grid_legend(fig, ncol=3)
    return fig


def markdown_table(rows: list[dict], columns=None, floatfmt: str = ".3g") -> str:
    """A Markdown table of ``rows`` (list of dicts) for IPython.display.Markdown. A ``|`` inside a cell or a
    header ("max |diff|") is escaped and a line break becomes ``<br>``: either would otherwise end the table."""
    columns = columns or list(rows[0])

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")

    def fmt(v):
        return cell(format(v, floatfmt) if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(cell(str(c)) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot_hri_training(metrics: dict, caption: str | None = None):
    """Loss per optimiser step (action + parameters) and validation accuracy per epoch."""
    h = metrics["history"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    window = max(1, len(h["loss"]) // 30)
    steps = np.arange(1, len(h["loss"]) + 1)
    for key, label in (("loss", "total"), ("action_loss", "action type (cross-entropy)"),
                       ("param_loss", "parameters (weighted MSE)")):
        values = _smooth(h[key], window)
        axes[0].plot(steps[len(steps) - len(values):], values, label=label)
    axes[0].set(title=f"training loss ({metrics['route']})", xlabel="optimiser step", ylabel="loss", yscale="log")
    axes[0].legend()
    epochs = np.arange(1, len(h["val_accuracy"]) + 1)
    axes[1].plot(epochs, h["val_accuracy"], marker="o", color="tab:green")
    axes[1].set(title="action accuracy on validation (unseen phrasings)", xlabel="epoch", ylabel="accuracy",
                ylim=(0, 1.02), xticks=epochs)
    return finish(fig, caption or "Left: both heads' losses fall together (log scale). Right: accuracy on phrasings "
                                  "never seen in training, once per epoch.")


def plot_confusion(matrix, labels, caption: str | None = None):
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title="held-out test commands")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    fig.colorbar(im, ax=ax, label="commands")
    errors = int(matrix.sum() - np.trace(matrix))
    return finish(fig, caption or f"Action type only: {errors} of {int(matrix.sum())} test commands off the diagonal. "
                                  "It says nothing about the parameters (see the next figure).")


def plot_confidence(in_domain, out_of_domain, threshold: float, caption: str | None = None):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(in_domain, bins=bins, alpha=0.6, label="in-domain test commands")
    ax.hist(out_of_domain, bins=bins, alpha=0.6, label="out-of-domain test text")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.2f}")
    ax.set(xlabel="max action probability", ylabel="count", title="accept above the threshold, reject below")
    ax.legend()
    return finish(fig, caption or "The threshold judges the action type's confidence only; a confident command "
                                  "with a parameter the robot cannot carry out is refused by the range check.")


def plot_parameter_errors(pairs: dict, caption: str | None = None):
    """Read against true value for row, column, distance and angle on held-out commands, one row of panels per
    way of reading (hri.train.parameter_pairs: the slots, and the design's ParamExtractor)."""
    units = {"row": "row", "col": "column", "distance_cm": "distance (cm)", "angle_deg": "angle (degrees)"}
    readers = {"slots": "slots + text2num", "param_extractor": "ParamExtractor"}
    keys = [k for k in units if k in pairs["slots"]]
    fig, axes = plt.subplots(len(readers), len(keys), figsize=(3.6 * len(keys), 3.4 * len(readers)), squeeze=False)
    wrong_by = {}
    for row, (reader, label) in zip(axes, readers.items()):
        wrong_by[reader] = 0
        for ax, key in zip(row, keys):
            values = np.asarray(pairs[reader][key], dtype=float).reshape(-1, 2)
            wrong = np.abs(values[:, 1] - values[:, 0]) > 0.5
            wrong_by[reader] += int(wrong.sum())
            ax.scatter(values[~wrong, 0], values[~wrong, 1], s=14, alpha=0.5, label="right")
            ax.scatter(values[wrong, 0], values[wrong, 1], s=28, color="tab:red", marker="x",
                       label=f"wrong ({int(wrong.sum())})")
            if len(values):
                lo, hi = values.min(), values.max()
                ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
            unread = f", {pairs['unread'][key]} unread" if reader == "slots" and pairs["unread"].get(key) else ""
            ax.set(xlabel=f"true {units[key]}", ylabel=f"read {units[key]}",
                   title=f"{label}: {units[key]} ({len(values)}{unread})")
            ax.legend(fontsize=8, loc="upper left")
    return finish(fig, caption or "Each point is one held-out command; on the dashed line the value said was read "
                                  "(within 0.5). Misread (red): slots " f"{wrong_by['slots']}, ParamExtractor "
                                  f"{wrong_by['param_extractor']}. An unread slot is a refusal (ask again), not a guess.")


def show_frames(frames, titles=None, columns: int = 4, size: float = 3.0, caption: str | None = None):
    """A row (or grid) of camera frames."""
    frames = list(frames)
    columns = min(columns, max(1, len(frames)))
    rows = (len(frames) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(frames):
            fig.delaxes(ax)
            continue
        ax.imshow(frames[i])
        _image_axes(ax)
        if titles:
            ax.set_title(titles[i], fontsize=9)
    return finish(fig, caption or "Frames of the fixed 400 x 400 camera, the policy's only view of the cube.")


def plot_bc_curves(metrics: dict, caption: str | None = None):
    h = metrics["history"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(h["epoch"], h["train_loss"], marker="o", label="train (augmented)")
    ax.plot(h["epoch"], h["val_loss"], marker="o", label="validation episodes")
    rounds = h.get("round", [0] * len(h["epoch"]))
    for i in range(1, len(rounds)):
        if rounds[i] != rounds[i - 1]:   # a DAgger round starts: its corrected episodes join the data
            ax.axvline(h["epoch"][i] - 0.5, color="grey", linestyle=":", linewidth=1)
            ax.text(h["epoch"][i] - 0.4, 0.95, f"DAgger {rounds[i]}", transform=ax.get_xaxis_transform(),
                    fontsize=8, color="grey", va="top")
    ax.set(xlabel="epoch", ylabel="action MSE", title="behaviour cloning" + (", then DAgger" if max(rounds) else ""),
           yscale="log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    return finish(fig, caption or "Mean squared error between the policy's and the expert's actions; validation "
                                  "episodes are whole episodes never trained on (dotted: a DAgger round begins).")


def plot_keypoints(model, frames, titles=None, size: float = 3.5, caption: str | None = None):
    """Camera frames with the spatial-softmax keypoints ManipulationNet reads from them."""
    stride = POOL * int(np.prod([s for _, s in CONV_BLOCKS]))   # camera pixels per feature cell
    with torch.no_grad():
        x = frames_to_tensor(np.stack(frames))
        points = model.keypoints(model.pool(x)).view(len(frames), -1, 2).numpy()
    fig, axes = plt.subplots(1, len(frames), figsize=(size * len(frames), size), squeeze=False)
    for i, ax in enumerate(axes.flat):
        cells = frames[i].shape[0] // stride   # a cell centre sits at stride * index + (POOL - 1) / 2
        px = (points[i] + 1) / 2 * (cells - 1) * stride + (POOL - 1) / 2
        ax.imshow(frames[i])
        ax.scatter(px[:, 0], px[:, 1],
                   c=np.arange(points.shape[1]), cmap="tab20", s=28, edgecolors="white", linewidths=0.6)
        _image_axes(ax)
        if titles:
            ax.set_title(titles[i], fontsize=9)
    fig.suptitle("where the policy looks: spatial-softmax keypoints (one colour each)")
    return finish(fig, caption or "A trained policy's keypoints follow the cube from scene to scene; keypoints that "
                                  "stay put whatever the cube does mean the network has not learned to look yet.")


def plot_tick_timeline(report: dict, title: str = "control loop", caption: str | None = None):
    """Per-tick controller compute and whole tick (with the simulated camera) against the period."""
    compute, wall = np.asarray(report["timeline"]["compute_ms"]), np.asarray(report["timeline"]["wall_ms"])
    period_ms = 1e3 / report["rate_hz"]
    fig, ax = plt.subplots(figsize=(12, 3.5))
    ticks = np.arange(len(wall))
    ax.plot(ticks, wall, lw=0.6, color="tab:orange", label="whole tick (with MuJoCo render + physics)")
    ax.plot(ticks, compute, lw=0.6, color="tab:blue", label="controller compute (render excluded)")
    ax.axhline(period_ms, color="red", ls="--", label=f"deadline ({period_ms:g} ms at {report['rate_hz']:g} Hz)")
    ax.axhline(report["infer_budget"] * period_ms, color="grey", ls=":", label="watchdog deadline for inference")
    ax.set(xlabel="tick", ylabel="milliseconds", yscale="log", title=title)
    ax.legend(loc="upper right", fontsize=8)
    return finish(fig, caption or "Each tick's controller compute (blue) must stay under the deadline (red); the "
                                  "whole tick (orange) adds the simulator, which a real robot does not run.")


def plot_rate_sweep(result: dict, caption: str | None = None):
    """Deadline misses (share of ticks) and compute p99 at each loop rate, compute only."""
    rates = [r["rate_hz"] for r in result["rates"]]
    misses = [r["deadline_misses"] / max(1, r["ticks"]) for r in result["rates"]]
    p99 = [r["compute_ms"]["p99"] for r in result["rates"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5))
    a.plot(rates, misses, marker="o")
    a.set(xscale="log", xlabel="loop rate (Hz)", ylabel="share of ticks that missed", title="deadline misses")
    b.plot(rates, p99, marker="o", label="compute p99")
    b.plot(rates, [1e3 / r for r in rates], ls="--", color="red", label="period")
    b.set(xscale="log", yscale="log", xlabel="loop rate (Hz)", ylabel="milliseconds", title="compute vs period")
    b.legend()
    return finish(fig, caption or "The loop keeps up while compute p99 stays under the period; past the crossing, "
                                  "ticks start to miss.")


def plot_interventions(report: dict, caption: str | None = None):
    """Interventions of the guard by cause, one bar group per channel."""
    channels = report["channels"]
    causes = sorted({c for ch in channels.values() for c in ch["interventions"]})
    fig, ax = plt.subplots(figsize=(11, 3.5))
    width = 0.8 / max(1, len(channels))
    for i, (name, ch) in enumerate(channels.items()):
        ax.bar(np.arange(len(causes)) + i * width, [ch["interventions"].get(c, 0) for c in causes], width, label=name)
    ax.set_xticks(np.arange(len(causes)) + width * (len(channels) - 1) / 2, causes, rotation=30, ha="right")
    ax.set(xlabel="cause", ylabel="ticks", title="guard interventions by cause")
    ax.legend()
    return finish(fig, caption or "Every tick the guard refused a model's output, by the reason it gave; the robot "
                                  "held still (or kept its last safe action) on each.")


LANGUAGE_COLOURS = {"Python": "tab:blue", "C++": "tab:orange", "Rust": "tab:green"}


def plot_latency(rows_by_model: dict[str, list[dict]], caption: str | None = None, columns: int = 3):
    """Batch-1 latency per runtime, one panel per model, log scale: a bar to the p50, a tick at the p99."""
    from matplotlib.ticker import NullFormatter

    models = [m for m, rows in rows_by_model.items() if rows]
    columns = min(columns, len(models))
    grid_rows = -(-len(models) // columns)
    most = max(len(rows_by_model[m]) for m in models)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(5.4 * columns, grid_rows * (0.9 + 0.28 * most)), squeeze=False)
    for ax in axes.flat[len(models):]:
        fig.delaxes(ax)
    for ax, model in zip(axes.flat, models):
        rows = rows_by_model[model]
        y = np.arange(len(rows))
        colours = [LANGUAGE_COLOURS.get(r.get("language") or r["runtime"].split()[0], "tab:grey") for r in rows]
        ax.barh(y, [r["p50_ms"] for r in rows], color=colours)
        ax.scatter([r["p99_ms"] for r in rows], y, marker="|", s=120, color="black", zorder=3)
        ax.set_yticks(y, [r["runtime"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set(xscale="log", xlabel="batch-1 latency (ms, log scale): bar p50, tick p99", ylabel="runtime", title=model)
        ax.xaxis.set_minor_formatter(NullFormatter())
    fig.legend(handles=[Patch(facecolor=c, label=lang) for lang, c in LANGUAGE_COLOURS.items()],
               loc="upper center", ncol=3, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 1.0))
    finish(fig, caption or "Same golden vector, same iteration count, same run. Python rows include the call from "
                           "Python; native rows are the runners' own clocks.")
    fig.subplots_adjust(top=1 - 0.35 / (grid_rows * (0.9 + 0.28 * most)))
    return fig


def plot_latency_vs_size(models: dict, caption: str | None = None):
    """Batch-1 p50 latency against file size, one panel per model, one point per format/runtime that has both."""
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        sizes = {r["runtime"]: r["file_mb"] for r in m["memory"]}
        for row in m["latency"]:
            if row["runtime"] in sizes:
                int8 = "INT8" in row["runtime"] or "int8" in row["runtime"]
                ax.scatter(sizes[row["runtime"]], row["p50_ms"], marker="s" if int8 else "o",
                           color="tab:orange" if int8 else "tab:blue")
                ax.annotate(row["runtime"].replace("Python ", "Py ").replace(" (retired)", ""),
                            (sizes[row["runtime"]], row["p50_ms"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set(xscale="log", yscale="log", xlabel="file size (MiB)", ylabel="batch-1 p50 latency (ms)",
               title=f"{name} (orange: INT8)")
    return finish(fig, caption or "Smaller files are not always faster: at batch 1 the runtime's overhead, not "
                                  "the arithmetic, dominates these small models.")


def plot_int8_accuracy(models: dict, caption: str | None = None):
    """The change of each model's headline task metric, INT8 minus its float twin, with the allowed drop."""
    labels, points, allowed = [], [], []
    for name, m in models.items():
        for fmt, d in m.get("accuracy", {}).get("int8_delta", {}).items():
            labels.append(f"{name}\n{fmt}")
            points.append(d["points"])
            allowed.append(-d["allowed_drop"])
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(labels)), 3.5))
    x = np.arange(len(labels))
    ax.bar(x, points, color=["tab:green" if p >= a else "tab:red" for p, a in zip(points, allowed)])
    ax.scatter(x, allowed, marker="_", s=600, color="black", label="largest drop allowed")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set(xlabel="model and INT8 format", ylabel="task metric change (points)", title="INT8 vs float, same evaluation")
    ax.legend(fontsize=8)
    return finish(fig, caption or "Green bars stay above the largest drop allowed (black mark); red ones do not.")


def plot_memory(models: dict, caption: str | None = None):
    """Peak resident memory of one process per runtime (Python: on top of the shared imports; native: whole)."""
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 4.2), squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        rows = m["memory"]
        values = [r["model_mb"] if r["language"] == "Python" else r["peak_mb"] for r in rows]
        colors = ["tab:blue" if r["language"] == "Python" else "tab:purple" for r in rows]
        y = np.arange(len(rows))
        ax.barh(y, values, color=colors)
        ax.set_yticks(y, [r["runtime"].replace(" (retired)", "*") for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="MiB (blue: Python, above imports; purple: native process peak)", ylabel="runtime", title=name)
        ax.xaxis.label.set_size(7)
    return finish(fig, caption or "A Python process's runtime costs tens of MiB above its imports; a native runner's "
                                  "whole process is the purple bar. *: retired TorchScript baseline.")


def plot_pruning(results: dict, caption: str | None = None):
    """Per model and pruning variant: the C++ ExecuTorch batch-1 speed-up over the unpruned file (left) and the
    change of the task metric in points (right), with the 1.5x target and the 2-point limit."""
    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.2 * len(results)), squeeze=False)
    for (ax_speed, ax_task), (name, r) in zip(axes, results.items()):
        rows = {k: v for k, v in r["variants"].items() if k != "unpruned"}
        y = np.arange(len(rows))
        colours = ["tab:grey" if v["kind"] == "magnitude" else "tab:blue" for v in rows.values()]
        ax_speed.barh(y, [v["speedup_cpp_x"] for v in rows.values()], color=colours)
        ax_speed.axvline(1.5, color="black", ls="--", lw=1, label="1.5x target")
        ax_speed.set_yticks(y, list(rows), fontsize=8)
        ax_speed.invert_yaxis()
        ax_speed.set(xlabel="C++ ExecuTorch p50 speed-up over unpruned (x)", ylabel="variant", title=f"{name}: speed")
        ax_speed.legend(fontsize=8)
        deltas = [v["delta_points"] for v in rows.values()]
        ax_task.barh(y, deltas, color=["tab:green" if v["usable"] else "tab:red" for v in rows.values()])
        ax_task.axvline(-r["allowed_drop_points"], color="black", ls="--", lw=1, label="largest drop allowed")
        ax_task.axvline(0, color="grey", lw=0.8)
        ax_task.set_yticks(y, list(rows), fontsize=8)
        ax_task.invert_yaxis()
        ax_task.set(xlabel=f"{r['metric']} change (points)", ylabel="variant", title=f"{name}: task")
        ax_task.legend(fontsize=8)
    return finish(fig, caption or "Grey: weights zeroed (same dense kernels); blue: layers narrowed and fine-tuned. "
                                  "A usable variant (green) loses at most 2 points.")
