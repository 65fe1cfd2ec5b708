"""The real-time control loop: sense every channel, guard(policy) every channel, act every channel, at a fixed rate.

ros2_control-style scheduling: tick ``k`` is released at the absolute time ``t0 + k * period`` (never
``sleep(period)`` after the work, which drifts by the work's length), the watchdog deadline of every policy
is ``release + infer_budget * period``, and a tick whose last action lands after ``release + period`` is a
deadline miss. An overrun is counted the way ros2_control counts it: a tick that ends ``n`` periods after its
release costs ``ceil(n)`` missed cycles (itself and the releases that passed), and the next tick waits for the next
release on the grid instead of bursting through the ones it missed; a tick woken more than a period late likewise
skips every release that has passed.

Per tick it records sense / render / infer / act times per channel, the controller's own compute (the
tick's work minus the simulated camera's rendering and episode resets: on a robot the camera runs beside
the controller), end-to-end latency (sensor capture -> action applied), deadline met or missed, every
intervention of the guard by cause, and every injected fault with whether it ended in its fallback in the
same tick. ``free_running=True`` runs ticks back to back (evaluation, soak) with the same deadlines judged.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import psutil

from embodied_lib.deploy.faults import EXPECTED_CAUSE, SENSOR_FAULTS, FaultPlan, FaultyPolicy, apply_sensor_fault
from embodied_lib.deploy.guard import Guard
from embodied_lib.progress import progress_bar

MAX_EXAMPLES = 200  # interventions and unhandled faults kept verbatim (the counts cover all of them)


@dataclass
class Channel:
    """One robot subsystem the loop drives: its robot (sensor + actuator), its guarded policy, its faults."""
    robot: object
    guard: Guard
    faults: FaultPlan | None = None
    _previous: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.faults is not None and self.faults.kinds and not isinstance(self.guard.policy, FaultyPolicy):
            raise ValueError(f"{self.robot.name}: faults need the guard's policy wrapped in FaultyPolicy")

    @property
    def name(self) -> str:
        return self.robot.name


class TickLog:
    """Per-tick times in preallocated arrays (grown by doubling when the tick count is not known)."""

    PER_CHANNEL = ("sense_s", "render_s", "infer_s", "act_s", "e2e_s")
    PER_TICK = ("compute_s", "wall_s", "start_late_s")

    def __init__(self, channels: list[str], capacity: int):
        self.channels, self.n = channels, 0
        self.arrays = {k: np.zeros((capacity, len(channels))) for k in self.PER_CHANNEL}
        self.arrays.update({k: np.zeros(capacity) for k in self.PER_TICK})
        self.arrays["missed"] = np.zeros(capacity, dtype=bool)
        self.arrays["tick"] = np.zeros(capacity, dtype=np.int64)   # which release each row ran (overruns skip some)

    def next_row(self) -> int:
        if self.n == len(self.arrays["missed"]):
            self.arrays = {k: np.concatenate([v, np.zeros_like(v)]) for k, v in self.arrays.items()}
        self.n += 1
        return self.n - 1

    def column(self, key: str, channel: int | None = None) -> np.ndarray:
        values = self.arrays[key][:self.n]
        return values if channel is None else values[:, channel]


def percentiles_ms(values) -> dict:
    values = np.asarray(values, dtype=np.float64) * 1e3
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": round(float(np.percentile(values, 50)), 3), "p99": round(float(np.percentile(values, 99)), 3),
            "max": round(float(values.max()), 3)}


class ControlLoop:
    def __init__(self, channels: list[Channel], rate_hz: float = 20.0, infer_budget: float = 0.6,
                 free_running: bool = False, clock=time.perf_counter, sleep=time.sleep):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        if not 0 < infer_budget <= 1:
            raise ValueError(f"infer_budget is a share of the period in (0, 1], got {infer_budget}")
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must differ, got {names}")
        self.channels, self.rate_hz, self.period = channels, float(rate_hz), 1.0 / rate_hz
        self.infer_budget, self.free_running, self.clock, self.sleep = infer_budget, free_running, clock, sleep
        self.halted = False

    def halt(self) -> None:
        """Stop acting from the next channel on: a spoken ``stop`` lands here (checked before every action)."""
        self.halted = True

    def run(self, ticks: int | None = None, until_done: bool = True, max_ticks: int = 1_000_000,
            on_tick=None, progress: bool = False, desc: str = "control loop") -> dict:
        """Run ``ticks`` ticks, or (``until_done``) until every robot has used up its episode seeds.

        ``on_tick(tick, loop)`` runs at the start of every tick (missions feed commands there)."""
        limit = ticks if ticks is not None else max_ticks
        log = TickLog([c.name for c in self.channels], ticks or 1024)
        interventions = {c.name: Counter() for c in self.channels}
        faults = {c.name: {} for c in self.channels}
        examples, unhandled = [], []
        for channel in self.channels:
            if channel.robot.next_episode():
                channel._previous = channel.robot.sense()
                channel.guard.warm_up(channel._previous)
        process = psutil.Process()
        rss_start = process.memory_info().rss
        warmed_at = min(1000, limit // 10)   # RSS after this many ticks: start-up allocations are done by then
        rss_warm, warming = rss_start, True
        bar = progress_bar(total=limit if ticks is not None else None, desc=desc, unit="ticks", disable=not progress, mininterval=1.0)
        t0 = self.clock()
        tick = skipped = 0
        while tick < limit:
            if until_done and ticks is None and all(c.robot.finished for c in self.channels):
                break
            release = t0 + tick * self.period
            if not self.free_running:
                now = self.clock()
                if now > release + self.period:      # woke a whole period late: every passed release is lost
                    behind = min(math.ceil((now - release) / self.period), limit - tick)
                    skipped += behind
                    tick += behind
                    continue
                if release > now:
                    self.sleep(release - now)
            else:
                release = t0 = self.clock() - tick * self.period   # back to back: every tick starts now
            row = log.next_row()
            log.arrays["tick"][row] = tick
            started = self.clock()
            log.arrays["start_late_s"][row] = started - release
            if on_tick is not None:
                on_tick(tick, self)
            deadline = started + self.infer_budget * self.period
            excluded = 0.0
            active = [(i, c) for i, c in enumerate(self.channels) if not (c.robot.finished or self.halted)]
            # every sensor first, then every decision, then every action: a late model in one channel must not
            # delay another channel's camera frame past the shared deadline
            sensed = [self._sense(channel, i, log, row) for i, channel in active]
            # every model started before any is waited for: each guard has its own worker and waits to the deadline
            # on its own, so a late model in one channel costs the other channel nothing
            attempts = [channel.guard.start(reading, deadline, tick_started=started)
                        for (i, channel), (reading, _, _) in zip(active, sensed)]
            decided = [self._finish(channel, attempt, kind, log, row, i)
                       for (i, channel), attempt, (_, _, kind) in zip(active, attempts, sensed)]
            for (i, channel), (_, fresh, kind), step in zip(active, sensed, decided):
                self._act(channel, i, log, row, fresh, kind, step, interventions, faults, examples, unhandled, tick)
                excluded += channel.robot.last_render_s
                if channel.robot.done:
                    reset_started = self.clock()
                    channel.robot.next_episode()
                    channel.guard.reset()
                    excluded += self.clock() - reset_started
            finished = self.clock()
            log.arrays["wall_s"][row] = finished - started
            log.arrays["compute_s"][row] = finished - started - excluded
            log.arrays["missed"][row] = finished > release + self.period
            tick += 1
            if log.arrays["missed"][row] and not self.free_running:
                # ros2_control's overrun: a tick that ends n periods after its release costs ceil(n) cycles, itself
                # and the releases that passed during it; the next tick starts on the next release of the grid
                passed = min(math.ceil((finished - release) / self.period) - 1, limit - tick)
                skipped += passed
                tick += passed
            bar.update(1)
            if warming and tick >= warmed_at:   # >=: an overrun may skip past it
                rss_warm, warming = process.memory_info().rss, False
            if self.halted:
                break
        bar.close()
        rss_end = process.memory_info().rss
        return self._report(log, skipped, interventions, faults, examples, unhandled, rss_start, rss_warm, rss_end)

    def _sense(self, channel, i, log, row):
        """Read one channel's sensors, with a sensor fault applied or a model fault armed."""
        t_sense = self.clock()
        reading = channel.robot.sense()
        kind = channel.faults.draw() if channel.faults is not None else None
        if kind in SENSOR_FAULTS:
            reading, fresh = apply_sensor_fault(kind, reading, channel._previous), reading
        else:
            fresh = reading
            if kind is not None and channel.guard.policy is not None:
                channel.guard.policy.arm(kind)   # a FaultyPolicy (checked in Channel.__post_init__)
        channel._previous = fresh
        render = channel.robot.last_render_s
        log.arrays["sense_s"][row, i], log.arrays["render_s"][row, i] = self.clock() - t_sense - render, render
        return reading, fresh, kind

    def _finish(self, channel, attempt, kind, log, row, i):
        step = channel.guard.finish(attempt)
        if kind is not None and kind not in SENSOR_FAULTS and channel.guard.policy is not None:
            channel.guard.policy.arm(None)   # a fault armed for a model the guard never called dies with its tick
        log.arrays["infer_s"][row, i] = step.infer_s
        return step

    def _act(self, channel, i, log, row, fresh, kind, step, interventions, faults, examples, unhandled, tick):
        t_act = self.clock()
        if not self.halted:
            channel.robot.apply(step.action)
        t_done = self.clock()
        channel.robot.tick_done()
        log.arrays["act_s"][row, i] = t_done - t_act
        log.arrays["e2e_s"][row, i] = t_done - (fresh.stamp if fresh is not None else t_act)
        if step.cause is not None:
            interventions[channel.name][step.cause] += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append({"tick": tick, "channel": channel.name, "cause": step.cause, "detail": step.detail[:200]})
        if kind is not None:
            entry = faults[channel.name].setdefault(kind, {"injected": 0, "fell_back_same_tick": 0, "cause_as_expected": 0})
            entry["injected"] += 1
            entry["fell_back_same_tick"] += int(step.fallback)
            entry["cause_as_expected"] += int(step.cause == EXPECTED_CAUSE[kind])
            if not step.fallback and len(unhandled) < MAX_EXAMPLES:
                unhandled.append({"tick": tick, "channel": channel.name, "fault": kind, "cause": step.cause})

    def _report(self, log, skipped, interventions, faults, examples, unhandled, rss_start, rss_warm, rss_end) -> dict:
        missed = int(log.column("missed").sum()) + skipped
        channels = {}
        for i, channel in enumerate(self.channels):
            results = channel.robot.results
            channels[channel.name] = {
                "episodes": len(results),
                "success_rate": float(np.mean([r["success"] for r in results])) if results else None,
                "sense_ms": percentiles_ms(log.column("sense_s", i)), "render_ms": percentiles_ms(log.column("render_s", i)),
                "infer_ms": percentiles_ms(log.column("infer_s", i)), "act_ms": percentiles_ms(log.column("act_s", i)),
                "end_to_end_ms": percentiles_ms(log.column("e2e_s", i)),
                "interventions": dict(interventions[channel.name]), "faults": faults[channel.name],
                "guard_startup_error": channel.guard.startup_error, "model_file": getattr(channel.guard, "model_file", None),
                "results": list(results)}
        return {
            "rate_hz": self.rate_hz, "free_running": self.free_running, "infer_budget": self.infer_budget,
            "ticks": log.n + skipped, "deadline_misses": missed,
            "compute_ms": percentiles_ms(log.column("compute_s")), "wall_ms": percentiles_ms(log.column("wall_s")),
            "start_late_ms": percentiles_ms(log.column("start_late_s")),
            "channels": channels, "intervention_examples": examples, "unhandled_faults": unhandled,
            "rss_mb": {"start": round(rss_start / 2**20, 1), "after_warm_up": round(rss_warm / 2**20, 1),
                       "end": round(rss_end / 2**20, 1), "growth": round((rss_end - rss_start) / 2**20, 1),
                       "growth_after_warm_up": round((rss_end - rss_warm) / 2**20, 1)},
            "timeline": {"compute_ms": (log.column("compute_s") * 1e3).round(3).tolist()[:20_000],
                         "wall_ms": (log.column("wall_s") * 1e3).round(3).tolist()[:20_000],
                         "tick": log.column("tick").tolist()[:20_000]},
        }
