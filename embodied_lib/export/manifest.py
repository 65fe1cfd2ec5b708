"""manifest.json: what was exported, how to feed it, and the exact versions that made it.

``read_manifest`` is the one reader: a size cap, strict UTF-8 JSON, then the schema below (jsonschema),
so a missing key, a wrong type, a null hash or a file name that leaves the export folder is an
ArtifactError naming the field, never a KeyError later.
"""
from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from embodied_lib.export.artifacts import ArtifactError, REEXPORT_HINT

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
VERSIONED_PACKAGES = ("torch", "executorch", "onnx", "onnxscript", "onnxruntime", "safetensors")
FORMAT_NAMES = ("torch_export", "executorch", "onnx", "safetensors", "pth", "aoti", "executorch_int8", "onnx_int8",
                "executorch_batch1", "executorch_undelegated")

# A file name inside the export folder: no separators, no "..", no leading dot, printable ASCII.
_FILE = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$", "not": {"pattern": r"\.\."}}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_BYTES = {"type": "integer", "minimum": 1}
_DIM = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1 << 24},
                  {"type": "string", "pattern": "^[a-z_]{1,32}$"}]}
_TENSOR = {
    "type": "object", "required": ["name", "shape", "dtype"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
        "shape": {"type": "array", "items": _DIM, "minItems": 1, "maxItems": 8},
        "dtype": {"enum": ["float32", "int64"]},
        "judged": {"type": "object", "required": ["kind"],
                   "properties": {"kind": {"enum": ["discrete", "probabilities", "continuous"]}}},
        # outputs: the largest magnitude the model can produce (embodied_lib.export.output_limit)
        "max_abs": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6},
    },
}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["model", "inputs", "outputs", "tolerance", "artifacts", "golden"],
    "properties": {
        "model": {"type": "string", "pattern": "^[a-z_]{1,64}$"},
        "inputs": {"type": "array", "items": _TENSOR, "minItems": 1, "maxItems": 16},
        "outputs": {"type": "array", "items": _TENSOR, "minItems": 1, "maxItems": 16},
        "tolerance": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "max_batch": {"type": "integer", "minimum": 1, "maximum": 1 << 20},
        "artifacts": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["format", "file", "sha256", "bytes"],
            "properties": {"format": {"enum": list(FORMAT_NAMES)}, "file": _FILE, "sha256": _SHA256,
                           "bytes": _BYTES,
                           # a program made for batches up to this only (executorch_batch1: 1)
                           "max_batch": {"type": "integer", "minimum": 1, "maximum": 1 << 20},
                           "parity": {
                               "type": "object", "required": ["tolerance", "tie_margin", "agreement"],
                               "properties": {"tolerance": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                                              "tie_margin": {"type": "number", "minimum": 0, "maximum": 10},
                                              "agreement": {"type": "number", "minimum": 0.5, "maximum": 1},
                                              # the verdict of the export's parity check (export.parity)
                                              "passed": {"type": "boolean"},
                                              "inputs": {"type": "integer", "minimum": 1},
                                              "max_abs_diff": {"type": ["number", "null"], "minimum": 0}}}}}},
        "golden": {"type": "object", "required": ["file", "sha256", "count"],
                   "properties": {"file": _FILE, "sha256": _SHA256, "count": {"type": "integer", "minimum": 1}}},
        "extra_files": {"type": "array", "items": {
            "type": "object", "required": ["file", "sha256", "bytes"],
            "properties": {"file": _FILE, "sha256": _SHA256, "bytes": _BYTES}}},
        "architecture": {"type": ["object", "null"]},
    },
}


def package_versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def write_manifest(directory, manifest: dict) -> Path:
    validate_manifest(manifest, Path(directory) / MANIFEST_NAME)   # never write what the reader refuses
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def _field(error) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":   # name the missing key itself
        path.append(next(k for k in error.validator_value if k not in error.instance))
    return "/".join(path) or "(top level)"


def validate_manifest(manifest, source="manifest") -> dict:
    """The schema above, the first violation as an ArtifactError naming its field."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        why = e.message if len(e.message) <= 160 else f"fails {e.validator} {json.dumps(e.validator_value)[:100]}"
        raise ArtifactError(f"{source}: field {_field(e)}: {why}; {REEXPORT_HINT}")
    return manifest


def read_manifest_bytes(directory) -> bytes:
    """manifest.json's bytes from one read: what a signature is checked over and what is parsed."""
    from embodied_lib.export.artifacts import read_once

    return read_once(Path(directory) / MANIFEST_NAME, "manifest", MAX_MANIFEST_BYTES)


def parse_manifest(data: bytes, path) -> dict:
    """Strict UTF-8 JSON, then the schema; ``path`` names the source in errors."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); {REEXPORT_HINT}") from exc
    except RecursionError:
        raise ArtifactError(f"{path} nests too deeply to be a manifest; {REEXPORT_HINT}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); {REEXPORT_HINT}") from exc
    return validate_manifest(manifest, path)


def read_manifest(directory) -> dict:
    return parse_manifest(read_manifest_bytes(directory), Path(directory) / MANIFEST_NAME)


# a format and the program of it made for batch 1 alone, which a control loop loads where the export has one
BATCH1_PROGRAMS = {"executorch": "executorch_batch1"}


def batch1_format(manifest: dict, fmt: str) -> str:
    """What a loop that runs batch 1 loads for ``fmt``: its batch-1 program where the manifest lists one (the
    dynamic-batch file plans memory for its largest batch), else ``fmt`` itself."""
    batch1 = BATCH1_PROGRAMS.get(fmt)
    return batch1 if batch1 and any(e["format"] == batch1 for e in manifest["artifacts"]) else fmt


def artifact_entry(manifest: dict, fmt: str) -> dict:
    for entry in manifest["artifacts"]:
        if entry["format"] == fmt:
            return entry
    known = [e["format"] for e in manifest["artifacts"]]
    raise ArtifactError(f"no {fmt!r} artifact in the {manifest['model']} manifest (has {known}); {REEXPORT_HINT}")
