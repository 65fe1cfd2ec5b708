"""The native controller (``native/cpp/controller``): the episodes it plays, running it, and its results beside Python's.

    episodes = write_episodes(exports_root, "runs/controller/episodes", maps=500, scenes=50)
    report = run_controller("evaluate", exports_root, episodes, out="runs/controller/evaluate.json")

Python writes the worlds once and the C++ controller reads them, so both sides play the same episodes:
``tabletop.xml`` (TabletopEnv's MJCF), ``scenes.json`` (each held-out scene as MuJoCo's integration state before
it settles, and the constants of the task: control rate, step size, finger travel, lift height, hold radius) and
``maps.json`` (each held-out grid map: obstacles, start, goal, shortest path, and the observation layout). The
models, their input contracts and their safety rules come from the export manifests, as for every runner.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from embodied_lib.config import EVAL_SEED_BASE
from embodied_lib.deploy.controller import BackgroundRun, save_result
from embodied_lib.deploy.missions import TABLE_COLOURS, UNSUPPORTED
from embodied_lib.export.manifest import read_manifest
from embodied_lib.manipulation import env as tabletop
from embodied_lib.manipulation.evaluate import MAX_STEPS
from embodied_lib.native import CPP_BUILD, onnxruntime_library, shared_libraries
from embodied_lib.navigation import env as grid

CONTROLLER = CPP_BUILD / "embodied_controller"
ALLOC_COUNTER = CPP_BUILD / "libembodied_alloc_counter.so"
COMMANDS = ("evaluate", "run", "check-world", "missions")
EXPERIMENTS = ("world", "evaluate", "realtime", "rate", "faults", "soak", "missions")   # run_all's, in its order


def write_episodes(exports_root, out_dir, maps: int, scenes: int, offset: int = 0) -> Path:
    """The held-out maps and scenes (seeds ``EVAL_SEED_BASE + offset ...``, the ones the Python loop plays) as files
    the controller reads."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = read_manifest(Path(exports_root) / "navigation")["metadata"]
    size, fraction = metadata["grid_size"], metadata["obstacle_fraction"]
    env = grid.GridWorldEnv(size, fraction)
    rows = []
    for seed in range(EVAL_SEED_BASE + offset, EVAL_SEED_BASE + offset + maps):
        env.reset(seed=seed)
        rows.append({"seed": seed, "obstacles": env.obstacles.astype(int).tolist(), "start": list(env.agent),
                     "goal": list(env.goal), "shortest_path": env.shortest_path})
    (out_dir / "maps.json").write_text(json.dumps({
        "grid_size": size, "obstacle_fraction": fraction, "max_steps": env.max_steps,
        "max_ticks": 2 * env.max_steps,   # stays use ticks, not steps (deploy.robots.GridRobot)
        "channels": list(grid.CHANNELS), "action_deltas": grid.ACTION_DELTAS.tolist(), "maps": rows}))
    world = tabletop.TabletopEnv(max_steps=MAX_STEPS)
    try:
        states = [{"seed": seed, "state": world.initial_state(seed).tolist()}
                  for seed in range(EVAL_SEED_BASE + offset, EVAL_SEED_BASE + offset + scenes)]
    finally:
        world.close()
    (out_dir / "tabletop.xml").write_text(tabletop.SCENE_XML)
    (out_dir / "scenes.json").write_text(json.dumps({
        "model": "tabletop.xml", "state_spec": "mjSTATE_INTEGRATION", "settle_steps": tabletop.SETTLE_STEPS,
        "camera": "front", "image_size": tabletop.IMAGE_SIZE, "max_steps": MAX_STEPS,
        "substeps": round(1.0 / tabletop.CONTROL_HZ / tabletop.PHYSICS_DT), "max_step_m": tabletop.MAX_STEP,
        "finger_closed": tabletop.FINGER_CLOSED, "lift_height": tabletop.LIFT_HEIGHT,
        "hold_radius": tabletop.HOLD_RADIUS, "state_fields": list(tabletop.STATE_FIELDS),
        "joints": {"position": ["gx", "gy", "gz"], "fingers": ["fl", "fr"]}, "gripper_body": "gripper",
        "cube_body": "cube", "scenes": states}))
    (out_dir / "skills.json").write_text(json.dumps({
        "go_to": "navigation", "pick": "manipulation", "stop": "halt", "table_colours": list(TABLE_COLOURS),
        "unsupported": UNSUPPORTED, "max_ticks": 4 * MAX_STEPS}))
    return out_dir


def controller_env() -> dict:
    """Mesa's EGL for the camera (as Python's MUJOCO_GL=egl), and ONNX Runtime's library for the Rust pipeline."""
    return {**os.environ, "MUJOCO_GL": "egl", "ORT_DYLIB_PATH": str(onnxruntime_library())}


