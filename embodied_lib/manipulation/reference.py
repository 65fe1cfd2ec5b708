"""Reference weights of ManipulationNet, made by this workbook's own full profile and shipped in the repository.

The quick profile (a workshop, CI, a first run: about 3 minutes on 2 cores) cannot clone a grasp that works
reliably from scratch: 60 demonstrations, 20 epochs and a DAgger round measured 33-87 % closed-loop success on
held-out scenes from one run to the next. So the quick profile warm-starts from these weights and trains on its
own demonstrations from there; notebook 02 says which model it shows.

``reference/manipulation/`` holds ``model.safetensors`` and ``config.json`` (as every checkpoint), the run's
``metrics.json``, and ``reference.json``: the command and seed that made them, the commit, and the sha256 of every
file, checked before the weights are used (``tests/test_manipulation.py`` checks that the record and the files
agree).

    python -m embodied_lib.manipulation.reference --check       # the files match their record
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from embodied_lib.config import REPO_ROOT

REFERENCE_DIR = REPO_ROOT / "reference" / "manipulation"
RECORD = "reference.json"
FILES = ("model.safetensors", "config.json", "metrics.json")


class ReferenceError(RuntimeError):
    """The reference weights are missing or are not the files their record names."""


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_record(directory: Path = REFERENCE_DIR) -> dict:
    """``reference.json``, after checking that every file it names has the sha256 it records."""
    directory = Path(directory)
    path = directory / RECORD
    if not path.is_file():
        raise ReferenceError(f"no {RECORD} in {directory}: the reference weights come with the repository; "
                             f"restore them with `git checkout -- {directory.relative_to(REPO_ROOT) if directory.is_relative_to(REPO_ROOT) else directory}`")
    record = json.loads(path.read_text())
    for name in FILES:
        file = directory / name
        if not file.is_file():
            raise ReferenceError(f"{file} is missing (named in {path})")
        if sha256(file) != record["sha256"][name]:
            raise ReferenceError(f"{file} is not the file {path} records (sha256 differs): do not warm-start from "
                                 f"weights nobody can trace; restore it from git or remake it with: {record['command']}")
    return record


def reference_state(directory: Path = REFERENCE_DIR) -> tuple[dict, dict]:
    """``(state dict, record)``: the reference weights, checked against their record, for
    ``train_bc(init_state=...)``."""
    from embodied_lib.registry import load_checkpoint

    record = read_record(directory)
    _, model = load_checkpoint(directory)
    return model.state_dict(), record


def write_record(run_dir: Path, command: str, commit: str, directory: Path = REFERENCE_DIR) -> dict:
    """Copy a full-profile run's checkpoint and metrics into ``directory`` with their record."""
    run_dir, directory = Path(run_dir), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (directory / name).write_bytes((run_dir / name).read_bytes())
    metrics = json.loads((directory / "metrics.json").read_text())
    record = {"model": "manipulation", "command": command, "seed": metrics["config"]["seed"],
              "profile_config": metrics["config"], "commit": commit,
              "closed_loop": metrics["closed_loop"], "frames": metrics["frames"],
              "train_seconds": round(metrics["train_seconds"]),
              "sha256": {name: sha256(directory / name) for name in FILES}}
    (directory / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="check the files against reference.json")
    parser.add_argument("--record", type=Path, metavar="RUN_DIR",
                        help="copy a full-profile run folder (model.safetensors, config.json, metrics.json) here")
    parser.add_argument("--command", help="with --record: the command that made the run")
    parser.add_argument("--commit", help="with --record: the commit it ran at")
    args = parser.parse_args(argv)
    try:
        if args.record:
            if not (args.command and args.commit):
                parser.error("--record needs --command and --commit")
            record = write_record(args.record, args.command, args.commit)
        else:
            record = read_record()
    except (ReferenceError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: record[k] for k in ("command", "commit", "closed_loop", "sha256")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
