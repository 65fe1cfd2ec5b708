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

# Every seed range of the workbook, here and nowhere else. The ranges are disjoint, so the maps and
# scenes a model is evaluated on are never the ones it was trained, selected or checked on.
TRAIN_SEED_BASE = 0                 # navigation training maps, manipulation demonstration scenes
VALIDATION_SEED_BASE = 500_000      # navigation maps for model selection during training
EVAL_SEED_BASE = 1_000_000          # held-out maps and scenes for every reported success rate
NAVIGATION_SAMPLE_SEED_BASE = 2_000_000    # maps for example inputs, parity and golden vectors
MANIPULATION_SAMPLE_SEED_BASE = 3_000_000  # scenes for example inputs, parity and golden vectors
PARITY_SEED = 11                    # sampler seed of the parity inputs (embodied_lib.runtime)
GOLDEN_SEED = 7                     # sampler seed of the golden vectors (embodied_lib.export.golden)
TEXT_GOLDEN_SEED = 5                # corpus seed of text_golden.jsonl (embodied_lib.hri.export_extras)

PROFILES: dict[str, dict[str, dict]] = {
    "quick": {
        "navigation": dict(
            grid_size=8, obstacle_fraction=0.15, total_steps=12_000, learning_starts=1_000,
            buffer_size=20_000, batch_size=64, lr=1e-3, gamma=0.95, train_every=2,
            target_update_every=500, eps_start=1.0, eps_end=0.05, eps_fraction=0.4,
            eval_maps=500, seed=0,
        ),
        "native": dict(iterations=50),  # timed batch-1 runs per runtime in notebooks 05/06
        "manipulation": dict(episodes=12, epochs=4, batch_size=32, lr=1e-3, val_fraction=0.2, eval_episodes=10, seed=0),
        "hri": dict(n_train=900, n_val=180, n_test=360, n_ood=150, classifier_epochs=40, extractor_epochs=80,
                    batch_size=64, lr=1e-3, seed=0),
    },
    "full": {
        "navigation": dict(
            grid_size=8, obstacle_fraction=0.15, total_steps=150_000, learning_starts=2_000,
            buffer_size=100_000, batch_size=128, lr=1e-3, gamma=0.95, train_every=2,
            target_update_every=1_000, eps_start=1.0, eps_end=0.02, eps_fraction=0.2,
            eval_maps=500, seed=0,
        ),
        "native": dict(iterations=500),
        "manipulation": dict(episodes=500, epochs=30, batch_size=64, lr=1e-3, val_fraction=0.1, eval_episodes=50,
                             seed=0),
        "hri": dict(n_train=3600, n_val=600, n_test=1200, n_ood=500, classifier_epochs=60, extractor_epochs=200,
                    batch_size=64, lr=1e-3, seed=0),
    },
}


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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same metrics."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
