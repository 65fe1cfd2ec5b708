"""Run the whole workbook headlessly: every notebook in order with papermill, then a summary.

    python -m embodied_lib.workbook --profile quick        # what `make run` does
    python -m embodied_lib.workbook --only 01 --profile full
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from embodied_lib.cli import require_writable
from embodied_lib.config import EXPORTS_DIR, REPO_ROOT, RUNS_DIR, profile_name

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def _kernel_config():
    from traitlets.config import Config

    # The kernel talks to papermill over local IPC sockets (in Jupyter's runtime dir) instead of TCP on
    # 127.0.0.1: nothing to eavesdrop on, and the kernel no longer warns "running over TCP without encryption".
    return Config({"KernelManager": {"transport": "ipc"}})


KERNEL_CONFIG = _kernel_config()


def notebooks(only=None) -> list[Path]:
    found = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
    return found


def run_notebook(path: Path, profile: str, kernel: str, out_dir: Path, parameters: dict | None = None) -> Path:
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    os.environ["EMBODIED_PROFILE"] = profile  # the library's default; notebooks may still override
    papermill.execute_notebook(str(path), str(output), parameters={"PROFILE": profile, **(parameters or {})},
                               kernel_name=kernel, cwd=str(path.parent), progress_bar=False,
                               log_output=False, config=KERNEL_CONFIG)
    return output


def metrics_line(m: dict) -> str:
    if "evaluation" in m:  # navigation
        ev, rnd = m["evaluation"], m["random_policy"]
        return (f"success {ev['success_rate']:.1%} on {ev['episodes']} held-out maps (random {rnd['success_rate']:.1%}), "
                f"path ratio {ev['path_ratio']:.3f}, trained {m['train_seconds']:.0f} s")
    if "closed_loop" in m:  # manipulation
        c = m["closed_loop"]
        return (f"closed-loop success {c['policy']['success_rate']:.1%} on {c['policy']['episodes']} held-out scenes "
                f"(expert {c['expert']['success_rate']:.1%}, random {c['random']['success_rate']:.1%}), "
                f"{m['frames']} frames, trained {m['train_seconds']:.0f} s")
    if "test_accuracy" in m:  # hri
        return (f"action accuracy {m['test_accuracy']:.1%}, exact commands {m['exact_command_rate']:.1%} on unseen "
                f"phrasings, threshold {m['confidence_threshold']:.2f}: "
                f"accepts {m['test_accept_rate']:.1%} of commands, rejects {m['ood_reject_rate']:.1%} of out-of-domain "
                f"text, refuses {m['out_of_range_refuse_rate']:.1%} of out-of-range commands "
                f"({m['encoder_route'].split(' (')[0]}, {m['route']}), trained {m['train_seconds']:.0f} s")
    return "metrics.json of an unknown kind"


def summary(runs_dir=RUNS_DIR, exports_dir=EXPORTS_DIR) -> str:
    """One screen: training metrics per model, then every exported artifact with its parity verdict (the manifest's,
    export.parity), and last the files that failed it and are never served, with why."""
    from embodied_lib.export.parity import refusal

    lines = ["", "=" * 78, "Embodied AI Deployment Workbook: summary", "=" * 78]
    for metrics_path in sorted(Path(runs_dir).glob("*/metrics.json")):
        lines.append(f"{metrics_path.parent.name}: {metrics_line(json.loads(metrics_path.read_text()))}")
    refused = []
    for manifest_path in sorted(Path(exports_dir).glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        lines.append(f"exports/{manifest_path.parent.name}/ (torch {manifest['versions']['torch']}, "
                     f"executorch {manifest['versions']['executorch']}):")
        for a in manifest["artifacts"]:
            verdict = a.get("parity") or {}
            if "passed" not in verdict:
                check = "no parity verdict (never served)"
            elif verdict["max_abs_diff"] is None:
                check = "NaN/Inf FAILED (never served)"
            else:
                check = f"max|diff| {verdict['max_abs_diff']:.1e} {'ok' if verdict['passed'] else 'FAILED (never served)'}"
            lines.append(f"  {a['format']:13s} {a['file']:28s} {a['bytes'] / 1e6:6.2f} MB  {check}")
            if reason := refusal(a):
                refused.append(f"  exports/{manifest_path.parent.name}/{reason}")
        lines.append(f"  golden vectors: {manifest['golden']['file']} ({manifest['golden']['count']})")
    if refused:
        lines += ["Files refused by every loader (Python, C++, Rust, the controllers):", *refused]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=None, help="quick (default) or full")
    parser.add_argument("--kernel", default="embodied-workbook", help="Jupyter kernel to run the notebooks with")
    parser.add_argument("--only", nargs="+", help="notebook number prefixes to run, e.g. 01 04")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "notebooks", help="where executed copies go")
    args = parser.parse_args(argv)
    require_writable(parser, args.out)
    try:
        profile = profile_name(args.profile)
    except ValueError as exc:
        parser.error(str(exc))
    selected = notebooks(args.only)
    if not selected:
        parser.error(f"no notebooks match {args.only} in {NOTEBOOKS_DIR}")
    for path in selected:
        started = time.perf_counter()
        print(f"[{profile}] {path.name} ...", flush=True)
        try:
            run_notebook(path, profile, args.kernel, args.out)
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
            print(f"FAILED: {path.name}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}\n"
                  f"  executed copy with the error: {args.out / path.name}", file=sys.stderr)
            return 1
        print(f"[{profile}] {path.name} done in {time.perf_counter() - started:.0f} s -> {args.out / path.name}")
    print(summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
