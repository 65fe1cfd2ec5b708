"""One way to ask any model for a decision: ``Policy.reset()`` and ``Policy.act(observation) -> Decision``.

LeRobot-style: a policy wraps a *runtime* (eager PyTorch or any exported format, see
``embodied_lib.runtime``) and turns one observation into one decision. Each model's package has its
own policy (``navigation.policy``, ``manipulation.policy``, ``hri.interpreter``); closed-loop evaluation,
the notebooks' widgets, and the deployment loop go through this interface only.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Decision:
    """What a policy decided for one observation.

    ``action``: what the robot should do (an int, an array, a command dict), ``None`` when refused.
    ``outputs``: the raw model outputs for this observation, by output name (batch dimension removed).
    ``confidence``: the model's confidence where it has one (the HRI action probability), else None.
    ``reason``: why the policy refused to act, else None.
    ``details``: what a person would want to see beside it (the HRI best guess, warnings), JSON-friendly.
    """
    action: Any
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    confidence: float | None = None
    reason: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return self.reason is not None


class Policy(ABC):
    """A decision maker over one model. ``reset()`` at the start of every episode."""

    def reset(self, episode: int | None = None) -> None:
        """Forget everything about the last episode (stateless policies have nothing to forget). ``episode``
        (its scene or map seed, when the caller knows it) lets a random policy draw each episode from its own
        seed, so an evaluation gives the same numbers however its episodes are split over processes."""

    @abstractmethod
    def act(self, observation) -> Decision:
        ...

    def for_this_call(self):
        """What a worker thread runs for one decision (``act`` here), taken on the caller's thread when the call is
        handed over: a policy with per-call state binds it now (FaultyPolicy's armed fault), so a late call still
        waiting for its thread cannot take the next tick's."""
        return self.act


class RuntimePolicy(Policy):
    """A policy over a runtime: ``runtime(*inputs) -> outputs`` with the spec's input checks in front."""

    def __init__(self, runtime):
        self.runtime, self.spec = runtime, runtime.spec

    def run_one(self, *inputs) -> dict[str, np.ndarray]:
        """Run a batch of one; the outputs by name, batch dimension removed."""
        outputs = self.runtime(*(np.asarray(x)[None] for x in inputs))
        return {s.name: o[0] for s, o in zip(self.spec.outputs, outputs)}
