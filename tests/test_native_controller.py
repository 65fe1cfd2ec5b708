"""The C++ controller (native/cpp/controller) against the Python deployment: the same worlds (observations and
camera frames), the same closed-loop episodes, every fault kind to its fallback within its tick, a corrupt model
that moves nothing, no heap allocation in the loop, missions through the Rust pipeline's C ABI, bad files refused
with one clear line, and a short run of all of it under AddressSanitizer + UndefinedBehaviorSanitizer.
Untrained models from the session fixtures: what is under test is the controller, not the weights."""
import json
import os
import subprocess
import time

import pytest

from embodied_lib.deploy import native_controller as nc
from embodied_lib.native import CPP_BUILD


@pytest.fixture(scope="module")
def exports_root(tmp_path_factory, navigation_exports, manipulation_exports, hri_exports):
    root = tmp_path_factory.mktemp("controller_exports")
    (root / "navigation").symlink_to(navigation_exports)
    (root / "manipulation").symlink_to(manipulation_exports[0])
    (root / "command_pipeline").symlink_to(hri_exports[0] / "command_pipeline")
    return root


@pytest.fixture(scope="module")
def episodes(tmp_path_factory, exports_root):
    return nc.write_episodes(exports_root, tmp_path_factory.mktemp("episodes"), maps=20, scenes=2)


def controller(*args, binary=nc.CONTROLLER, env=None, timeout=300):
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, errors="replace",
                          env=env or nc.controller_env(), timeout=timeout)


def test_the_controller_sees_the_world_python_sees(exports_root, episodes, tmp_path):
    result = nc.compare_world(exports_root, episodes, tmp_path)
    assert result["maps"] == 20 and result["maps_differing"] == []
    assert result["frames"] == 8 and result["largest_pixel_difference"] == 0
    assert result["states_differing"] == []


def test_same_episodes_same_outcomes_as_the_python_loop(exports_root, episodes, tmp_path):
    result = nc.evaluate(exports_root, episodes, tmp_path)
    for model in ("navigation", "manipulation"):
        assert result[model]["episodes"] == {"navigation": 20, "manipulation": 2}[model]
        assert result[model]["same_outcome"] == 1.0 and result[model]["same_ticks"] == 1.0, result[model]
        assert result[model]["cpp_interventions"] == result[model]["python_interventions"]


def test_every_fault_kind_ends_in_its_fallback_within_its_tick(exports_root, episodes, tmp_path):
    report = nc.run_controller("run", exports_root, episodes, tmp_path / "faults.json",
                               ["--ticks", 80, "--rate-hz", 20, "--faults", "all", "--fault-probability", 0.7])
    totals = report["fault_totals"]
    assert set(totals) == {"model_exception", "nan_output", "out_of_bounds_output", "late_inference",
                           "dropped_frame", "stale_frame"}
    for kind, counts in totals.items():
        assert counts["injected"] > 0 and counts["fell_back_same_tick"] == counts["injected"], kind
    assert report["unhandled_faults"] == 0
    causes = {c for ch in report["channels"].values() for c in ch["interventions"]}
    assert {"model_error", "non_finite_output", "out_of_bounds_output", "deadline", "missing_sensor",
            "stale_sensor"} <= causes
    # a failing model's own message reaches the report, as Python's guard's detail does
    errors = [e for e in report["intervention_examples"] if e["cause"] == "model_error"]
    assert errors and all(e["detail"] == "injected fault: the model raised" for e in errors)