def run_controller(command: str, exports_root, episodes, out=None, flags=(), timeout: float = 3600,
                   count_allocations: bool = False, binary: Path | None = None) -> dict:
    """Run ``embodied_controller COMMAND`` and return its JSON report (also written to ``out`` when given).
    ``count_allocations``: preload the counting allocator, so the report says how many heap allocations the loop
    made after start-up. Raises RuntimeError with the controller's own error line when it fails."""
    if command not in COMMANDS:
        raise ValueError(f"unknown controller command {command!r}; one of {COMMANDS}")
    binary = Path(binary or CONTROLLER)
    if not binary.is_file():
        raise FileNotFoundError(f"{binary} is not built; run `make native`")
    args = [str(binary), command, "--exports", str(exports_root), "--episodes", str(episodes), *map(str, flags)]
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        args += ["--out", str(out)]
    env = controller_env()
    if count_allocations:
        env["LD_PRELOAD"] = str(ALLOC_COUNTER)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"embodied_controller {command} exited {proc.returncode}: "
                           f"{(proc.stderr.strip() or proc.stdout.strip())[-1500:]}")
    return json.loads(Path(out).read_text()) if out is not None else json.loads(proc.stdout)


def side_by_side(native: dict, python: dict) -> list[dict]:
    """Rows of (measure, Python, C++) from a Python loop report and the controller's report of the same kind."""
    rows = []
    for model in ("navigation", "manipulation"):
        p, n = python.get("channels", {}).get(model), native.get("channels", {}).get(model)
        if p is None or n is None:
            continue
        rows.append({"measure": f"{model} success", "python": p.get("success_rate"), "cpp": n.get("success_rate")})
        rows.append({"measure": f"{model} infer p99 (ms)", "python": p["infer_ms"]["p99"], "cpp": n["infer_ms"]["p99"]})
        rows.append({"measure": f"{model} interventions", "python": sum(p["interventions"].values()),
                     "cpp": sum(n["interventions"].values())})
    for key in ("compute_ms", "wall_ms"):
        if key in python and key in native:
            for q in ("p50", "p99", "max"):
                rows.append({"measure": f"{key[:-3]} {q} (ms)", "python": python[key][q], "cpp": native[key][q]})
    if "deadline_misses" in python and "deadline_misses" in native:
        rows.append({"measure": "deadline misses", "python": python["deadline_misses"], "cpp": native["deadline_misses"]})
    return rows


def jitter_rows(report: dict) -> list[dict]:
    """The controller's wake-up latency (actual start minus planned release) beside the machine's own at the same
    period (the cyclictest-style baseline measured first), in microseconds, then page faults and context switches
    per tick of the loop, the deadline misses by cause (woke late, or late by the tick's own work) and the host's
    steal time over the run: what is the controller's and what is the VM's."""
    own, machine = report.get("wakeup_latency_us"), (report.get("machine_baseline") or {}).get("wakeup_latency_us")
    rows = []
    if own:
        for key in ("min", "mean", "p99", "max"):
            rows.append({"measure": f"wake-up latency {key} (us)", "controller": own[key],
                         "machine baseline": machine[key] if machine else None})
    per_tick = (report.get("rusage_in_loop") or {}).get("per_tick", {})
    for key, value in per_tick.items():
        rows.append({"measure": f"{key.replace('_', ' ')} per tick", "controller": value, "machine baseline": None})
    for cause, value in (report.get("deadline_misses_by_cause") or {}).items():
        rows.append({"measure": f"deadline misses: {cause.replace('_', ' ')}", "controller": value,
                     "machine baseline": None})
    if report.get("host_steal_ms") is not None:   # the hypervisor ran something else while this VM wanted to run
        rows.append({"measure": "host steal time (ms)", "controller": None, "machine baseline": report["host_steal_ms"]})
    return rows


