"""Argument checks every command line shares: numbers in range and output folders that can be written,
all checked by argparse before any work starts (a typo must not cost a training run)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def int_in(low: int, high: int | None = None):
    """argparse ``type=``: a plain integer in [low, high] ("1e3", "5abc" and "-1" are not)."""
    def parse(text: str) -> int:
        if not text.strip().lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        value = int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is outside [{low}, {high if high is not None else 'inf'}]")
        return value
    return parse


def require_writable(parser: argparse.ArgumentParser, *paths: Path | None, files: bool = False) -> None:
    """Each path (a folder, or with ``files`` a file's folder) is made if missing and must take a file:
    tried for real (permission bits say little to root, or on read-only and special file systems)."""
    for path in paths:
        if path is None:
            continue
        folder = Path(path).parent if files else Path(path)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            parser.error(f"cannot write to {folder} ({exc.strerror or exc}); choose another output")


def require_folder(parser: argparse.ArgumentParser, *paths: Path) -> None:
    for path in paths:
        if not Path(path).is_dir():
            parser.error(f"{path} is not a folder")
