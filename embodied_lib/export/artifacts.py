"""Checks shared by every format: file presence, integrity, and load errors that say what to do.

Verify what you use: a model file is opened once (``read_verified``), its bytes hashed and compared with the
manifest, and those same bytes (``ModelBytes.data``) are what the runtime loads, from memory or from a
private copy, never the path again. A folder whose files change between the check and the load (a
writable share, a sync client, an attacker racing the load) cannot make the runtime run other bytes.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path


class ArtifactError(RuntimeError):
    """A model file that is missing, truncated, modified or not of the expected format."""


REEXPORT_HINT = "re-export it (notebook 04_export_all_formats or `make run`)"


@dataclass(frozen=True)
class ModelBytes:
    """A model file's bytes as they were read (and, from ``read_verified``, checked); ``path`` names them."""
    path: Path
    data: bytes


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_once(path, what: str, max_bytes: int) -> bytes:
    """The whole of a regular file of 1..max_bytes bytes, from one open descriptor (a link as the last part
    of the path is not followed: a manifest names files, not links). Every verified read goes through here."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ArtifactError(f"{what} {path} not found; {REEXPORT_HINT}") from None
    except OSError as exc:
        raise ArtifactError(f"{what} {path} cannot be opened ({exc.strerror}; a link or unreadable?)") from None
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(f"{what} {path} is not a regular file")
        if info.st_size == 0:
            raise ArtifactError(f"{what} {path} is empty; {REEXPORT_HINT}")
        if info.st_size > max_bytes:
            raise ArtifactError(f"{what} {path} has {info.st_size} bytes, more than the {max_bytes} expected "
                                f"(replaced?); {REEXPORT_HINT}")
        chunks, size = [], 0
        while chunk := f.read(min(1 << 22, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise ArtifactError(f"{what} {path} grew past {max_bytes} bytes while being read")
    return b"".join(chunks)


def read_verified(path, expected_sha256: str, expected_bytes: int, what: str = "model file") -> ModelBytes:
    """``path`` read once and checked against the manifest's size and sha256: the bytes to load."""
    path = Path(path)
    data = read_once(path, what, expected_bytes)
    if len(data) != expected_bytes:
        raise ArtifactError(f"{what} {path} has {len(data)} bytes, the manifest says {expected_bytes} "
                            f"(truncated or replaced?); {REEXPORT_HINT}")
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ArtifactError(f"{what} {path} does not match the sha256 in the manifest "
                            f"(corrupted or replaced?); {REEXPORT_HINT}")
    return ModelBytes(path, data)


def require_magic(file: ModelBytes, magic: bytes, offset: int, format_name: str) -> None:
    """Reject a file whose header is not the format's before a runtime parses it."""
    head = file.data[offset:offset + len(magic)]
    if head != magic:
        raise ArtifactError(f"{file.path} is not a valid {format_name} file (bad header {head!r}); {REEXPORT_HINT}")


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
