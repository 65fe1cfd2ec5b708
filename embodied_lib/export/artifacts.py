"""Checks shared by every format: file presence, integrity, and load errors that say what to do."""
from __future__ import annotations

import hashlib
from pathlib import Path


class ArtifactError(RuntimeError):
    """A model file that is missing, truncated, modified or not of the expected format."""


REEXPORT_HINT = "re-export it (notebook 04_export_all_formats or `make run`)"


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(path, expected_sha256: str | None = None, expected_bytes: int | None = None) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file {path} not found; {REEXPORT_HINT}")
    size = path.stat().st_size
    if size == 0:
        raise ArtifactError(f"model file {path} is empty; {REEXPORT_HINT}")
    if expected_bytes is not None and size != expected_bytes:
        raise ArtifactError(f"model file {path} has {size} bytes, the manifest says {expected_bytes} "
                            f"(truncated or replaced?); {REEXPORT_HINT}")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise ArtifactError(f"model file {path} does not match the sha256 in the manifest "
                            f"(corrupted or replaced?); {REEXPORT_HINT}")
    return path


def require_magic(path: Path, magic: bytes, offset: int, format_name: str) -> None:
    """Reject a file whose header is not the format's before a runtime parses it."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(len(magic))
    if head != magic:
        raise ArtifactError(f"{path} is not a valid {format_name} file (bad header {head!r}); {REEXPORT_HINT}")


def load_or_explain(path: Path, format_name: str, loader):
    """Run a runtime's loader; turn its low-level failure into an ArtifactError naming the file."""
    try:
        return loader()
    except ArtifactError:
        raise
    except Exception as exc:  # the runtimes raise many types; all mean "this file is unusable"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"cannot load {path} as {format_name}: {first_line[:300]}; "
                            f"{REEXPORT_HINT}") from exc