def test_a_late_navigation_model_costs_the_manipulation_channel_nothing(exports_root, episodes):
    """Both models start before either is waited for, each on its own worker to its own deadline."""
    report = nc.run_controller("run", exports_root, episodes, None,
                               ["--ticks", 12, "--rate-hz", 10, "--faults", "late_inference", "--fault-probability", 1,
                                "--fault-models", "navigation"])
    ran = len(report["timeline"]["tick"])
    navigation, manipulation = report["channels"]["navigation"], report["channels"]["manipulation"]
    assert navigation["interventions"].get("deadline", 0) + navigation["interventions"].get("busy", 0) == ran > 0
    assert manipulation["faults"] == {}
    late = {c: n for c, n in manipulation["interventions"].items() if c in ("deadline", "busy")}
    assert late == {}, report["intervention_examples"]
    # the report's own count of it, the one the fault run is judged by
    assert manipulation["beside_a_late_model"] == {"ticks": ran, "timing_fallbacks": 0}
    assert navigation["beside_a_late_model"] == {"ticks": 0, "timing_fallbacks": 0}


def test_an_overrun_costs_ceil_of_its_lateness_in_periods_and_the_next_release_is_on_the_grid(exports_root, episodes):
    """ros2_control's count: tick 3 held 2.5 periods costs 3 cycles; the loop waits for release 6, no burst."""
    report = nc.run_controller("run", exports_root, episodes, None, ["--models", "navigation", "--replay", 20,
                                                                      "--ticks", 10, "--rate-hz", 20, "--stall", "3:2.5"])
    assert report["deadline_misses"] == 3 and report["ticks"] == 10
    assert report["timeline"]["tick"] == [0, 1, 2, 3, 6, 7, 8, 9]
    # the stall is the tick's own work, not a late wake-up: the report tells the two apart
    assert report["deadline_misses_by_cause"] == {"woke_late": 0, "own_work": 3}
    assert report["host_steal_ms"] is None or report["host_steal_ms"] >= 0


@pytest.mark.parametrize("model", ["navigation", "manipulation"])
def test_a_corrupt_model_at_startup_falls_back_on_every_tick_and_moves_nothing(exports_root, episodes, model):
    report = nc.run_controller("run", exports_root, episodes, None, ["--models", model, "--ticks", 15,
                                                                      "--free-running", "--corrupt-model", model])
    channel = report["channels"][model]
    assert "matches no file the manifest lists" in channel["guard_startup_error"]
    assert channel["interventions"] == {"model_unavailable": 15}
    assert channel["actuations"] == 0


def test_jitter_is_reported_beside_the_machines_own_wake_up_latency(exports_root, episodes):
    """cyclictest's baseline first (the same thread, the same period, no work), then the loop's own wake-up latency,
    page faults and context switches; memory locked where this runs as root."""
    root = os.geteuid() == 0
    report = nc.run_controller("run", exports_root, episodes, None,
                               ["--models", "navigation", "--replay", 20, "--ticks", 100, "--rate-hz", 200,
                                "--baseline-seconds", 0.5, *(["--lock-memory"] if root else [])])
    machine, own = report["machine_baseline"]["wakeup_latency_us"], report["wakeup_latency_us"]
    assert machine["samples"] == 100 and own["samples"] == len(report["timeline"]["tick"])
    for latency in (machine, own):
        assert latency["min"] <= latency["mean"] <= latency["max"] and latency["min"] <= latency["p99"] <= latency["max"]
        assert sum(latency["histogram"]["counts"]) + latency["histogram"]["overflow"] == latency["samples"]
    usage = report["rusage_in_loop"]
    assert set(usage["per_tick"]) == {"minor_page_faults", "major_page_faults", "voluntary_context_switches",
                                      "involuntary_context_switches"}
    assert usage["voluntary_context_switches"] > 0          # the loop sleeps every tick: the counter counts
    if root:
        assert report["memory_locked"] and usage["major_page_faults"] == 0
    rows = nc.jitter_rows(report)
    assert rows[0] == {"measure": "wake-up latency min (us)", "controller": own["min"], "machine baseline": machine["min"]}
    by_cause = {r["measure"]: r["controller"] for r in rows if r["measure"].startswith("deadline misses")}
    assert sum(by_cause.values()) == report["deadline_misses"] and len(by_cause) == 2


