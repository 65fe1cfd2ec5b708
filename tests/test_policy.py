"""One policy interface (reset / act -> Decision) over eager PyTorch and every exported format."""
import numpy as np
import pytest

from embodied_lib.config import EVAL_SEED_BASE
from embodied_lib.export import FORMATS
from embodied_lib.export.manifest import read_manifest
from embodied_lib.hri.commands import ACTIONS, make_corpus
from embodied_lib.manipulation.env import TabletopEnv
from embodied_lib.manipulation.evaluate import rollout
from embodied_lib.navigation.env import ACTIONS as MOVES
from embodied_lib.navigation.env import GridWorldEnv
from embodied_lib.navigation.evaluate import run_episodes
from embodied_lib.policy import Decision, Policy
from embodied_lib.registry import load_runtime, make_policy
from embodied_lib.runtime.runtimes import eager_runtime


def formats(export_dir):
    """The float formats: they must decide exactly as eager does (INT8 keeps most decisions, not all:
    tests/test_profiling.py judges it by its own rule and by task metrics)."""
    return [a["format"] for a in read_manifest(export_dir)["artifacts"] if not FORMATS[a["format"]].lossy]


def policies(spec, model, export_dir):
    """The eager policy and one per exported format."""
    out = {"eager": make_policy(eager_runtime(spec, model))}
    out.update({fmt: make_policy(load_runtime(export_dir, fmt, trusted=True)) for fmt in formats(export_dir)})
    assert all(isinstance(p, Policy) for p in out.values())
    return out


def held_out_grid_observations(n=40):
    env, rng, observations = GridWorldEnv(), np.random.default_rng(0), []
    for i in range(n):
        obs, _ = env.reset(seed=EVAL_SEED_BASE + i)
        for _ in range(int(rng.integers(0, 6))):
            obs, *_ = env.step(int(rng.integers(len(MOVES))))
        observations.append(obs)
    return observations


def test_navigation_policies_decide_the_same_in_every_format(navigation_model, navigation_exports):
    spec, model = navigation_model
    everyone = policies(spec, model, navigation_exports)
    # eager and the eight float formats of the fixture, the batch-1 program among them (INT8 is judged in test_profiling)
    assert len(everyone) == 9 and "executorch_batch1" in everyone
    for obs in held_out_grid_observations():
        decisions = {name: p.act(obs) for name, p in everyone.items()}
        reference = decisions["eager"]
        assert isinstance(reference, Decision) and reference.action in range(len(MOVES)) and not reference.refused
        for name, d in decisions.items():
            assert d.action == reference.action, name
            np.testing.assert_allclose(d.outputs["q_values"], reference.outputs["q_values"], atol=spec.tolerance)
    # and in closed loop, the same episodes
    seeds = range(EVAL_SEED_BASE, EVAL_SEED_BASE + 20)
    results = {name: run_episodes(p, 8, 0.15, seeds) for name, p in everyone.items() if name in ("eager", "onnx", "executorch")}
    assert len({(r["success_rate"], r["mean_steps"]) for r in results.values()}) == 1, results


def test_manipulation_policies_decide_the_same_in_every_format(manipulation_exports):
    out, spec, model = manipulation_exports
    everyone = policies(spec, model, out)
    env = TabletopEnv()
    observations = [env.reset(seed=EVAL_SEED_BASE + i)[0] for i in range(3)]
    env.close()
    for obs in observations:
        decisions = {name: p.act(obs) for name, p in everyone.items()}
        reference = decisions["eager"].action
        assert reference.shape == (4,) and np.abs(reference).max() <= 1.0
        for name, d in decisions.items():
            np.testing.assert_allclose(d.action, reference, atol=spec.tolerance, err_msg=name)
            assert (d.action[3] > 0) == (reference[3] > 0), name  # the same gripper decision
    eager, pte = everyone["eager"], everyone["executorch"]
    seeds = [EVAL_SEED_BASE]
    assert rollout(eager, seeds)["successes"] == rollout(pte, seeds)["successes"]


def test_hri_policies_decide_the_same_in_every_format(hri_exports):
    root, models = hri_exports
    spec, model = models["command_pipeline"]
    everyone = policies(spec, model, root / "command_pipeline")
    assert set(everyone) == {"eager", "torch_export", "executorch", "onnx"}
    corpus = make_corpus(0, 0, 30, 10, seed=123)
    texts = [c.text for c in corpus["test"] + corpus["ood_test"]] + ["", "stop " * 80]
    for text in texts:
        decisions = {name: p.act(text) for name, p in everyone.items()}
        reference = decisions["eager"]
        for name, d in decisions.items():
            assert d.refused == reference.refused and d.details["best_guess"] == reference.details["best_guess"], (name, text)
            assert d.reason == reference.reason or "low confidence" in (d.reason or ""), (name, text)
            for key in reference.outputs:
                np.testing.assert_allclose(d.outputs[key], reference.outputs[key], atol=spec.tolerance)
        if reference.details["best_guess"] is not None:
            assert reference.details["best_guess"] in ACTIONS


def test_heads_have_no_policy_of_their_own(hri_exports):
    root, _ = hri_exports
    with pytest.raises(ValueError, match="no policy of its own"):
        make_policy(load_runtime(root / "action_classifier", "onnx"))
