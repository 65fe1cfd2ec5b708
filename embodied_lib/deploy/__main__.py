"""The deployed controller's experiments from the command line; each writes the JSON notebook 07 shows.

    python -m embodied_lib.deploy guard     --maps 500 --scenes 50     # success with and without the guard
    python -m embodied_lib.deploy realtime  --ticks 10000 --rate 20    # both policies, simulators, 20 Hz
    python -m embodied_lib.deploy rate                                  # highest rate without a miss (compute only)
    python -m embodied_lib.deploy faults    --ticks 6000 --probability 0.6
    python -m embodied_lib.deploy soak      --ticks 100000              # RSS growth over many ticks, faults on
    python -m embodied_lib.deploy missions  --commands 600 --ood 60    # spoken commands carried out end to end
    python -m embodied_lib.deploy all --profile full                    # every one, the sizes of notebook 07's profile
    python -m embodied_lib.deploy native --profile full                 # the C++ controller's experiments (its own
                                                                        # "controller" sizes), to --out/<name>.json
    python -m embodied_lib.deploy native-sustained --profile full       # the C++ controller alone, a core per
                                                                        # worker: 20 Hz on the simulators (10,000
                                                                        # ticks), 500 Hz (both models) and 2 kHz
                                                                        # (navigation) for 100,000 ticks, and its
                                                                        # heap allocations per runtime

Sizes default to the profile's "deploy" settings (embodied_lib.config); flags override them. Results go to
runs/deploy/<experiment>.json (``--out`` for another folder), the files notebook 07 writes too.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from embodied_lib.cli import int_in, require_folder, require_writable
from embodied_lib.config import EXPORTS_DIR, RUNS_DIR, get_config
import embodied_lib.deploy.controller as controller
from embodied_lib.export import FORMATS

LOOP_FORMATS = ("executorch", "onnx", "aoti", "torch_export", "safetensors")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def probability(text: str) -> float:
    value = positive_float(text) if text not in ("0", "0.0") else 0.0
    if value > 1:
        raise argparse.ArgumentTypeError(f"a probability is at most 1, got {text!r}")
    return value


def missions(exports, fmt, commands, ood, progress):
    from embodied_lib.deploy.missions import MissionRunner, evaluate_missions
    from embodied_lib.hri.interpreter import CommandInterpreter

    interpreter = CommandInterpreter.from_exports(exports / "command_pipeline", "onnx")
    runner = MissionRunner(interpreter, controller.open_guard(exports / "navigation", fmt),
                           controller.open_guard(exports / "manipulation", fmt))
    return {"format": fmt, "interpreter": "onnx", **evaluate_missions(runner, commands, ood, progress=progress)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=("guard", "realtime", "rate", "faults", "soak", "missions", "all", "native",
                                               "native-sustained"))
    parser.add_argument("--exports", type=Path, default=EXPORTS_DIR, help="exports root (one folder per model)")
    parser.add_argument("--profile", default=None, help="quick or full (default: $EMBODIED_PROFILE or quick)")
    parser.add_argument("--format", choices=[f for f in LOOP_FORMATS if f in FORMATS],
                        help="runtime of both policies (default: the profile's, executorch)")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "deploy", help="where the JSON results go")
    parser.add_argument("--ticks", type=int_in(1, 10_000_000), help="ticks (realtime, faults, soak)")
    parser.add_argument("--rate", type=positive_float, help="loop rate in Hz (default 20)")
    parser.add_argument("--maps", type=int_in(1, 100_000), help="held-out maps (guard)")
    parser.add_argument("--scenes", type=int_in(1, 10_000), help="held-out scenes (guard)")
    parser.add_argument("--probability", type=probability, help="fault chance per channel and tick")
    parser.add_argument("--commands", type=int_in(1, 100_000), help="generated commands (missions)")
    parser.add_argument("--ood", type=int_in(0, 100_000), help="out-of-domain texts (missions)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--started-file", type=Path, help="faults: create this file once the models are loaded, "
                        "right before the first tick (a caller that runs another loop beside it waits for it)")
    args = parser.parse_args(argv)
    try:
        cfg = get_config("deploy", args.profile)
    except ValueError as exc:
        parser.error(str(exc))
    require_folder(parser, args.exports)
    require_writable(parser, args.out)
    for model in ("navigation", "manipulation"):
        if not (args.exports / model / "manifest.json").is_file():
            parser.error(f"no exported {model} under {args.exports}; run notebooks 01-04 (or `make run`) first")
    progress, fmt, rate = not args.quiet, args.format or cfg["format"], args.rate or cfg["rate_hz"]
    if args.experiment in ("native", "native-sustained"):
        from embodied_lib.deploy import native_controller

        if not native_controller.CONTROLLER.is_file():
            parser.error(f"{native_controller.CONTROLLER} is not built; run `make native`")
        run = native_controller.run_all if args.experiment == "native" else native_controller.run_sustained
        for name, result in run(args.exports, args.out, args.profile, progress).items():
            print(f"{name}: {native_controller.headline(name, result)}  -> {args.out / (name + '.json')}")
        return
    pick = lambda flag, key: flag if flag is not None else cfg[key]  # noqa: E731
    runs = {
        "guard": lambda: controller.compare_guarded(args.exports, fmt, pick(args.maps, "maps"),
                                                    pick(args.scenes, "scenes"), progress),
        "realtime": lambda: controller.run_realtime(args.exports, fmt, pick(args.ticks, "realtime_ticks"), rate, progress),
        "rate": lambda: controller.max_rate(args.exports, fmt, seconds=cfg["rate_seconds"], progress=progress,
                                            priority=cfg["priority"]),
        "faults": lambda: controller.run_faults(args.exports, fmt, pick(args.ticks, "fault_ticks"), rate,
                                                pick(args.probability, "fault_probability"), progress=progress,
                                                on_start=args.started_file and args.started_file.touch),
        "soak": lambda: controller.soak(args.exports, fmt, pick(args.ticks, "soak_ticks"), progress=progress),
        "missions": lambda: missions(args.exports, fmt, pick(args.commands, "commands"), pick(args.ood, "ood"), progress),
    }
    selected = list(runs) if args.experiment == "all" else [args.experiment]
    for name in selected:
        started = time.perf_counter()
        result = runs[name]()
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        path = controller.save_result(name, result, args.out)
        print(f"{name}: {controller.headline(name, result)}  -> {path}")


if __name__ == "__main__":
    main()