def test_the_loop_allocates_nothing_after_startup(exports_root, episodes):
    report = nc.run_controller("run", exports_root, episodes, None, ["--ticks", 60, "--free-running"],
                               count_allocations=True)
    assert report["allocations_in_loop"] == 0
    # ExecuTorch runs the batch-1 programs by default (the dynamic-batch .pte plans memory for its largest batch)
    assert {m: ch["model_file"] for m, ch in report["channels"].items()} == {
        "navigation": "navigation.batch1.pte", "manipulation": "manipulation.batch1.pte"}
    # the counter counts: ONNX Runtime allocates on every run
    onnx = nc.run_controller("run", exports_root, episodes, None,
                             ["--ticks", 20, "--free-running", "--runtime", "onnxruntime"], count_allocations=True)
    assert onnx["allocations_in_loop"] > 0


def test_each_worker_on_its_own_cpu_and_the_sustained_run_report(exports_root, episodes, tmp_path):
    """--cpus puts each model's worker on its own core; a sustained run is judged by realtime_tools' 0.5 % bar from
    the counts it reports (the rates themselves are make bench's)."""
    cpus = sorted(os.sched_getaffinity(0))[:2] * (2 if len(os.sched_getaffinity(0)) == 1 else 1)
    result = nc.sustained(exports_root, episodes, tmp_path, [(("navigation", "manipulation"), 100)], ticks=40,
                          replay=10, cpus=cpus, baseline_seconds=0.1, threads={"navigation": 1, "manipulation": 2})
    (run,) = result["runs"]
    assert run["ticks"] == 40 and run["missed_share"] == round(run["deadline_misses"] / 40, 6)
    assert run["within_bar"] == (run["missed_share"] <= nc.MISSED_SHARE_BAR)
    assert sum(run["deadline_misses_by_cause"].values()) == run["deadline_misses"]
    assert run["allocations_in_loop"] == 0 and run["machine_baseline_us"]["min"] <= run["machine_baseline_us"]["max"]
    report = json.loads((tmp_path / "cpp_sustained_navigation+manipulation_100hz.json").read_text())
    assert report["cpus"] == cpus and report["threads"] == [1, 2]
    proc = controller("run", "--exports", exports_root, "--episodes", episodes, "--cpus", "0")
    assert proc.returncode == 2 and "--cpus takes one CPU per model" in proc.stderr, proc.stderr
    # ExecuTorch's XNNPACK has one process-wide pool: two models cannot each have a pool of their own size
    proc = controller("run", "--exports", exports_root, "--episodes", episodes, "--threads", "2,3")
    assert proc.returncode == 2 and "one shared pool" in proc.stderr, proc.stderr
    proc = controller("run", "--exports", exports_root, "--episodes", episodes, "--threads", "1,1,1")
    assert proc.returncode == 2 and "--threads takes one count, or one per model" in proc.stderr, proc.stderr


def test_missions_decide_as_python_and_refused_commands_move_nothing(exports_root, episodes, tmp_path):
    result = nc.missions(exports_root, episodes, tmp_path, n_generated=6)
    assert result["commands"] == len(nc.EXAMPLE_MISSIONS) + 6
    assert result["same_status"] == 1.0, [r for r in result["rows"] if not r["same_status"]]
    assert result["refused_moves"] == 0
    assert "tokenizers" in result["tokenizer"]
    for row in result["rows"]:
        if row["cpp_status"] == "refused":
            assert row["cpp_ticks"] == 0 and row["cpp_actuations"] == 0


