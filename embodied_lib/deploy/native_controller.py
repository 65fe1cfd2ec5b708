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
from pathlib import Path

import numpy as np

from embodied_lib.config import EVAL_SEED_BASE
from embodied_lib.deploy.controller import np_encoder
from embodied_lib.deploy.missions import TABLE_COLOURS, UNSUPPORTED
from embodied_lib.export.manifest import read_manifest
from embodied_lib.manipulation import env as tabletop
from embodied_lib.manipulation.evaluate import MAX_STEPS
from embodied_lib.native import CPP_BUILD, onnxruntime_library
from embodied_lib.navigation import env as grid

CONTROLLER = CPP_BUILD / "embodied_controller"
ALLOC_COUNTER = CPP_BUILD / "libembodied_alloc_counter.so"
COMMANDS = ("evaluate", "run", "check-world", "missions")


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


def save(result: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=np_encoder))
    return path


def python_observation(episode: dict, moves) -> list[np.ndarray]:
    """The observations Python's GridWorldEnv gives on an exported map after each of ``moves`` (for the checks)."""
    size = len(episode["obstacles"])
    env = grid.GridWorldEnv(size)
    env.reset(seed=episode["seed"])
    out = [env._observation()]
    for move in moves:
        obs, _, terminated, truncated, _ = env.step(int(move))
        out.append(obs)
        if terminated or truncated:
            break
    return out
