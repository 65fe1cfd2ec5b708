"""Figures the notebooks show: maps, observations, learning curves, rollouts, tables."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

import torch

from embodied_lib.manipulation.model import CONV_BLOCKS, POOL, frames_to_tensor
from embodied_lib.navigation.env import CHANNELS, GridWorldEnv, render_grid


def show_maps(seeds, grid_size: int = 8, obstacle_fraction: float = 0.15):
    """One rendered map per seed: red robot, green goal, dark obstacles."""
    fig, axes = plt.subplots(1, len(seeds), figsize=(3 * len(seeds), 3))
    for ax, seed in zip(np.atleast_1d(axes), seeds):
        env = GridWorldEnv(grid_size, obstacle_fraction, render_mode="rgb_array")
        _, info = env.reset(seed=seed)
        ax.imshow(env.render())
        ax.set_title(f"map {seed}: shortest path {info['shortest_path']}")
        ax.axis("off")
    fig.tight_layout()
    return fig


def show_observation(obs: np.ndarray, grid_size: int = 8):
    """The four robot-centred channels of one observation vector."""
    grid = obs.reshape(len(CHANNELS), grid_size, grid_size)
    fig, axes = plt.subplots(1, len(CHANNELS), figsize=(3 * len(CHANNELS), 3))
    for ax, name, channel in zip(axes, CHANNELS, grid):
        ax.imshow(channel, cmap="Greys", vmin=0, vmax=1)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("observation channels (window centred on the robot)")
    fig.tight_layout()
    return fig


def _smooth(values, window: int):
    values = np.asarray(values, dtype=float)
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_learning_curves(metrics: dict):
    h = metrics["history"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
    window = max(1, min(100, len(h["episode_return"]) // 10))
    x = h["episode_step"][window - 1:] if len(h["episode_return"]) >= window else h["episode_step"]
    axes[0].plot(x, _smooth(h["episode_return"], window))
    axes[0].set(title=f"episode return (mean of {window})", xlabel="env step")
    axes[1].plot(h["step"], h["loss"], alpha=0.6)
    axes[1].set(title="Huber TD loss", xlabel="env step", yscale="log")
    axes[2].plot(h["validation_step"], h["validation_success"], marker="o", label="validation success")
    axes[2].axhline(metrics["random_policy"]["success_rate"], color="grey", ls="--", label="random policy")
    axes[2].set(title="greedy success on validation maps", xlabel="env step", ylim=(0, 1.02))
    axes[2].legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_rollout(policy, seed: int, grid_size: int = 8, obstacle_fraction: float = 0.15):
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
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
    axes[0].imshow(start)
    axes[0].set_title("start")
    axes[1].imshow(end)
    cell = start.shape[0] / grid_size
    rows, cols = zip(*path)
    axes[1].plot((np.array(cols) + 0.5) * cell, (np.array(rows) + 0.5) * cell, "r-", lw=2)
    outcome = "reached goal" if terminated else "did not reach goal"
    axes[1].set_title(f"{outcome}: {info['steps']} steps (shortest {info['shortest_path']})")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def markdown_table(rows: list[dict], columns=None, floatfmt: str = ".3g") -> str:
    """A Markdown table of ``rows`` (list of dicts) for IPython.display.Markdown."""
    columns = columns or list(rows[0])

    def fmt(v):
        return format(v, floatfmt) if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot_hri_training(metrics: dict):
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
    fig.tight_layout()
    return fig


def plot_confusion(matrix, labels):
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
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def plot_confidence(in_domain, out_of_domain, threshold: float):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bins = np.linspace(0, 1, 41)
    ax.hist(in_domain, bins=bins, alpha=0.6, label="in-domain test commands")
    ax.hist(out_of_domain, bins=bins, alpha=0.6, label="out-of-domain test text")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.2f}")
    ax.set(xlabel="max action probability", ylabel="count", title="accept above the threshold, reject below")
    ax.legend()
    fig.tight_layout()
    return fig


def show_frames(frames, titles=None, columns: int = 4, size: float = 3.0):
    """A row (or grid) of camera frames."""
    frames = list(frames)
    rows = (len(frames) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(frames):
            ax.imshow(frames[i])
            if titles:
                ax.set_title(titles[i])
    fig.tight_layout()
    return fig


def plot_bc_curves(metrics: dict):
    h = metrics["history"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(h["epoch"], h["train_loss"], marker="o", label="train (augmented)")
    ax.plot(h["epoch"], h["val_loss"], marker="o", label="validation episodes")
    ax.set(xlabel="epoch", ylabel="action MSE", title="behaviour cloning", yscale="log")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_keypoints(model, frames, titles=None, size: float = 3.5):
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
        ax.axis("off")
        if titles:
            ax.set_title(titles[i])
    fig.suptitle("where the policy looks: spatial-softmax keypoints (one colour each)")
    fig.tight_layout()
    return fig


def plot_tick_timeline(report: dict, title: str = "control loop"):
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
    fig.tight_layout()
    return fig


def plot_rate_sweep(result: dict):
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
    fig.tight_layout()
    return fig


def plot_interventions(report: dict):
    """Interventions of the guard by cause, one bar group per channel."""
    channels = report["channels"]
    causes = sorted({c for ch in channels.values() for c in ch["interventions"]})
    fig, ax = plt.subplots(figsize=(11, 3.5))
    width = 0.8 / max(1, len(channels))
    for i, (name, ch) in enumerate(channels.items()):
        ax.bar(np.arange(len(causes)) + i * width, [ch["interventions"].get(c, 0) for c in causes], width, label=name)
    ax.set_xticks(np.arange(len(causes)) + width * (len(channels) - 1) / 2, causes, rotation=30, ha="right")
    ax.set(ylabel="ticks", title="guard interventions by cause")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_latency_vs_size(models: dict):
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
    fig.tight_layout()
    return fig


def plot_int8_accuracy(models: dict):
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
    ax.set(ylabel="task metric change (points)", title="INT8 vs float, same evaluation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_memory(models: dict):
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
        ax.set(xlabel="MiB (blue: Python, above imports; purple: native process peak)", title=name)
        ax.xaxis.label.set_size(7)
    fig.tight_layout()
    return fig