def compare_world(exports_root, episodes, out_dir, maps: int | None = None, scenes: int | None = None) -> dict:
    """The controller's worlds against Python's on the exported episodes (``check-world``): on every map, the
    robot-centred observation at the start and after each move of a fixed walk (bumps and revisits included);
    on every scene, the robot state and the 400 x 400 camera frame after the reset and after three fixed actions."""
    prefix = Path(out_dir) / "check_world.json"
    flags = [*(["--maps", maps] if maps else []), *(["--scenes", scenes] if scenes else [])]
    report = run_controller("check-world", exports_root, episodes, prefix, flags)
    grid_episodes = json.loads((Path(episodes) / "maps.json").read_text())
    n_moves = len(report["moves"]) + 1
    native = np.fromfile(f"{prefix}.observations.f32", dtype=np.float32).reshape(report["maps"], n_moves, -1)
    env = grid.GridWorldEnv(grid_episodes["grid_size"], grid_episodes["obstacle_fraction"])
    differing = []
    for m, episode in enumerate(grid_episodes["maps"][:report["maps"]]):
        observation, _ = env.reset(seed=episode["seed"])
        walk, done = [observation], False
        for move in report["moves"]:
            if not done:   # after the episode ends the controller's world stands still, as a finished env would
                observation, _, terminated, truncated, _ = env.step(move)
                done = terminated or truncated
            walk.append(observation)
        if not np.array_equal(np.stack(walk), native[m]):
            differing.append(episode["seed"])
    size = report["image_size"]
    frames = np.fromfile(f"{prefix}.frames.u8", dtype=np.uint8).reshape(report["scenes"], 4, size, size, 3)
    scenes_file = json.loads((Path(episodes) / "scenes.json").read_text())
    world = tabletop.TabletopEnv(max_steps=scenes_file["max_steps"])
    largest_pixel, pixels_differing, states_differing = 0, 0, []
    try:
        for s, scene in enumerate(scenes_file["scenes"][:report["scenes"]]):
            world.reset(seed=scene["seed"])
            for k in range(4):
                if k:
                    world.step(np.asarray(report["actions"][k - 1], dtype=np.float32))
                if not np.array_equal(world.read_state(), np.asarray(report["states"][s][k], dtype=np.float32)):
                    states_differing.append([scene["seed"], k])
                diff = np.abs(world.render().astype(np.int16) - frames[s, k].astype(np.int16))
                largest_pixel, pixels_differing = max(largest_pixel, int(diff.max())), pixels_differing + int((diff > 0).sum())
    finally:
        world.close()
    for suffix in (".observations.f32", ".frames.u8"):   # compared; 2 MB per scene is not worth keeping
        Path(f"{prefix}{suffix}").unlink()
    return {"maps": report["maps"], "observations_per_map": n_moves, "maps_differing": differing,
            "scenes": report["scenes"], "frames": 4 * report["scenes"], "largest_pixel_difference": largest_pixel,
            "pixels_differing": pixels_differing, "states_differing": states_differing}


# -- the experiments (notebook 07's native section and ``python -m embodied_lib.deploy native``) -----------------

RUNTIME_FORMATS = {"executorch": "executorch", "onnxruntime": "onnx", "executorch_int8": "executorch_int8",
                   "onnxruntime_int8": "onnx_int8"}
# commands beyond the generated ones: each skill, each kind of refusal, and a stop heard while a skill runs
EXAMPLE_MISSIONS = ("go to row 3 column 5", "pick up the red cube", "pick up the blue cube", "stop",
                    "rotate 45 degrees", "move forward 30 cm", "please make me a sandwich", "go to row 7 column 7",
                    ("go to row 0 column 0", 2, "stop"), "place the cube on row 2 column 2")


def realtime_priority(priority: int | None) -> int | None:
    """The SCHED_FIFO priority to ask for: only as root (elsewhere the controller would refuse the flag)."""
    return _as_root(priority or None)


EVALUATE_RATE_HZ = 1.0   # evaluate(): deadlines so loose that only a hung model would miss one


