"""Fault injection for the control loop: the failures a deployed policy meets, on purpose and counted.

Each kind has the guard cause it must end in, within the tick it happens (``EXPECTED_CAUSE``). Model faults
are injected by ``FaultyPolicy`` around the real policy; sensor faults by the loop around the sensor reading
(``apply_sensor_fault``). A model file corrupted before start-up is the seventh kind, tested where the
controller opens its models (``deploy.controller.open_guard``).
"""
from __future__ import annotations

import functools
import time

import numpy as np

from embodied_lib.deploy.guard import Reading
from embodied_lib.policy import Decision, Policy

FAULT_KINDS = ("model_exception", "nan_output", "out_of_bounds_output", "late_inference", "dropped_frame",
               "stale_frame")
EXPECTED_CAUSE = {"model_exception": "model_error", "nan_output": "non_finite_output",
                  "out_of_bounds_output": "out_of_bounds_output", "late_inference": "deadline",
                  "dropped_frame": "missing_sensor", "stale_frame": "stale_sensor",
                  "corrupt_model": "model_unavailable"}
SENSOR_FAULTS = frozenset({"dropped_frame", "stale_frame"})


class InjectedFault(RuntimeError):
    """What an injected ``model_exception`` raises."""


class FaultPlan:
    """Which fault (if any) hits each tick: each kind in ``kinds`` with equal share, ``probability`` per tick."""

    def __init__(self, kinds=FAULT_KINDS, probability: float = 0.2, seed: int = 0):
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {list(FAULT_KINDS)}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"fault probability must be in [0, 1], got {probability}")
        self.kinds, self.probability = tuple(kinds), float(probability)
        self.rng = np.random.default_rng(seed)

    def draw(self) -> str | None:
        if not self.kinds or self.rng.random() >= self.probability:
            return None
        return self.kinds[int(self.rng.integers(len(self.kinds)))]


class FaultyPolicy(Policy):
    """A policy whose next ``act`` fails the way ``arm(kind)`` says; otherwise the wrapped policy, untouched.

    ``late_s``: how long an injected late inference sleeps before answering (past the watchdog's deadline)."""

    def __init__(self, policy, late_s: float):
        self.policy, self.late_s, self._armed = policy, float(late_s), None

    def reset(self, episode: int | None = None) -> None:
        self.policy.reset(episode)

    def arm(self, kind: str) -> None:
        self._armed = kind

    def act(self, observation) -> Decision:
        kind, self._armed = self._armed, None
        return self._act(kind, observation)

    def for_this_call(self):
        kind, self._armed = self._armed, None   # taken now, on the loop's thread, not when a worker gets to it
        return functools.partial(self._act, kind)

    def _act(self, kind: str | None, observation) -> Decision:
        if kind == "model_exception":
            raise InjectedFault("injected fault: the model raised")
        if kind == "late_inference":
            time.sleep(self.late_s)
        decision = self.policy.act(observation)
        if kind == "nan_output":
            outputs = {k: np.full_like(np.asarray(v, dtype=np.float32), np.nan) for k, v in decision.outputs.items()}
            return Decision(decision.action, outputs, decision.confidence, decision.reason, decision.details)
        if kind == "out_of_bounds_output":
            action = decision.action
            bad = 99 if isinstance(action, (int, np.integer)) else np.full_like(np.asarray(action, np.float32), 5.0)
            return Decision(bad, decision.outputs, decision.confidence, decision.reason, decision.details)
        return decision


def apply_sensor_fault(kind: str | None, reading: Reading | None, previous: Reading | None) -> Reading | None:
    """A dropped frame gives no reading; a stale one repeats the previous reading (same sequence number)."""
    if kind == "dropped_frame":
        return None
    if kind == "stale_frame":
        return previous if previous is not None else None
    return reading