def test_cli_help_usage_errors_and_bad_files(exports_root, episodes, tmp_path):
    shown = controller("--help")
    assert shown.returncode == 0 and "--faults" in shown.stdout and "check-world" in shown.stdout
    for args, message in ((["fly"], "unknown command"), (["run", "--exports", exports_root], "--episodes is required"),
                          (["run", "--exports", exports_root, "--episodes", episodes, "--rate-hz", "nan"], "--rate-hz"),
                          (["run", "--exports", exports_root, "--episodes", episodes, "--faults", "meteor"], "meteor")):
        proc = controller(*args)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    broken = tmp_path / "episodes"
    broken.mkdir()
    for name in ("scenes.json", "tabletop.xml", "skills.json"):
        (broken / name).write_bytes((episodes / name).read_bytes())
    (broken / "maps.json").write_text("{not json")
    proc = controller("run", "--exports", exports_root, "--episodes", broken)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: ") and "maps.json" in proc.stderr
    scenes = json.loads((episodes / "scenes.json").read_text())
    scenes["scenes"][0]["state"] = scenes["scenes"][0]["state"][:-3]
    (broken / "maps.json").write_bytes((episodes / "maps.json").read_bytes())
    (broken / "scenes.json").write_text(json.dumps(scenes))
    proc = controller("run", "--exports", exports_root, "--episodes", broken)
    assert proc.returncode == 1 and "state of" in proc.stderr


def test_short_runs_under_address_and_undefined_behavior_sanitizers(exports_root, episodes, tmp_path):
    binary = CPP_BUILD / "embodied_controller_sanitized"
    assert binary.is_file(), "make native builds the sanitized controller"
    env = {**nc.controller_env(), "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    (tmp_path / "commands.txt").write_text("go to row 3 column 5\npick up the red cube\nstop\n\u202egibberish\n")
    runs = [["run", "--ticks", 40, "--rate-hz", 20, "--faults", "all", "--fault-probability", 0.6],
            ["evaluate", "--maps", 3, "--scenes", 1, "--free-running"],
            ["run", "--ticks", 10, "--free-running", "--corrupt-model", "manipulation"],
            ["missions", "--commands", tmp_path / "commands.txt", "--free-running"],
            ["check-world", "--maps", 3, "--scenes", 1, "--out", tmp_path / "world.json"]]
    for args in runs:
        proc = controller(args[0], "--exports", exports_root, "--episodes", episodes, *args[1:], binary=binary, env=env)
        assert proc.returncode == 0, (args, proc.stderr[-3000:])
        assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-3000:]


def test_the_camera_renders_in_its_own_process_and_a_dead_camera_is_an_error_not_a_hang(exports_root, episodes):
    """The tabletop's camera (Mesa's renderer) runs in a child process, so it is not in the controller's memory;
    killed mid-run, the controller stops with an error that names it, within the frame timeout."""
    import psutil

    proc = subprocess.Popen([str(nc.CONTROLLER), "run", "--exports", str(exports_root), "--episodes", str(episodes),
                             "--models", "manipulation", "--ticks", "2000", "--rate-hz", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=nc.controller_env())
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while not parent.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        (camera,) = parent.children()
        assert not any("libLLVM" in m.path or "/dri/" in m.path for m in parent.memory_maps())  # no renderer here
        time.sleep(1.0)   # it renders frames
        camera.kill()
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "the camera process did not render a frame" in stderr, stderr


def test_a_model_file_that_failed_parity_leaves_its_channel_unavailable(exports_root, episodes, failed_int8_exports,
                                                                          tmp_path):
    """Issue 43: the controller reads the manifest's verdict like every loader; an INT8 file that failed parity at
    export is refused at start-up with the reason, and its channel falls back on every tick, moving nothing."""
    root = tmp_path / "exports"
    root.mkdir()
    (root / "navigation").symlink_to(failed_int8_exports)
    report = nc.run_controller("run", root, episodes, None, ["--models", "navigation", "--runtime", "onnxruntime_int8",
                                                             "--ticks", 5, "--free-running"])
    channel = report["channels"]["navigation"]
    assert "navigation.int8.onnx failed its parity check at export" in channel["guard_startup_error"]
    assert channel["interventions"] == {"model_unavailable": 5} and channel["actuations"] == 0
