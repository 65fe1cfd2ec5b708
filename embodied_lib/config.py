"""Profiles, paths and seeds: the one place a run's size is decided.

A profile is a plain dict of numbers, nanoGPT-style: notebooks pick one by name
(`PROFILE` parameter, or the `EMBODIED_PROFILE` environment variable) and may
override single keys. `quick` and `full` run exactly the same code.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPORTS_DIR = Path(os.environ.get("EMBODIED_EXPORTS", REPO_ROOT / "exports"))
DATA_DIR = Path(os.environ.get("EMBODIED_DATA", REPO_ROOT / "data"))
RUNS_DIR = Path(os.environ.get("EMBODIED_RUNS", REPO_ROOT / "runs"))
KEYS_DIR = Path(os.environ.get("EMBODIED_KEYS", REPO_ROOT / "keys"))   # this machine's export signing key pair

# Every seed range of the workbook, here and nowhere else. The ranges are disjoint, so the maps and
# scenes a model is evaluated on are never the ones it was trained, selected or checked on.
TRAIN_SEED_BASE = 0                 # navigation training maps, manipulation demonstration scenes
VALIDATION_SEED_BASE = 500_000      # navigation maps for model selection during training
EVAL_SEED_BASE = 1_000_000          # held-out maps and scenes for every reported success rate
MISSION_SEED_BASE = 1_500_000       # maps and scenes of spoken missions (notebook 07), apart from the evaluation's
NAVIGATION_SAMPLE_SEED_BASE = 2_000_000    # maps for example inputs, parity and golden vectors
MANIPULATION_SAMPLE_SEED_BASE = 3_000_000  # scenes for example inputs, parity and golden vectors
PARITY_SEED = 11                    # sampler seed of the parity inputs (embodied_lib.runtime)
CALIBRATION_SEED = 13               # sampler seed of the INT8 calibration inputs (embodied_lib.export.quantize)
GOLDEN_SEED = 7                     # sampler seed of the golden vectors (embodied_lib.export.golden)
TEXT_GOLDEN_SEED = 5                # corpus seed of text_golden.jsonl (embodied_lib.hri.export_extras)
PRUNING_SEED = 17                   # sampler seed of the pruned Q-network's distillation states (profiling.pruning)

PROFILES: dict[str, dict[str, dict]] = {
    "quick": {
        "navigation": dict(
            grid_size=8, obstacle_fraction=0.15, total_steps=20_000, learning_starts=1_000,
            buffer_size=20_000, batch_size=64, lr=1e-3, gamma=0.95, train_every=2,
            target_update_every=500, eps_start=1.0, eps_end=0.05, eps_fraction=0.4,
            eval_maps=500, validation_maps=500, seed=0, device="auto", workers=1,
        ),
        # notebook 04: formats a model's export leaves out: the text pipeline's ExecuTorch programs (fp32 40 s, INT8
        # 115 s of lowering on one core). In the quick profile nothing reads them (the robot and the Rust pipeline
        # run its ONNX file; notebook 08 profiles navigation); both runners' tests run them on the test session's
        # own exports. The full profile writes them and measures them in notebook 08.
        "export": dict(skip_formats={"command_pipeline": ("executorch", "executorch_int8")}),
        "native": dict(iterations=50),  # timed batch-1 runs per runtime in notebooks 05/06
        # dagger_*: rounds of DAgger after behaviour cloning (embodied_lib.manipulation.train.train_policy): new
        # scenes per round driven by the policy (the expert on dagger_expert_prob of the steps), epochs per round
        "manipulation": dict(episodes=60, epochs=10, batch_size=32, lr=1e-3, val_fraction=0.2, eval_episodes=20,
                             dagger_rounds=1, dagger_episodes=30, dagger_epochs=6, dagger_expert_prob=0.5,
                             warm_start="reference", seed=0, device="auto", bf16=False, workers=2),
        # epochs: fine-tuning the encoder with the heads, after head_epochs of heads on the frozen encoder;
        # baseline_epochs: the heads-only baseline (finetune=False). device: auto = CUDA when there is one.
        "hri": dict(n_train=600, n_val=120, n_test=240, n_ood=150, finetune=True, head_epochs=3, epochs=6,
                    baseline_epochs=30, batch_size=32, encoder_lr=3e-4, head_lr=1e-3, seed=0, device="auto", bf16=False),
        # notebook 07: the control loop's experiments (embodied_lib.deploy); fault_probability per channel and tick;
        # priority: the rate search's loop and workers at SCHED_FIFO (only as root, as the C++ controller's)
        "deploy": dict(format="executorch", rate_hz=20.0, maps=50, scenes=3, realtime_ticks=200, rate_seconds=1.0,
                       fault_ticks=200, fault_probability=0.6, soak_ticks=2_000, commands=24, ood=12, priority=50),
        # notebook 08: which exported models are profiled (quick: one, ~2.5 min; each runtime's memory is its own
        # process), timed batch-1 runs per runtime, and which models also get ExecuTorch programs exported for
        # batch 1 only (their memory plan; None: every profiled model)
        # rust_cpp_rounds: processes per runner, taken in turns, behind each Rust-vs-C++ ExecuTorch ratio
        "profiling": dict(models=("navigation",), iterations=200, batch1_models=("navigation",), rust_cpp_rounds=1),
        # notebook 08: pruning (embodied_lib.profiling.pruning): magnitude zeros and structured ratios, the fine-tune
        # (navigation: distillation steps on sampled states; manipulation: epochs of behaviour cloning), timed runs per
        # process and C++ processes per variant (latency_rounds, taken in turns)
        # formats: what a structured variant is exported to (None: every format of the model). Quick: one ratio of
        # each kind and the four formats the runners and twins load (~40 s); the full profile does both ratios of
        # each kind and every format. Manipulation's pruning (8 min of fine-tunes and exports) is make bench's
        # (python -m embodied_lib.profiling --pruning-model ...), not the full notebook's: it would take the full
        # profile past its 70 minutes.
        "pruning": dict(models=("navigation",), magnitude=(0.9,), structured=(0.5,),
                        formats=("executorch", "onnx", "safetensors", "pth"), iterations=1000, latency_rounds=5,
                        distil_states=20_000, distil_steps=2_000, distil_batch=256, distil_lr=1e-3, fine_tune_epochs=8),
        # the C++ controller (notebook 07): held-out episodes it plays, real-time ticks, the rate search (compute
        # only, on recorded readings, one core), faults, the soak, missions; SCHED_FIFO priority of its threads in
        # the timed runs (used only when running as root, as is locking the controller's memory); baseline_seconds:
        # the machine's own wake-up latency at the real-time run's period, measured first (cyclictest's way)
        # cpus: each model's inference worker on its own core in the rate searches and make bench's runs (--cpus),
        # on threads each (navigation alone on its worker, manipulation on ExecuTorch's pool of two: --threads);
        # cpu_dma_latency_us: make bench's runs hold cyclictest's CPU latency request as root (--cpu-dma-latency);
        # sustained_*: make bench's long runs at fixed rates on recorded readings (python -m embodied_lib.deploy
        # native-sustained), judged by realtime_tools' bar (<= 0.5 % missed), and allocation_ticks: the heap
        # allocation count per runtime
        "controller": dict(runtime="executorch", maps=50, scenes=3, realtime_ticks=200, rates=(100, 500),
                           rate_seconds=1.0, replay=50, fault_ticks=200, fault_probability=0.6, soak_ticks=5_000,
                           commands=12, cpu=0, priority=50, baseline_seconds=2.0, cpus=(0, 1),
                           threads=dict(navigation=1, manipulation=2), cpu_dma_latency_us=0,
                           sustained_runs=((("navigation", "manipulation"), 500), (("navigation",), 2000)),
                           sustained_ticks=2_000, allocation_ticks=1_000),
    },
    "full": {
        "navigation": dict(
            grid_size=8, obstacle_fraction=0.15, total_steps=150_000, learning_starts=2_000,
            buffer_size=100_000, batch_size=128, lr=1e-3, gamma=0.95, train_every=2,
            target_update_every=1_000, eps_start=1.0, eps_end=0.02, eps_fraction=0.2,
            eval_maps=500, validation_maps=500, seed=0, device="auto", workers=1,
        ),
        "export": dict(skip_formats={}),
        "native": dict(iterations=500),
        "manipulation": dict(episodes=500, epochs=30, batch_size=64, lr=1e-3, val_fraction=0.1, eval_episodes=50,
                             dagger_rounds=0, dagger_episodes=100, dagger_epochs=10, dagger_expert_prob=0.5,
                             warm_start=None, seed=0, device="auto", bf16=False, workers=2),
        # 6,000 commands x 3 epochs rather than 4,000 x 4: about the same steps, half again as many phrasings drawn;
        # with 4,000 every full run left an error or two in some parameter of unseen phrasings (angle 98.7 %)
        "hri": dict(n_train=6000, n_val=600, n_test=1200, n_ood=600, finetune=True, head_epochs=3, epochs=3,
                    baseline_epochs=40, batch_size=32, encoder_lr=3e-4, head_lr=1e-3, seed=0, device="auto", bf16=False),
        "deploy": dict(format="executorch", rate_hz=20.0, maps=500, scenes=50, realtime_ticks=10_000, rate_seconds=5.0,
                       fault_ticks=6_000, fault_probability=0.6, soak_ticks=100_000, commands=600, ood=60, priority=50),
        # the three models the robot runs (the HRI heads live inside command_pipeline); make bench adds the heads
        "profiling": dict(models=("navigation", "manipulation", "command_pipeline"), iterations=500, batch1_models=None,
                          rust_cpp_rounds=5),
        "pruning": dict(models=("navigation",), magnitude=(0.5, 0.9), structured=(0.5, 0.75),
                        formats=None, iterations=1000, latency_rounds=5, distil_states=20_000, distil_steps=2_000, distil_batch=256,
                        distil_lr=1e-3, fine_tune_epochs=8),
        "controller": dict(runtime="executorch", maps=500, scenes=50, realtime_ticks=10_000,
                           rates=(50, 100, 200, 300, 400, 500, 1000, 2000, 5000), rate_seconds=5.0, replay=200,
                           fault_ticks=6_000, fault_probability=0.6, soak_ticks=100_000, commands=300, cpu=0,
                           priority=50, baseline_seconds=10.0, cpus=(0, 1),
                           threads=dict(navigation=1, manipulation=2), cpu_dma_latency_us=0,
                           sustained_runs=((("navigation", "manipulation"), 500), (("navigation",), 2000)),
                           sustained_ticks=100_000, allocation_ticks=10_000),
    },
}


def cores_allotted() -> int:
    """How many cores this process may keep busy: OMP_NUM_THREADS when set (make test gives each of its two
    workers one, and the notebooks' kernels inherit it), else every core. Work split over processes (notebook
    04's exports, notebook 08's memory children) uses this many: a third process on two busy cores only adds
    start-up (measured inside make test: notebook 04 took 401 s with two export processes, 302 s with one)."""
    try:
        return max(1, min(int(os.environ["OMP_NUM_THREADS"]), os.cpu_count() or 1))
    except (KeyError, ValueError):
        return os.cpu_count() or 1


def profile_name(name: str | None = None) -> str:
    name = name or os.environ.get("EMBODIED_PROFILE", "quick")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return name


def get_config(section: str, profile: str | None = None, **overrides) -> dict:
    """The settings of one workbook section for a profile, with keyword overrides."""
    cfg = dict(PROFILES[profile_name(profile)][section])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise KeyError(f"unknown {section} settings {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    return cfg


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when there is a GPU, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as asked, with a clear
    error when the GPU asked for is not there."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} asked for, but no CUDA GPU is visible here; use device='auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same metrics."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