def _flags(runtime: str, **options) -> list[str]:
    flags = ["--runtime", runtime]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        flags += [flag] if value is True else [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    return flags


def evaluate(exports_root, episodes, out_dir, runtime: str = "executorch", progress: bool = False) -> dict:
    """The same held-out maps and scenes in closed loop, guarded, through the C++ controller and the Python loop
    (both free running, the same models and runtime): success of each, and how many episodes ended the same.
    Decisions are under test here, not timing: both loops judge deadlines at ``EVALUATE_RATE_HZ`` (a 600 ms
    inference budget), so a slow tick on a busy machine cannot turn into a watchdog fallback on one side only
    (at 20 Hz one such tick once made an episode one tick longer in Python than in C++)."""
    from embodied_lib.deploy.controller import build_channels, held_out, run_loop

    maps = len(json.loads((Path(episodes) / "maps.json").read_text())["maps"])
    scenes = len(json.loads((Path(episodes) / "scenes.json").read_text())["scenes"])
    cpp = run_controller("evaluate", exports_root, episodes, Path(out_dir) / "cpp_evaluate.json",
                         _flags(runtime, free_running=True, rate_hz=EVALUATE_RATE_HZ))
    channels = build_channels(exports_root, RUNTIME_FORMATS[runtime], held_out(maps), held_out(scenes),
                              rate_hz=EVALUATE_RATE_HZ)
    python = run_loop(channels, rate_hz=EVALUATE_RATE_HZ, free_running=True, progress=progress,
                      desc="Python loop, same episodes")
    out = {"runtime": runtime, "maps": maps, "scenes": scenes}
    for model in ("navigation", "manipulation"):
        p, c = python["channels"][model], cpp["channels"][model]
        by_seed = {r["seed"]: r for r in p["results"]}
        same = [by_seed[r["seed"]]["success"] == r["success"] for r in c["results"] if r["seed"] in by_seed]
        same_ticks = [by_seed[r["seed"]]["ticks"] == r["ticks"] for r in c["results"] if r["seed"] in by_seed]
        out[model] = {"python": p["success_rate"], "cpp": c["success_rate"],
                      "difference_points": round(100 * (c["success_rate"] - p["success_rate"]), 2),
                      "episodes": len(c["results"]), "same_outcome": float(np.mean(same)) if same else None,
                      "same_ticks": float(np.mean(same_ticks)) if same_ticks else None,
                      "python_interventions": p["interventions"], "cpp_interventions": c["interventions"]}
    return out


def realtime(exports_root, episodes, out_dir, ticks: int, rate_hz: float = 20.0, runtime: str = "executorch",
             cpu: int | None = 0, priority: int | None = None, progress: bool = False,
             baseline_seconds: float = 2.0, cpus=None, threads: dict | None = None,
             cpu_dma_latency_us: int | None = None, name: str = "realtime") -> dict:
    """Both models on their simulators at ``rate_hz``, episodes back to back, the whole controller pinned to one
    core (``cpu``), or each model's worker on its own (``cpus``, on ``threads`` each: ``{model: n}``). Its compute
    per tick excludes the camera's rendering and the physics (the robot's, not the controller's); the preloaded
    counting allocator reports the heap allocations the loop made after start-up. First the machine's own wake-up
    latency at the same period (``baseline_seconds``, cyclictest's way), so the report tells the VM's jitter from
    the controller's; memory locked (mlockall) and the CPU latency request (``cpu_dma_latency_us``) where this runs
    as root. With the controller's binary size and memory; the report is ``out_dir/cpp_<name>.json``."""
    models = ("navigation", "manipulation")
    report = run_controller("run", exports_root, episodes, Path(out_dir) / f"cpp_{name}.json",
                            _flags(runtime, ticks=ticks, rate_hz=rate_hz, cpu=cpu, cpus=_worker_cpus(cpus, models),
                                   threads=_model_threads(threads, models), priority=realtime_priority(priority),
                                   baseline_seconds=baseline_seconds, lock_memory=os.geteuid() == 0,
                                   cpu_dma_latency=_as_root(cpu_dma_latency_us), progress=progress),
                            timeout=ticks / rate_hz * 3 + baseline_seconds + 120, count_allocations=True)
    libraries = shared_libraries(CONTROLLER)
    report["binary"] = {"bytes": CONTROLLER.stat().st_size, "shared_libraries": len(libraries),
                        "shared_libraries_mb": round(sum(libraries.values()) / 2**20, 1)}
    return report


MISSED_SHARE_BAR = 0.005   # realtime_tools' own tests: under 0.5 % missed triggers over 100,000 triggers at 500 Hz


def _worker_cpus(cpus, models) -> list[int] | None:
    """One CPU per model's worker (``--cpus``), from the profile's list, or None."""
    return list(cpus)[:len(models)] if cpus and len(cpus) >= len(models) else None


def _model_threads(threads: dict | None, models) -> list[int] | None:
    """Each model's inference threads (``--threads``, in ``models`` order) from ``{model: n}``, or None (one)."""
    return [threads.get(m, 1) for m in models] if threads else None


def _as_root(value):
    """What only root may ask the kernel for (a CPU latency request): the value as root, else None (left out)."""
    return value if value is not None and os.geteuid() == 0 else None


def max_rate(exports_root, episodes, out_dir, rates, seconds: float, replay: int, runtime: str = "executorch",
             cpu: int | None = 0, priority: int | None = None,
             model_sets=(("navigation", "manipulation"), ("navigation",), ("manipulation",)), cpus=None,
             threads: dict | None = None) -> dict:
    """The controller's compute alone (recorded readings: no rendering, no physics), at rising rates for ``seconds``
    each, pinned to one core (``cpu``) or each model's worker on its own (``cpus``): per set of models, the highest
    rate with no deadline miss and no watchdog fallback (inference may use 90 % of the period, as in the Python
    search), and the highest with at most 0.5 % of its ticks missed (realtime_tools' bar)."""
    out = {"runtime": runtime, "cpu": cpu, "cpus": list(cpus) if cpus else None, "threads": threads,
           "priority": realtime_priority(priority), "seconds_per_rate": seconds, "replay_readings": replay, "sets": {}}
    for models in model_sets:
        rows = []
        for rate in rates:
            report = run_controller("run", exports_root, episodes, None, _flags(
                runtime, models=models, rate_hz=rate, ticks=max(1, int(rate * seconds)), replay=replay,
                infer_budget=0.9, cpu=cpu, cpus=_worker_cpus(cpus, models), threads=_model_threads(threads, models),
                priority=realtime_priority(priority)),
                timeout=seconds * 3 + 120)
            rows.append(_rate_row(report))
            if report["deadline_misses"] > 0.5 * report["ticks"]:
                break   # far past what it sustains: the higher rates only repeat it
        clean = [r["rate_hz"] for r in rows if r["deadline_misses"] == 0 and r["watchdog_fallbacks"] == 0]
        within = [r["rate_hz"] for r in rows if r["missed_share"] <= MISSED_SHARE_BAR]
        out["sets"]["+".join(models)] = {"rates": rows, "max_rate_without_misses_hz": max(clean) if clean else None,
                                         "max_rate_within_bar_hz": max(within) if within else None}
    return out


def _rate_row(report: dict) -> dict:
    late = sum(ch["interventions"].get(c, 0) for ch in report["channels"].values() for c in ("deadline", "busy"))
    return {"rate_hz": report["rate_hz"], "ticks": report["ticks"], "deadline_misses": report["deadline_misses"],
            "missed_share": round(report["deadline_misses"] / max(1, report["ticks"]), 6), "watchdog_fallbacks": late,
            "compute_ms": report["compute_ms"], "infer_ms": {m: ch["infer_ms"] for m, ch in report["channels"].items()}}


def _latency_summary(latency: dict | None) -> dict | None:
    """min / mean / p99 / max of a wake-up latency report (its histogram left in the run's own JSON)."""
    return {k: latency[k] for k in ("min", "mean", "p99", "max")} if latency else None


def _model_files(report: dict) -> dict:
    return {m: ch["model_file"] for m, ch in report["channels"].items()}


def sustained(exports_root, episodes, out_dir, runs, ticks: int, replay: int, runtime: str = "executorch",
              cpus=(0, 1), priority: int | None = None, baseline_seconds: float = 2.0, threads: dict | None = None,
              cpu_dma_latency_us: int | None = None) -> dict:
    """Long runs at fixed rates on recorded readings (the controller's compute: no rendering, no physics), each
    model's worker on its own CPU (``cpus``), judged by realtime_tools' bar: at most 0.5 % of ``ticks`` missed
    (ros2_control's count: a tick ending n periods late costs ceil(n)). ``runs``: ``[(models, rate_hz), ...]``.
    Each with the machine's own wake-up latency at its period first, memory locked and the CPU latency request
    (``cpu_dma_latency_us``) where this runs as root, each model on its ``threads``, and the loop's heap
    allocations counted. make bench's, not the notebook's: 100,000 ticks at 500 Hz are 200 s."""
    rows = []
    for models, rate in runs:
        report = run_controller("run", exports_root, episodes, Path(out_dir) / f"cpp_sustained_{'+'.join(models)}_{rate:g}hz.json",
                                _flags(runtime, models=models, rate_hz=rate, ticks=ticks, replay=replay, infer_budget=0.9,
                                       cpus=_worker_cpus(cpus, models), threads=_model_threads(threads, models),
                                       priority=realtime_priority(priority), lock_memory=os.geteuid() == 0,
                                       cpu_dma_latency=_as_root(cpu_dma_latency_us),
                                       baseline_seconds=baseline_seconds),
                                timeout=ticks / rate * 3 + baseline_seconds + 120, count_allocations=True)
        row = _rate_row(report)
        rows.append({"models": "+".join(models), **row, "within_bar": row["missed_share"] <= MISSED_SHARE_BAR,
                     "deadline_misses_by_cause": report["deadline_misses_by_cause"],
                     "host_steal_ms": report["host_steal_ms"],
                     "wakeup_latency_us": _latency_summary(report["wakeup_latency_us"]),
                     "machine_baseline_us": _latency_summary((report["machine_baseline"] or {}).get("wakeup_latency_us")),
                     "allocations_in_loop": report["allocations_in_loop"], "peak_rss_mb": report["peak_rss_mb"],
                     "rusage_per_tick": report["rusage_in_loop"]["per_tick"], "memory_locked": report["memory_locked"],
                     "model_files": _model_files(report)})
    return {"runtime": runtime, "ticks": ticks, "replay_readings": replay, "cpus": list(cpus) if cpus else None,
            "threads": threads, "priority": realtime_priority(priority),
            "cpu_dma_latency_us": _as_root(cpu_dma_latency_us), "bar_missed_share": MISSED_SHARE_BAR, "runs": rows}


def allocations(exports_root, episodes, out_dir, ticks: int, replay: int,
                runtimes=("executorch", "onnxruntime")) -> dict:
    """Heap allocations the loop makes after start-up over ``ticks`` ticks with both models, per runtime (the
    preloaded counting allocator; free running on recorded readings, so the count is the controller's and its
    runtime's, not the simulators')."""
    out = {"ticks": ticks, "runtimes": {}}
    for runtime in runtimes:
        report = run_controller("run", exports_root, episodes, None, _flags(
            runtime, ticks=ticks, replay=replay, free_running=True), timeout=ticks * 0.05 + 120, count_allocations=True)
        n = report["allocations_in_loop"]
        out["runtimes"][runtime] = {"allocations_in_loop": n, "per_tick": round(n / max(1, report["ticks"]), 3),
                                    "peak_rss_mb": report["peak_rss_mb"],
                                    "model_files": _model_files(report)}
    return out


def faults(exports_root, episodes, out_dir, ticks: int, probability: float, rate_hz: float = 20.0,
           runtime: str = "executorch", seed: int = 0, priority: int | None = None, cpu: int | None = None) -> dict:
    """Every fault kind injected at ``rate_hz`` on the simulators, then a corrupt model file at start-up for each
    model: each fault must end in its fallback in its own tick, the loop must keep its rate. ``cpu``: the
    controller's threads on that core after start-up."""
    report = run_controller("run", exports_root, episodes, Path(out_dir) / "cpp_faults.json", _flags(
        runtime, ticks=ticks, rate_hz=rate_hz, faults="all", fault_probability=probability, fault_seed=seed,
        cpu=cpu, priority=realtime_priority(priority)),
        timeout=ticks / rate_hz * 3 + 120)
    report["corrupt_model_at_startup"] = {}
    for model in ("navigation", "manipulation"):
        corrupt = run_controller("run", exports_root, episodes, None, _flags(
            runtime, models=[model], ticks=20, free_running=True, corrupt_model=model))
        ch = corrupt["channels"][model]
        report["corrupt_model_at_startup"][model] = {"startup_error": ch["guard_startup_error"], "ticks": corrupt["ticks"],
                                                     "interventions": ch["interventions"], "actuations": ch["actuations"]}
    return report


def soak(exports_root, episodes, out_dir, ticks: int, replay: int, runtime: str = "executorch",
         probability: float = 0.1, progress: bool = False) -> dict:
    """Many ticks back to back on recorded readings with faults on (late inferences left to the real-time run, as
    in Python's soak): resident memory must stay flat."""
    kinds = ["model_exception", "nan_output", "out_of_bounds_output", "dropped_frame", "stale_frame"]
    report = run_controller("run", exports_root, episodes, None, _flags(
        runtime, ticks=ticks, replay=replay, free_running=True, faults=kinds, fault_probability=probability,
        progress=progress), timeout=ticks * 0.05 + 300)
    result = {k: report[k] for k in ("runtime", "ticks", "rss_mb", "peak_rss_mb", "fault_totals", "compute_ms",
                                     "unhandled_faults")}
    save_result("cpp_soak", report, out_dir)
    return result


def missions(exports_root, episodes, out_dir, n_generated: int, runtime: str = "executorch", seed: int = 7) -> dict:
    """Spoken commands (EXAMPLE_MISSIONS plus generated held-out phrasings) carried out by the C++ controller on the
    first held-out map and scene, and by Python's MissionRunner on the same ones: what each understood and did."""
    from embodied_lib.deploy.controller import open_guard
    from embodied_lib.deploy.missions import MissionRunner
    from embodied_lib.hri.commands import ACTIONS, decode_params, make_corpus
    from embodied_lib.hri.interpreter import CommandInterpreter

    corpus = make_corpus(0, 0, n_generated, max(1, n_generated // 4), seed)["test"][:n_generated]
    commands = list(EXAMPLE_MISSIONS) + [c.text for c in corpus]
    path = Path(out_dir) / "commands.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(("\t".join(map(str, c)) if isinstance(c, tuple) else c) + "\n" for c in commands))
    cpp = run_controller("missions", exports_root, episodes, Path(out_dir) / "cpp_missions.json",
                         _flags(runtime, commands=path, free_running=True))
    exports_root = Path(exports_root)
    fmt = RUNTIME_FORMATS[runtime]
    metadata = read_manifest(exports_root / "navigation")["metadata"]
    runner = MissionRunner(CommandInterpreter.from_exports(exports_root / "command_pipeline", "onnx"),
                           open_guard(exports_root / "navigation", fmt), open_guard(exports_root / "manipulation", fmt),
                           metadata["grid_size"], metadata["obstacle_fraction"])
    rows = []
    for command, native in zip(commands, cpp["missions"]):
        text, interrupts = (command[0], {command[1]: command[2]}) if isinstance(command, tuple) else (command, None)
        result = runner.run(text, cpp["map_seed"], cpp["scene_seed"], interrupts=interrupts)
        understood = {"action": native["decision"]["action"], "params": native["decision"]["params"]} \
            if native["decision"]["refused"] is None else None
        rows.append({"text": text, "python_status": result.status, "cpp_status": native["status"],
                     "python_command": result.command, "cpp_command": understood,
                     "python_ticks": result.ticks, "cpp_ticks": native["ticks"], "cpp_actuations": native["actuations"],
                     "same_status": result.status == native["status"], "cpp_reason": native["reason"],
                     "python_reason": result.reason, "cpp_decide_ms": native["decide_ms"]})
    refused_moved = sum(r["cpp_actuations"] for r in rows if r["cpp_status"] == "refused")
    executable = []   # generated go_to / pick commands this map and table can carry out, with what they said
    for row, c in zip(rows[len(EXAMPLE_MISSIONS):], corpus):
        truth = ACTIONS[c.action]
        said = {"action": truth, "params": decode_params(truth, c.params)}
        if c.out_of_range or c.incomplete or not (
                truth == "pick" and said["params"].get("colour") in TABLE_COLOURS or
                truth == "go_to" and _reachable(runner, (said["params"]["row"], said["params"]["col"]), cpp["map_seed"])):
            continue
        row["said"] = said
        executable.append(row)

    def ended_where_said(side: str) -> dict:
        right = [r[f"{side}_status"] == "done" and r[f"{side}_command"] == r["said"] for r in executable]
        return {"n": len(right), "rate": float(np.mean(right)) if right else None}

    return {"runtime": runtime, "tokenizer": cpp["tokenizer"], "commands": len(rows), "by_status": cpp["by_status"],
            "go_to_pick_success": {"cpp": ended_where_said("cpp"), "python": ended_where_said("python")},
            "same_status": float(np.mean([r["same_status"] for r in rows])), "refused_moves": refused_moved,
            "decide_ms": cpp["decide_ms"], "map_seed": cpp["map_seed"], "scene_seed": cpp["scene_seed"], "rows": rows}


def _reachable(runner, cell, map_seed: int) -> bool:
    """Is ``cell`` free, reachable and not the start on this map (a go_to the grid robot can carry out)?"""
    from embodied_lib.deploy.missions import feasible_map

    try:
        return feasible_map(runner.grid_size, runner.obstacle_fraction, cell, map_seed, tries=1) == map_seed
    except ValueError:
        return False


def run_all(exports_root, out_dir, profile: str | None = None, progress: bool = False) -> dict:
    """Every experiment of the profile's "controller" settings; each result saved as ``out_dir/<name>.json``."""
    from embodied_lib.config import get_config

    cfg = get_config("controller", profile)
    out_dir = Path(out_dir)
    episodes = write_episodes(exports_root, out_dir / "episodes", cfg["maps"], cfg["scenes"])
    # the fault run plays beside the real-time run (both 20 Hz loops that sleep through most of each tick; one after
    # the other they were 800 s of the full profile's 07), on another core: two SCHED_FIFO loops of one period on
    # one core wake in a fixed phase, and one waits out the other's tick every time (measured: the real-time run's
    # machine baseline read 3.8 ms at its minimum). This process may be pinned to the controller's core, so the
    # machine's count says which cores exist.
    fault_cpu = next((c for c in cfg["cpus"] or () if c != cfg["cpu"] and c < (os.cpu_count() or 1)), None)
    runs = {
        "world": lambda: compare_world(exports_root, episodes, out_dir),
        "evaluate": lambda: evaluate(exports_root, episodes, out_dir, cfg["runtime"], progress),
        "realtime": lambda: realtime(exports_root, episodes, out_dir, cfg["realtime_ticks"], 20.0, cfg["runtime"],
                                     cfg["cpu"], cfg["priority"], progress, cfg["baseline_seconds"]),
        "rate": lambda: max_rate(exports_root, episodes, out_dir, cfg["rates"], cfg["rate_seconds"], cfg["replay"],
                                 cfg["runtime"], cfg["cpu"], cfg["priority"], cpus=cfg["cpus"], threads=cfg["threads"]),
        "faults": lambda: faults(exports_root, episodes, out_dir, cfg["fault_ticks"], cfg["fault_probability"],
                                 runtime=cfg["runtime"], priority=cfg["priority"], cpu=fault_cpu),
        "soak": lambda: soak(exports_root, episodes, out_dir, cfg["soak_ticks"], cfg["replay"], cfg["runtime"],
                             progress=progress),
        "missions": lambda: missions(exports_root, episodes, out_dir, cfg["commands"], cfg["runtime"]),
    }
    assert tuple(runs) == EXPERIMENTS
    return _timed(runs, out_dir, together=("realtime", "faults"))


def run_sustained(exports_root, out_dir, profile: str | None = None, progress: bool = False) -> dict:
    """make bench's runs of the controller alone, with the profile's "controller" settings, each worker on its own
    core: the 20 Hz real-time run on the simulators (``realtime_alone``), the long runs at fixed rates
    (``sustained``) and the allocation count per runtime (``allocations``); each result saved as
    ``out_dir/<name>.json``."""
    from embodied_lib.config import get_config

    cfg = get_config("controller", profile)
    out_dir = Path(out_dir)
    episodes = write_episodes(exports_root, out_dir / "episodes", cfg["maps"], cfg["scenes"])
    runs = {
        "realtime_alone": lambda: realtime(exports_root, episodes, out_dir, cfg["realtime_ticks"], 20.0, cfg["runtime"],
                                           None, cfg["priority"], progress, cfg["baseline_seconds"], cpus=cfg["cpus"],
                                           threads=cfg["threads"], cpu_dma_latency_us=cfg["cpu_dma_latency_us"],
                                           name="realtime_alone"),
        "sustained": lambda: sustained(exports_root, episodes, out_dir, cfg["sustained_runs"], cfg["sustained_ticks"],
                                       cfg["replay"], cfg["runtime"], cfg["cpus"], cfg["priority"],
                                       threads=cfg["threads"], cpu_dma_latency_us=cfg["cpu_dma_latency_us"]),
        "allocations": lambda: allocations(exports_root, episodes, out_dir, cfg["allocation_ticks"], cfg["replay"]),
    }
    return _timed(runs, out_dir)


def _timed(runs: dict, out_dir: Path, together=()) -> dict:
    """Each experiment of ``runs`` in order, its wall time added, its result saved as ``out_dir/<name>.json``; the
    ones named in ``together`` side by side (each is a controller process; the threads here only wait on them),
    where the first of them comes in the order."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> dict:
        started = time.perf_counter()
        result = runs[name]()
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        save_result(name, result, out_dir)
        return result

    results = {}
    for name in runs:
        if name in results:
            continue
        if name in together:
            with ThreadPoolExecutor(len(together)) as pool:
                futures = {n: pool.submit(one, n) for n in together}
            results.update({n: future.result() for n, future in futures.items()})
        else:
            results[name] = one(name)
    return results


class BackgroundExperiments(BackgroundRun):
    """``run_all`` in a child process (``python -m embodied_lib.deploy native``), pinned to the controller's core,
    while the caller goes on: notebook 07 starts it before the Python loop's experiments (one after the other they
    were 45 of the full profile's minutes). Its log is ``out_dir/native.log``."""

    def __init__(self, exports_root, out_dir, profile: str | None = None, cpu: int | None = 0):
        if not CONTROLLER.is_file():
            raise FileNotFoundError(f"{CONTROLLER} is not built; run `make native`")
        super().__init__("native", EXPERIMENTS, exports_root, out_dir, profile, cpu)
        self.episodes = self.out_dir / "episodes"


def _share(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def headline(name: str, result: dict) -> str:
    """One line per experiment for the CLI, from the numbers in ``result``."""
    if name == "world":
        return (f"{result['maps']} maps x {result['observations_per_map']} observations, {len(result['maps_differing'])} "
                f"differ; {result['frames']} frames, largest pixel difference {result['largest_pixel_difference']}")
    if name == "evaluate":
        n, m = result["navigation"], result["manipulation"]
        return (f"navigation C++ {n['cpp']:.1%} / Python {n['python']:.1%}, manipulation C++ {m['cpp']:.1%} / "
                f"Python {m['python']:.1%} (same outcome: {n['same_outcome']:.1%}, {m['same_outcome']:.1%})")
    if name in ("realtime", "realtime_alone", "faults"):
        line = (f"{result['ticks']} ticks at {result['rate_hz']:g} Hz, {result['deadline_misses']} misses, compute p50 "
                f"{result['compute_ms']['p50']} / p99 {result['compute_ms']['p99']} / max {result['compute_ms']['max']} ms")
        if name == "faults":
            totals = result["fault_totals"]
            line += (f"; {sum(t['injected'] for t in totals.values())} faults, "
                     f"{sum(t['fell_back_same_tick'] for t in totals.values())} fell back in their tick; beside "
                     f"the other channel's late model: " + ", ".join(
                         f"{m} {ch['beside_a_late_model']['timing_fallbacks']} timing fallbacks in "
                         f"{ch['beside_a_late_model']['ticks']} ticks" for m, ch in result["channels"].items()))
        else:
            line += f"; {result['allocations_in_loop']} allocations in the loop"
        return line
    if name == "rate":
        return ", ".join(f"{k}: {v['max_rate_without_misses_hz']} Hz without a miss, {v.get('max_rate_within_bar_hz')} Hz "
                         f"within 0.5 %" for k, v in result["sets"].items())
    if name == "sustained":
        return "; ".join(f"{r['models']} at {r['rate_hz']:g} Hz: {r['deadline_misses']} of {r['ticks']} missed "
                         f"({r['missed_share']:.3%}; woke late {r['deadline_misses_by_cause']['woke_late']}, own work "
                         f"{r['deadline_misses_by_cause']['own_work']}; host steal {r['host_steal_ms']} ms), compute "
                         f"p99 {r['compute_ms']['p99']} ms, wake-up mean {r['wakeup_latency_us']['mean']} / max "
                         f"{r['wakeup_latency_us']['max']} us, {r['allocations_in_loop']} allocations, peak RSS "
                         f"{r['peak_rss_mb']} MB" for r in result["runs"])
    if name == "allocations":
        return ", ".join(f"{k}: {v['allocations_in_loop']} in {result['ticks']} ticks" for k, v in result["runtimes"].items())
    if name == "soak":
        rss = result["rss_mb"]
        return f"{result['ticks']} ticks, RSS {rss['start']} -> {rss['end']} MB ({rss['growth_after_warm_up']:+.1f} after warm-up)"
    if name == "missions":
        s = result["go_to_pick_success"]
        return (f"{result['commands']} commands {result['by_status']}, same status as Python {result['same_status']:.1%}; "
                f"executable go_to / pick ended where the command said: C++ {_share(s['cpp']['rate'])}, Python "
                f"{_share(s['python']['rate'])} of {s['cpp']['n']}; "
                f"refused commands moved {result['refused_moves']} times")
    return ""
