"""Spoken missions, end to end: text -> HRI pipeline -> guard -> the skill it names, in simulation.

    runner = MissionRunner(interpreter, navigation_guard, manipulation_guard, grid_size=8, obstacle_fraction=0.15)
    result = runner.run("go to row 3 column 5", map_seed=1_000_000)
    result.status   # "done" | "failed" | "refused" | "stopped";  result.reason says why when not done

Skills: ``go_to(row, col)`` drives the navigation policy in the grid world to that cell (refused when the cell is
an obstacle or unreachable on this map); ``pick(colour)`` runs the grasp on the tabletop when a cube of that
colour is there (refused when it is not); ``stop`` halts whatever runs, within the tick it is heard. ``place``,
``move`` and ``rotate`` are refused with the reason (``UNSUPPORTED``): the simulated robots cannot do them.
A refused command moves nothing: no loop runs. A mission succeeds when the robot ends where the command said.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from embodied_lib.config import MISSION_SEED_BASE
from embodied_lib.deploy.loop import Channel, ControlLoop
from embodied_lib.deploy.robots import GridRobot, TabletopRobot
from embodied_lib.hri.commands import ACTIONS, decode_params, make_corpus
from embodied_lib.manipulation.evaluate import MAX_STEPS
from embodied_lib.navigation.env import GridWorldEnv, render_grid
from embodied_lib.progress import progress_bar

UNSUPPORTED = {
    "place": "place is not carried out here: the tabletop has no grid cells to put a cube on, and the grid robot "
             "has no gripper",
    "move": "move is not carried out here: the grid robot goes cell to cell and has no metric position or heading "
            "to move by; say 'go to row R column C'",
    "rotate": "rotate is not carried out here: the grid robot has no heading to turn; say 'go to row R column C'",
}
TABLE_COLOURS = ("red",)   # the tabletop scene holds one cube, the colour ManipulationNet was trained on


@dataclass
class MissionResult:
    text: str
    command: dict | None            # what the HRI pipeline understood ({"action", "params"}), None if refused
    skill: str | None               # the skill that ran
    status: str                     # done | failed | refused | stopped
    reason: str | None = None       # why it was refused, failed or stopped
    ticks: int = 0
    final: dict = field(default_factory=dict)   # where the robot ended (cell, lift)
    frames: list = field(default_factory=list)  # pictures of the rollout, when asked for

    @property
    def refused_by(self) -> str | None:
        return refusal_kind(self.reason) if self.status == "refused" else None

    def to_json(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "frames"}, "refused_by": self.refused_by}


class MissionRunner:
    def __init__(self, interpreter, navigation_guard, manipulation_guard, grid_size: int = 8,
                 obstacle_fraction: float = 0.15, table_colours=TABLE_COLOURS, rate_hz: float = 20.0,
                 free_running: bool = True):
        self.interpreter, self.navigation_guard, self.manipulation_guard = interpreter, navigation_guard, manipulation_guard
        self.grid_size, self.obstacle_fraction, self.table_colours = grid_size, obstacle_fraction, tuple(table_colours)
        self.rate_hz, self.free_running = rate_hz, free_running

    def understand(self, text: str):
        """The HRI decision with the command guard's reason: a refusal asks again."""
        decision = self.interpreter.act(text)
        if decision.refused:
            return None, f"ask again: {decision.reason}"
        return decision.action, None

    def feasibility(self, command: dict, map_seed: int) -> str | None:
        """Why the world cannot carry out an accepted command (None when it can)."""
        action, params = command["action"], command["params"]
        if action in UNSUPPORTED:
            return UNSUPPORTED[action]
        if action == "pick" and params.get("colour") not in self.table_colours:
            return f"there is no {params.get('colour')} cube on the table (it holds: {', '.join(self.table_colours)})"
        if action == "go_to":
            env = GridWorldEnv(self.grid_size, self.obstacle_fraction)
            env.reset(seed=map_seed)
            try:
                env.set_goal((params["row"], params["col"]))
            except ValueError as exc:
                return f"cannot go there: {exc}"
        return None

    def run(self, text: str, map_seed: int = MISSION_SEED_BASE, scene_seed: int = MISSION_SEED_BASE,
            interrupts: dict | None = None, keep_frames: bool = False) -> MissionResult:
        """Carry out one spoken command. ``interrupts``: {tick: text} heard while the skill runs (e.g. "stop")."""
        command, reason = self.understand(text)
        if command is None:
            return MissionResult(text, None, None, "refused", reason)
        if command["action"] == "stop":
            return MissionResult(text, command, "stop", "done", "nothing was running; the robot stays where it is")
        if problem := self.feasibility(command, map_seed):
            return MissionResult(text, command, None, "refused", problem)
        if command["action"] == "go_to":
            target = (command["params"]["row"], command["params"]["col"])
            robot = GridRobot(self.grid_size, self.obstacle_fraction, seeds=[map_seed], goal=target)
            channel, skill = Channel(robot, self.navigation_guard), "go_to"
        else:
            robot = TabletopRobot(seeds=[scene_seed], max_steps=MAX_STEPS)
            channel, skill = Channel(robot, self.manipulation_guard), "pick"
        stopped, frames = {}, []

        def on_tick(tick, loop):
            if keep_frames:
                frames.append(_picture(robot))
            if interrupts and tick in interrupts:
                heard, _ = self.understand(interrupts[tick])
                if heard is not None and heard["action"] == "stop":
                    loop.halt()
                    stopped["tick"] = tick

        loop = ControlLoop([channel], self.rate_hz, free_running=self.free_running)
        report = loop.run(on_tick=on_tick, max_ticks=4 * MAX_STEPS)
        if keep_frames:
            frames.append(_picture(robot))
        result = robot.results[0] if robot.results else {}
        final = {"cell": list(robot.cell)} if skill == "go_to" else {"lift_m": round(robot.lift, 4)}
        if hasattr(robot, "close"):
            robot.close()
        if stopped:
            return MissionResult(text, command, skill, "stopped", f"stop heard at tick {stopped['tick']}",
                                 report["ticks"], final, frames)
        success = bool(result.get("success")) and (skill != "go_to" or tuple(final["cell"]) == target)
        return MissionResult(text, command, skill, "done" if success else "failed",
                             None if success else "the robot did not end where the command said", report["ticks"],
                             final, frames)


