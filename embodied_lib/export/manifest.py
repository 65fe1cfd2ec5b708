"""manifest.json: what was exported, how to feed it, and the exact versions that made it."""
from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from embodied_lib.export.artifacts import ArtifactError, REEXPORT_HINT

MANIFEST_NAME = "manifest.json"
VERSIONED_PACKAGES = ("torch", "executorch", "onnx", "onnxscript", "onnxruntime", "safetensors")


def package_versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def write_manifest(directory, manifest: dict) -> Path:
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(directory) -> dict:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{path} not found; {REEXPORT_HINT}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); {REEXPORT_HINT}") from exc


def artifact_entry(manifest: dict, fmt: str) -> dict:
    for entry in manifest["artifacts"]:
        if entry["format"] == fmt:
            return entry
    known = [e["format"] for e in manifest["artifacts"]]
    raise ArtifactError(f"no {fmt!r} artifact in the {manifest['model']} manifest (has {known}); {REEXPORT_HINT}")
