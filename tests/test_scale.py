"""Bigger runs on small budgets: the device setting, data collection and evaluation over worker processes, and
behaviour cloning under torchrun with two gloo processes against one."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from embodied_lib.config import REPO_ROOT, resolve_device
from embodied_lib.manipulation.demonstrations import generate_demonstrations
from embodied_lib.manipulation.evaluate import evaluate_closed_loop
from embodied_lib.manipulation.model import manipulation_spec
from embodied_lib.navigation.evaluate import evaluate_random, evaluate_weights
from embodied_lib.navigation.model import navigation_spec

# Two gloo processes normalise their own half of each batch (no SyncBatchNorm on CPUs), so their loss curve is
# the single process's up to batch-norm statistics of 4 frames instead of 8: measured within 0.5 % per epoch here.
DDP_LOSS_RTOL = 0.02


def run(*args, timeout=600):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=timeout)


def test_processes_follow_the_cores_allotted(monkeypatch):
    from embodied_lib.config import cores_allotted

    monkeypatch.setenv("OMP_NUM_THREADS", "1")   # what make test gives each worker
    assert cores_allotted() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert cores_allotted() == (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cores_allotted() == (os.cpu_count() or 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "4096")
    assert cores_allotted() == (os.cpu_count() or 1)


def test_device_auto_falls_back_to_the_cpu_and_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
        return
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu:0")


@pytest.mark.parametrize("module", ["embodied_lib.navigation.train", "embodied_lib.manipulation.train",
                                    "embodied_lib.hri.train"])
def test_every_training_cli_refuses_a_gpu_that_is_not_there(module, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the error is for machines without one")
    proc = run("-m", module, "--device", "cuda", "--out", tmp_path / "out", timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU is visible" in proc.stderr, proc.stderr[-500:]


@pytest.fixture(scope="module")
def demonstrations(tmp_path_factory):
    """Four episodes in shards of two, recorded by one worker and by two."""
    root = tmp_path_factory.mktemp("demonstrations")
    cards = {w: generate_demonstrations(root / f"workers{w}", 4, seed=3, workers=w, shard_episodes=2, progress=False)
             for w in (1, 2)}
    return root, cards


def test_demonstrations_do_not_depend_on_the_number_of_workers(demonstrations):
    root, cards = demonstrations
    one, two = ({k: v for k, v in c.items() if k not in ("seconds", "workers")} for c in cards.values())
    assert one == two and len(one["shards"]) == 2
    for shard in one["shards"]:
        with np.load(root / "workers1" / shard) as a, np.load(root / "workers2" / shard) as b:
            for key in ("image", "state", "action", "episode"):
                np.testing.assert_array_equal(a[key], b[key])


def test_evaluations_do_not_depend_on_the_number_of_workers():
    torch.manual_seed(5)
    nav = navigation_spec().build_model().state_dict()
    assert evaluate_weights(nav, 8, 0.15, 30, workers=1) == evaluate_weights(nav, 8, 0.15, 30, workers=2)
    assert evaluate_random(8, 0.15, 30, seed=2, workers=1) == evaluate_random(8, 0.15, 30, seed=2, workers=2)
    model = manipulation_spec().build_model().eval()
    one, two = (evaluate_closed_loop(model, 3, workers=w, progress=False) for w in (1, 2))
    assert {k: one[k] for k in ("policy", "expert", "random")} == {k: two[k] for k in ("policy", "expert", "random")}
    assert one["expert"]["success_rate"] > 0   # the scenes really ran


def test_behaviour_cloning_with_two_processes_follows_one(demonstrations, tmp_path):
    root, _ = demonstrations
    common = ["-m", "embodied_lib.manipulation.train", "--data", root / "workers1", "--reuse-data", "--no-eval",
              "--dagger-rounds", "0", "--from-scratch", "--epochs", "3", "--batch-size", "8", "--device", "cpu"]
    curves = {}
    for n in (1, 2):
        out = tmp_path / f"processes{n}"
        proc = run("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", n, *common, "--out", out)
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["processes"] == n
        curves[n] = metrics["history"]["train_loss"]
    assert len(curves[1]) == len(curves[2]) == 3
    np.testing.assert_allclose(curves[2], curves[1], rtol=DDP_LOSS_RTOL)


def test_hri_training_with_two_processes_follows_one(tmp_path):
    """Two processes draw the same global batches and train on halves; dropout masks are drawn per process and an
    odd out-of-domain draw splits 9/8, so the curves agree loosely (measured within 3 %), not exactly."""
    curves = {}
    for n in (1, 2):
        out = tmp_path / f"processes{n}"
        proc = run("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", n, "-m", "embodied_lib.hri.train",
                   "--device", "cpu", "--train-commands", 64, "--epochs", 1, "--eval-commands", 24, "--out", out,
                   timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics = json.loads((out / "hri" / "metrics.json").read_text())
        assert metrics["processes"] == n and metrics["corpus"]["train"] == 64
        for name in ("action_classifier", "param_extractor", "command_pipeline"):
            assert (out / name / "model.safetensors").is_file()
        curves[n] = metrics["history"]["loss"]
    assert len(curves[1]) == len(curves[2]) and curves[2][5] < curves[2][0]   # the heads' stage learns
    np.testing.assert_allclose(curves[2], curves[1], rtol=0.1)