def _picture(robot):
    if robot.name == "navigation":
        env = robot.env
        return render_grid(env.agent, env.goal, env.obstacles, env.visited)
    return robot.env.render()


def feasible_map(grid_size: int, obstacle_fraction: float, target, first_seed: int, tries: int = 100) -> int:
    """The first map seed from ``first_seed`` on where ``target`` is free, reachable, and not the start."""
    env = GridWorldEnv(grid_size, obstacle_fraction)
    for seed in range(first_seed, first_seed + tries):
        env.reset(seed=seed)
        try:
            env.set_goal(target)
        except ValueError:
            continue
        if env.agent != tuple(target):
            return seed
    raise ValueError(f"no map in {tries} seeds from {first_seed} reaches {target}")


def evaluate_missions(runner: MissionRunner, n_commands: int = 240, n_ood: int = 60, seed: int = 101,
                      progress: bool = False) -> dict:
    """Generated commands of held-out phrasings (the test templates of hri.commands) plus out-of-domain text.

    For each, what should happen is known from how it was generated: an executable go_to / pick (the map is
    chosen so the spoken cell is free; the table holds a red cube) must end where it said; stop must be
    accepted and move nothing; out-of-range, out-of-domain, absent-colour and unsupported commands must be
    refused. Returns the rates and one row per command."""
    corpus = make_corpus(0, 0, n_commands, n_ood, seed)
    rows = []
    commands = corpus["test"] + corpus["ood_test"]
    for i, c in enumerate(progress_bar(commands, desc="missions", unit="commands", disable=not progress)):
        truth = ACTIONS[c.action] if c.action >= 0 else None
        params = decode_params(truth, c.params) if truth else {}
        map_seed = scene_seed = MISSION_SEED_BASE + 1000 * i
        complete = not c.out_of_range and not c.incomplete    # an incomplete command must be asked again
        executable = (truth == "go_to" and complete) or (
            truth == "pick" and complete and params.get("colour") in runner.table_colours)
        if truth == "go_to" and complete:
            map_seed = feasible_map(runner.grid_size, runner.obstacle_fraction, (params["row"], params["col"]), map_seed)
        result = runner.run(c.text, map_seed, scene_seed)
        if executable:
            correct = result.status == "done" and result.command == {"action": truth, "params": params}
            expected = "done"
        elif truth == "stop":
            correct, expected = result.status == "done" and result.skill == "stop", "stop"
        else:
            correct, expected = result.status == "refused", "refused"
        rows.append({"text": c.text, "truth": truth, "true_params": params, "out_of_range": c.out_of_range,
                     "incomplete": c.incomplete, "expected": expected, "correct": bool(correct), **result.to_json()})
    return summarise_missions(rows)


def summarise_missions(rows: list[dict]) -> dict:
    def rate(selected):
        return {"n": len(selected), "rate": float(np.mean([r["correct"] for r in selected])) if selected else None}

    executable = [r for r in rows if r["expected"] == "done"]
    accepted = [r for r in rows if r["skill"] in ("go_to", "pick")]
    by_truth = {}
    for r in rows:
        key = r["truth"] or "out_of_domain"
        key += " (out of range)" if r["out_of_range"] else " (incomplete)" if r.get("incomplete") else ""
        by_truth.setdefault(key, []).append(r)
    return {
        "commands": len(rows),
        "go_to_pick_success": rate(executable),
        # accepted and carried out: did the robot end where the *spoken* command said (not just where it understood)?
        "accepted_success": rate(accepted),
        "accepted_ended_where_understood": {"n": len(accepted), "rate": float(np.mean([r["status"] == "done" for r in accepted]))
                                            if accepted else None},
        "refusals_correct": rate([r for r in rows if r["expected"] == "refused"]),
        "stop_correct": rate([r for r in rows if r["expected"] == "stop"]),
        "by_true_action": {k: rate(v) for k, v in sorted(by_truth.items())},
        "refusals_by_kind": dict(Counter(r["refused_by"] for r in rows if r["status"] == "refused").most_common()),
        "rows": rows,
    }


def refusal_kind(reason: str) -> str:
    """A short name for why a command was refused, for tables."""
    if reason.startswith("ask again: low confidence"):
        return "ask again: low confidence"
    if reason.startswith("ask again: cannot") and reason.endswith("(please say it again)"):
        return "ask again: a value not said"
    if reason.startswith("ask again: cannot"):
        return "ask again: parameter out of range"
    if reason.startswith("ask again"):
        return "ask again: not a command (text)"
    if reason.startswith("there is no"):
        return "cube not on the table"
    if reason.startswith("cannot go there"):
        return "cell blocked or unreachable"
    return next((f"{a} not supported here" for a, why in UNSUPPORTED.items() if reason == why), "other")
