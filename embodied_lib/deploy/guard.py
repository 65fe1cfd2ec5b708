"""The safety layer: one ``Guard`` around any policy, so the robot acts on time with something safe.

    guard = Guard(NavigationPolicy(runtime), rules_for(manifest))
    step = guard.act(reading, deadline=tick_start + budget)
    step.action      # what the robot does this tick (the fallback when anything failed)
    step.cause       # None, or why the guard stepped in (a key of CAUSES)

Order inside ``act``: the sensor reading (missing? stale?) -> the model's input contract and the robot's
own limits -> the policy, under a watchdog thread when a deadline is given -> the outputs (finite, inside
the declared bounds, a legal move) -> the action, or the model's fallback. Nothing raises out of ``act``:
every failure becomes the fallback with its cause. The rules (bounds, workspace, legal moves, fallback)
come from the ``safety`` block of the model's spec metadata, which the manifest carries to C++ and Rust.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied_lib.spec import InputError

# Why the guard stepped in. "corrected" causes change the action and keep the model's intent; the others
# replace it with the fallback.
CAUSES = {
    "missing_sensor": "no sensor reading this tick (a dropped frame)",
    "stale_sensor": "the reading is one the controller already used, or older than allowed",
    "bad_input": "the reading breaks the model's input contract or the robot's limits",
    "model_unavailable": "the model did not load at start-up",
    "busy": "the previous inference is still running (it overran its deadline)",
    "deadline": "inference did not finish before the deadline (watchdog)",
    "model_error": "the model raised an exception",
    "non_finite_output": "the model output NaN or Inf",
    "out_of_bounds_output": "the output is outside the bounds the manifest declares",
    "illegal_move": "corrected: the chosen move leads into an obstacle or off the grid",
    "workspace_limit": "corrected: the step would leave the workspace, so it was shortened",
}
CORRECTED = frozenset({"illegal_move", "workspace_limit"})


@dataclass
class Reading:
    """One sensor sample: the observation, its sequence number and when it was captured (clock seconds)."""
    value: Any
    seq: int
    stamp: float


@dataclass
class GuardedAction:
    action: Any                 # what the robot does this tick
    cause: str | None = None    # None when the model's own action went through untouched
    detail: str = ""
    infer_s: float = 0.0        # time spent waiting for the model (0 when it never ran)
    decision: Any = None        # the policy's Decision when there was one

    @property
    def fallback(self) -> bool:
        return self.cause is not None and self.cause not in CORRECTED


class NavigationRules:
    """Grid robot: the argmax move must be legal (read from the observation itself); fallback = stay."""
    name = "navigation"

    def __init__(self, grid_size: int, obstacle_channel: int, action_deltas, valid=(0.0, 1.0)):
        self.grid_size, self.obstacle_channel = grid_size, obstacle_channel
        self.action_deltas = np.asarray(action_deltas, dtype=np.int64)
        self.valid = tuple(valid)

    @classmethod
    def from_description(cls, description: dict) -> "NavigationRules":
        metadata, safety = description["metadata"], description["metadata"]["safety"]
        return cls(metadata["grid_size"], safety["obstacle_channel"], safety["action_deltas"],
                   description["inputs"][0]["valid"])

    def check_input(self, observation) -> str | None:
        obs = np.asarray(observation)
        size = self.grid_size * self.grid_size * (self.obstacle_channel + 2)
        if obs.shape != (size,) or obs.dtype != np.float32:
            return f"grid observation must be float32 [{size}], got {obs.dtype} {list(obs.shape)}"
        if not np.isfinite(obs).all() or obs.min() < self.valid[0] or obs.max() > self.valid[1]:
            return f"grid observation must be finite and inside {list(self.valid)}"
        return None

    def fallback(self, observation):
        return None  # stay: send no move

    def check_output(self, observation, decision) -> tuple[Any, str | None, str]:
        q = np.asarray(decision.outputs["q_values"], dtype=np.float64)
        action = decision.action
        if not isinstance(action, (int, np.integer)) or not 0 <= action < len(self.action_deltas):
            return self.fallback(observation), "out_of_bounds_output", f"move {action!r} is not one of the {len(q)} moves"
        n, centre = self.grid_size, self.grid_size // 2
        blocked = np.asarray(observation).reshape(-1, n, n)[self.obstacle_channel]
        legal = [bool(blocked[centre + dr, centre + dc] == 0) for dr, dc in self.action_deltas]
        if legal[action]:
            return int(action), None, ""
        if not any(legal):
            return self.fallback(observation), "illegal_move", "no legal move: stay"
        best = max((a for a in range(len(legal)) if legal[a]), key=lambda a: q[a])
        return best, "illegal_move", f"move {action} blocked; took {best}, the best legal move"


class ManipulationRules:
    """Gripper: actions inside their bounds, position targets inside the workspace; fallback = hold."""
    name = "manipulation"

    def __init__(self, action_bounds, max_step_m: float, workspace_low, workspace_high, tolerance_m: float,
                 position_fields, gripper_command_field: int, state_size: int, image_shape, state_valid):
        self.low_action, self.high_action = (float(b) for b in action_bounds)
        self.max_step = float(max_step_m)
        self.workspace_low, self.workspace_high = np.asarray(workspace_low), np.asarray(workspace_high)
        self.tolerance = float(tolerance_m)
        self.position_fields, self.gripper_field = list(position_fields), int(gripper_command_field)
        self.state_size, self.image_shape, self.state_valid = int(state_size), tuple(image_shape), tuple(state_valid)
        self.last_gripper = -1.0   # open, until a state says otherwise

    @classmethod
    def from_description(cls, description: dict) -> "ManipulationRules":
        metadata = description["metadata"]
        s, (image, state) = metadata["safety"], description["inputs"]
        channels, height, width = image["shape"][1:]
        return cls(s["action_bounds"], s["max_step_m"], s["workspace_m"]["low"], s["workspace_m"]["high"],
                   s["workspace_m"]["tolerance"], s["position_fields"], s["gripper_command_field"],
                   state["shape"][1], (height, width, channels), state["valid"])

    def check_input(self, observation) -> str | None:
        image, state = observation.get("image"), np.asarray(observation.get("state"))
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != self.image_shape:
            return (f"camera frame must be uint8 {list(self.image_shape)}, got "
                    f"{getattr(image, 'dtype', type(image).__name__)} {list(getattr(image, 'shape', []))}")
        if state.shape != (self.state_size,) or not np.isfinite(state).all():
            return f"robot state must be {self.state_size} finite floats, got shape {list(state.shape)}"
        if state.min() < self.state_valid[0] or state.max() > self.state_valid[1]:
            return f"robot state outside its valid range {list(self.state_valid)}"
        position = state[self.position_fields]
        outside = (position < self.workspace_low - self.tolerance) | (position > self.workspace_high + self.tolerance)
        if outside.any():
            return f"gripper at {np.round(position, 3).tolist()} is outside the workspace"
        self.last_gripper = 1.0 if state[self.gripper_field] > 0 else -1.0
        return None

    def fallback(self, observation):
        return np.array([0.0, 0.0, 0.0, self.last_gripper], dtype=np.float32)

    def check_output(self, observation, decision) -> tuple[Any, str | None, str]:
        action = np.asarray(decision.action, dtype=np.float32)
        if action.shape != (4,):
            return self.fallback(observation), "out_of_bounds_output", f"action has shape {action.shape}, expected (4,)"
        if (action < self.low_action).any() or (action > self.high_action).any():
            return (self.fallback(observation), "out_of_bounds_output",
                    f"action {np.round(action, 3).tolist()} outside [{self.low_action:g}, {self.high_action:g}]")
        position = np.asarray(observation["state"], dtype=np.float64)[self.position_fields]
        target = position + action[:3] * self.max_step
        inside = np.clip(target, self.workspace_low, self.workspace_high)
        if (inside != target).any():
            shortened = action.copy()
            shortened[:3] = ((inside - position) / self.max_step).astype(np.float32)
            return shortened, "workspace_limit", f"target {np.round(target, 3).tolist()} shortened to the workspace edge"
        return action, None, ""


def rules_for(description: dict):
    """The guard rules of a model, read from its manifest or ``spec.to_json()`` (the same ``inputs`` and
    ``metadata.safety``)."""
    name = description.get("model")
    kinds = {"navigation": NavigationRules, "manipulation": ManipulationRules}
    if name not in kinds:
        raise ValueError(f"{name} has no control-loop guard (commands are guarded by deploy.missions)")
    if "safety" not in description.get("metadata", {}):
        raise ValueError(f"{name}: the manifest has no metadata.safety block; re-export the model")
    return kinds[name].from_description(description)


class Guard:
    """Checks, watchdog and fallback around one policy.

    ``policy`` None means the model could not be loaded (``startup_error`` says why): every tick falls back.
    ``max_age_s``: a reading older than this at decision time is stale (None: only a repeated one is).
    The watchdog runs inference on one worker thread and waits for it until the deadline; a late result is
    dropped, and while it is still running the next ticks fall back with ``busy``.
    """

    def __init__(self, policy, rules, max_age_s: float | None = None, startup_error: str | None = None,
                 clock=time.perf_counter, model_file: str | None = None):
        self.policy, self.rules, self.max_age_s, self.clock = policy, rules, max_age_s, clock
        self.startup_error = startup_error
        self.model_file = model_file   # the file the policy runs, for reports
        self.name = rules.name
        self._executor = None
        self._pending = None
        self._last_seq = None

    def reset(self, episode: int | None = None) -> None:
        """A new episode: the policy forgets; sequence numbers go on (a reading is never fresh twice)."""
        if self.policy is not None:
            self.policy.reset(episode)

    def warm_up(self, reading: Reading | None) -> None:
        """Before a loop starts: forget the last sensor stream's sequence numbers (a new robot counts from 1)
        and run one inference (first calls allocate and plan: 30 ms and more for ExecuTorch)."""
        self._last_seq = None
        if self.policy is not None and reading is not None and self.rules.check_input(reading.value) is None:
            try:  # on the watchdog's own thread, as the loop will call it
                self._infer(reading.value, self.clock() + 30.0)
            except Exception:  # the loop will meet it again, and fall back, with the cause recorded
                pass
        self.reset()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _fall_back(self, observation, cause: str, detail: str, infer_s: float = 0.0, decision=None) -> GuardedAction:
        return GuardedAction(self.rules.fallback(observation), cause, detail, infer_s, decision)

    def act(self, reading: Reading | None, deadline: float | None = None,
            tick_started: float | None = None) -> GuardedAction:
        """The action for this tick. ``deadline``: when the watchdog gives up on the model (clock seconds);
        ``tick_started``: a reading captured before this time is from an earlier tick, so stale."""
        return self.finish(self.start(reading, deadline, tick_started))

    def start(self, reading: Reading | None, deadline: float | None = None,
              tick_started: float | None = None) -> "Attempt":
        """The first half of ``act``: the checks before the model, then the model started on this guard's own
        worker (with a deadline). The loop starts every channel's model before it waits for any
        (``finish``), so a late model spends only its own channel's deadline."""
        attempt = Attempt(deadline=deadline)
        if reading is None:
            attempt.step = self._fall_back(None, "missing_sensor", "no reading this tick")
            return attempt
        observation = attempt.observation = reading.value
        if self._last_seq is not None and reading.seq <= self._last_seq:
            attempt.step = self._fall_back(observation, "stale_sensor", f"reading {reading.seq} was already used")
        elif tick_started is not None and reading.stamp < tick_started:
            attempt.step = self._fall_back(observation, "stale_sensor", "reading captured before this tick began")
        elif self.max_age_s is not None and self.clock() - reading.stamp > self.max_age_s:
            attempt.step = self._fall_back(observation, "stale_sensor",
                                           f"reading is {1e3 * (self.clock() - reading.stamp):.1f} ms old")
        if attempt.step is not None:
            return attempt
        self._last_seq = reading.seq
        if problem := self.rules.check_input(observation):
            attempt.step = self._fall_back(observation, "bad_input", problem)
        elif self.policy is None:
            attempt.step = self._fall_back(observation, "model_unavailable", self.startup_error or "no model")
        elif self._pending is not None and not self._pending.done():
            attempt.step = self._fall_back(observation, "busy", "the previous inference has not finished")
        else:
            self._pending = None
            attempt.started = self.clock()
            if deadline is None:   # no watchdog: run it here (evaluation)
                try:
                    attempt.decision = self.policy.act(observation)
                except Exception as exc:
                    attempt.error = exc
            else:
                attempt.future = self._submit(observation)
        return attempt

    def finish(self, attempt: "Attempt") -> GuardedAction:
        """The second half of ``act``: wait for the model until the attempt's deadline, check its outputs."""
        if attempt.step is not None:
            return attempt.step
        observation, deadline = attempt.observation, attempt.deadline
        try:
            decision = self._wait(attempt)
        except FutureTimeout:
            return self._fall_back(observation, "deadline", "inference had not finished by the deadline",
                                   self.clock() - attempt.started)
        except InputError as exc:
            return self._fall_back(observation, "bad_input", str(exc), self.clock() - attempt.started)
        except Exception as exc:  # any model failure ends in the fallback, never in a crash
            return self._fall_back(observation, "model_error", f"{type(exc).__name__}: {exc}",
                                   self.clock() - attempt.started)
        infer_s = self.clock() - attempt.started
        for name, value in decision.outputs.items():
            if not np.isfinite(np.asarray(value, dtype=np.float64)).all():
                return self._fall_back(observation, "non_finite_output", f"{name} holds NaN or Inf", infer_s, decision)
        action, cause, detail = self.rules.check_output(observation, decision)
        return GuardedAction(action, cause, detail, infer_s, decision)

    def _wait(self, attempt: "Attempt"):
        if attempt.future is None:
            if attempt.error is not None:
                raise attempt.error
            return attempt.decision
        try:
            decision, finished = attempt.future.result(timeout=max(0.0, attempt.deadline - self.clock()))
        except FutureTimeout:
            self._pending = attempt.future   # still running: the next ticks fall back with "busy" until it ends
            raise
        if finished > attempt.deadline:
            # done, but after the deadline: a loaded machine can hold this thread past the worker's finish,
            # and result() hands back a finished future even with no time left; judged by when it finished
            raise FutureTimeout()
        return decision

    def _infer(self, observation, deadline):
        """The model on the watchdog's worker, waited for until ``deadline`` (warm-up)."""
        return self._wait(Attempt(deadline=deadline, observation=observation, started=self.clock(),
                                  future=self._submit(observation)))

    def _submit(self, observation):
        """The model on this guard's one worker thread; the call (and any fault armed for it) bound now."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-inference")
        return self._executor.submit(self._timed_act, self.policy.for_this_call(), observation)

    def _timed_act(self, act, observation):
        decision = act(observation)
        return decision, self.clock()


@dataclass
class Attempt:
    """One tick's decision between ``Guard.start`` and ``Guard.finish``."""
    deadline: float | None = None
    observation: Any = None
    step: GuardedAction | None = None   # decided before the model (a check failed, or the model is busy)
    started: float = 0.0
    future: Any = None                  # the model on the guard's worker
    decision: Any = None                # when it ran without a watchdog: its decision, or
    error: Exception | None = None      # what it raised
