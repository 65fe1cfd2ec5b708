"""Train and evaluate the navigation DQNAgent on GridWorldEnv, CleanRL-style: top to bottom.

Double DQN with a replay buffer, a target network, a linear epsilon schedule,
Huber loss and gradient clipping. Every training episode uses map seed
``TRAIN_SEED_BASE + episode``; validation and evaluation use disjoint seed ranges,
so the numbers are about maps the agent never saw.

    python -m embodied_lib.navigation.train --profile quick --out runs/navigation
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embodied_lib.cli import int_in, require_writable
from embodied_lib.config import (RUNS_DIR, TRAIN_SEED_BASE, VALIDATION_SEED_BASE, get_config, resolve_device,
                                 seed_everything)
from embodied_lib.navigation.env import ACTIONS, GridWorldEnv
from embodied_lib.navigation.evaluate import evaluate_policy, evaluate_random, evaluate_weights
from embodied_lib.navigation.model import navigation_spec
from embodied_lib.navigation.policy import NavigationPolicy
from embodied_lib.progress import progress_bar
from embodied_lib.runtime.runtimes import eager_runtime
from embodied_lib.spec import save_checkpoint

VALIDATION_POINTS = 10          # how many times validation runs during training
GRAD_CLIP_NORM = 10.0


class ReplayBuffer:
    """Fixed-size ring buffer of transitions, stored as NumPy arrays."""

    def __init__(self, capacity: int, obs_size: int):
        self.obs = np.zeros((capacity, obs_size), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_size), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.capacity, self.size, self.pos = capacity, 0, 0

    def add(self, obs, action, reward, next_obs, terminated):
        i = self.pos
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator):
        idx = rng.integers(0, self.size, size=batch_size)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.actions[idx]),
                torch.from_numpy(self.rewards[idx]), torch.from_numpy(self.next_obs[idx]),
                torch.from_numpy(self.terminated[idx]))


def linear_epsilon(step: int, cfg: dict) -> float:
    span = max(1, int(cfg["eps_fraction"] * cfg["total_steps"]))
    frac = min(1.0, step / span)
    return cfg["eps_start"] + frac * (cfg["eps_end"] - cfg["eps_start"])


def train_dqn(cfg: dict, out_dir: Path | None = None, progress: bool = True):
    """Train a DQNAgent with the settings ``cfg`` (see config.PROFILES['...']['navigation']).

    Returns ``(model, metrics)``; with ``out_dir`` also writes the checkpoint
    (model.safetensors + config.json) and metrics.json there.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 256-wide MLP trains faster on one thread than split over two
    try:
        return _train(cfg, out_dir, progress)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: dict, out_dir: Path | None, progress: bool):
    device = resolve_device(cfg.get("device", "auto"))
    seed_everything(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    n, frac = cfg["grid_size"], cfg["obstacle_fraction"]
    spec = navigation_spec(n, frac)
    env = GridWorldEnv(n, frac)

    q_net = spec.build_model().to(device)
    target_net = copy.deepcopy(q_net).eval()
    optimizer = torch.optim.Adam(q_net.parameters(), lr=cfg["lr"])
    buffer = ReplayBuffer(cfg["buffer_size"], spec.inputs[0].shape[1])
    # validation runs the policy interface on a CPU copy of q_net (the same weights; on the CPU, the same numbers)
    validation_net = spec.build_model().eval()
    greedy = NavigationPolicy(eager_runtime(spec, validation_net))

    history = {"step": [], "loss": [], "episode_step": [], "episode_return": [], "episode_success": [],
               "validation_step": [], "validation_success": [], "validation_path_ratio": []}
    best = {"score": (-1.0, 0.0), "state": None, "step": 0}
    validate_every = max(1, cfg["total_steps"] // VALIDATION_POINTS)
    episode, episode_return = 0, 0.0
    obs, _ = env.reset(seed=TRAIN_SEED_BASE + episode)
    start_time = time.perf_counter()

    bar = progress_bar(range(1, cfg["total_steps"] + 1), desc="DQN", unit="steps", disable=not progress, mininterval=1.0)
    for step in bar:
        # act: epsilon-greedy, network in eval mode (no dropout) while acting
        if rng.random() < linear_epsilon(step, cfg):
            action = int(rng.integers(len(ACTIONS)))
        else:
            q_net.eval()
            with torch.no_grad():
                action = int(q_net(torch.from_numpy(np.asarray(obs, np.float32)).to(device)[None]).argmax())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)  # truncation still bootstraps
        obs, episode_return = next_obs, episode_return + reward
        if terminated or truncated:
            history["episode_step"].append(step)
            history["episode_return"].append(episode_return)
            history["episode_success"].append(bool(terminated))
            episode, episode_return = episode + 1, 0.0
            obs, _ = env.reset(seed=TRAIN_SEED_BASE + episode)

        # learn: Double DQN target, Huber loss, clipped gradients
        if step >= cfg["learning_starts"] and step % cfg["train_every"] == 0:
            b_obs, b_act, b_rew, b_next, b_term = (t.to(device) for t in buffer.sample(cfg["batch_size"], rng))
            q_net.train()
            with torch.no_grad():
                q_net.eval()
                next_actions = q_net(b_next).argmax(dim=1, keepdim=True)
                q_net.train()
                next_q = target_net(b_next).gather(1, next_actions).squeeze(1)
                target = b_rew + cfg["gamma"] * next_q * (1.0 - b_term)
            q = q_net(b_obs).gather(1, b_act.unsqueeze(1)).squeeze(1)
            loss = F.smooth_l1_loss(q, target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(q_net.parameters(), GRAD_CLIP_NORM)
            optimizer.step()
            if step % 100 == 0:
                history["step"].append(step)
                history["loss"].append(loss.item())
        if step % cfg["target_update_every"] == 0:
            target_net.load_state_dict(q_net.state_dict())

        if step % validate_every == 0 or step == cfg["total_steps"]:
            q_net.eval()
            validation_net.load_state_dict(q_net.state_dict())
            # validation_maps: 500 in both profiles. With 50, validation read 100 % from a third of full training on,
            # so the choice among those checkpoints was blind (the full run picked one at 96.8 % held-out)
            val = evaluate_policy(greedy, n, frac, cfg["validation_maps"], VALIDATION_SEED_BASE)
            history["validation_step"].append(step)
            history["validation_success"].append(val["success_rate"])
            history["validation_path_ratio"].append(val["path_ratio"])
            # the highest success wins; at equal success the shorter paths; at a full tie the later checkpoint
            score = (val["success_rate"], -val["path_ratio"])
            if score >= best["score"]:
                best = {"score": score, "step": step, "state": copy.deepcopy(q_net.state_dict())}
            recent = history["episode_success"][-100:]
            bar.set_postfix(val_success=f"{val['success_rate']:.2f}",
                            train_success=f"{np.mean(recent) if recent else 0:.2f}")

    q_net.load_state_dict(best["state"])
    q_net = q_net.to("cpu").float().eval()   # checkpoints and exports: always CPU float32
    train_seconds = time.perf_counter() - start_time
    workers = cfg.get("workers", 1)
    evaluation = evaluate_weights(q_net.state_dict(), n, frac, cfg["eval_maps"], workers=workers)
    random_baseline = evaluate_random(n, frac, cfg["eval_maps"], seed=cfg["seed"], workers=workers)
    metrics = {
        "config": cfg,
        "device": str(device),
        "train_seconds": train_seconds,
        "episodes": episode,
        "selected_step": best["step"],
        "evaluation": evaluation,
        "random_policy": random_baseline,
        "history": history,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        save_checkpoint(spec, q_net, out_dir, extra={"selected_step": best["step"]})
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return q_net, metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the navigation DQN on GridWorldEnv.")
    parser.add_argument("--profile", default=None, help="quick or full (default: $EMBODIED_PROFILE or quick)")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "navigation", help="checkpoint/metrics folder")
    parser.add_argument("--total-steps", type=int_in(1), help="override the profile's step budget")
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), help="override the profile's seed")
    parser.add_argument("--device", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int_in(1, 256), help="processes for the held-out evaluation")
    args = parser.parse_args(argv)
    require_writable(parser, args.out)
    overrides = {k: v for k, v in {"total_steps": args.total_steps, "seed": args.seed, "device": args.device,
                                   "workers": args.workers}.items() if v is not None}
    cfg = get_config("navigation", args.profile, **overrides)
    try:
        resolve_device(cfg["device"])   # a clear error before any work for a GPU that is not there
    except (RuntimeError, ValueError) as exc:
        parser.error(str(exc))
    if cfg["total_steps"] <= cfg["learning_starts"]:
        parser.error(f"--total-steps {cfg['total_steps']} leaves no training: learning starts after "
                     f"{cfg['learning_starts']} steps")
    _, metrics = train_dqn(cfg, args.out)
    print(json.dumps({"evaluation": metrics["evaluation"], "random_policy": metrics["random_policy"],
                      "train_seconds": round(metrics["train_seconds"], 1)}, indent=2))


if __name__ == "__main__":
    main()
