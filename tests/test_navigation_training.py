"""Smoke runs of the real training loop with a tiny budget (CleanRL-style)."""
import json

import numpy as np
import pytest
import torch

from embodied_lib.config import get_config
from embodied_lib.registry import load_checkpoint
from embodied_lib.navigation.evaluate import evaluate_random
from embodied_lib.navigation.train import ReplayBuffer, linear_epsilon, train_dqn

TINY = dict(total_steps=1_500, learning_starts=200, eval_maps=30, validation_maps=30, buffer_size=2_000)


def test_training_smoke_writes_checkpoint_and_metrics(tmp_path):
    cfg = get_config("navigation", "quick", **TINY)
    model, metrics = train_dqn(cfg, out_dir=tmp_path, progress=False)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["evaluation"]["episodes"] == 30
    assert 0.0 <= saved["evaluation"]["success_rate"] <= 1.0
    assert len(saved["history"]["loss"]) > 0 and np.isfinite(saved["history"]["loss"]).all()
    assert len(saved["history"]["validation_success"]) >= 1
    spec, reloaded = load_checkpoint(tmp_path)
    (x,) = spec.example_inputs(batch=4)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reloaded(x))


def test_same_seed_same_metrics():
    cfg = get_config("navigation", "quick", **TINY)
    _, a = train_dqn(cfg, progress=False)
    _, b = train_dqn(cfg, progress=False)
    for key in ("evaluation", "random_policy", "episodes", "selected_step"):
        assert a[key] == b[key], key
    assert a["history"] == b["history"]
    _, c = train_dqn(get_config("navigation", "quick", **{**TINY, "seed": 1}), progress=False)
    assert c["history"]["loss"] != a["history"]["loss"]


def test_training_restores_the_thread_count():
    before = torch.get_num_threads()
    train_dqn(get_config("navigation", "quick", total_steps=50, learning_starts=10, eval_maps=2, validation_maps=2), progress=False)
    assert torch.get_num_threads() == before


def test_epsilon_schedule_and_replay_buffer():
    cfg = dict(eps_start=1.0, eps_end=0.1, eps_fraction=0.5, total_steps=100)
    assert linear_epsilon(0, cfg) == 1.0
    assert linear_epsilon(25, cfg) == pytest.approx(0.55)
    assert linear_epsilon(50, cfg) == pytest.approx(0.1) == linear_epsilon(99, cfg)
    buf = ReplayBuffer(3, 2)
    for i in range(5):
        buf.add(np.full(2, i), i % 4, float(i), np.full(2, i + 1), i == 4)
    assert buf.size == 3 and sorted(buf.rewards) == [2.0, 3.0, 4.0]
    obs, act, rew, nxt, term = buf.sample(8, np.random.default_rng(0))
    assert obs.shape == (8, 2) and torch.equal(nxt[:, 0], obs[:, 0] + 1)


def test_random_policy_baseline_is_poor():
    assert evaluate_random(8, 0.15, 100)["success_rate"] < 0.5
