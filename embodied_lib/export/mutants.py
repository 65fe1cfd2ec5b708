"""Seeded hostile copies of an export folder's data-format files, as an attacker who ships the whole folder
makes them: a mutated file with its ``sha256`` and ``bytes`` rewritten in manifest.json (a data format needs
no signature, so none is made). Used by the tests (tests/test_hostile_files.py: every format x every kind x
Python, each native runner and the controller) and by ``tools/attack_surface.py``.

Kinds (``KINDS``): every format gets byte flips in the header region (the first 4 KiB, where a .pte keeps its
program tables and a .safetensors its JSON header) and elsewhere, truncation, overwritten 32-bit words, and
huge weights (3e35 written over float data, so a model may answer far outside anything it can produce);
.pte files get an operator or backend name garbled into bytes that are not UTF-8 (ExecuTorch logs the name;
its Python bindings then abort the process);
.safetensors gets relabelled dtypes (F32 bytes declared I32) and reshaped tensors; .pth gets relabelled
dtypes, stride-0 and overlapping views, storage records larger or smaller than their element count, a pickle
nested 200,000 deep and a decompression bomb. ``must_refuse`` marks the kinds no loader may run.
"""
from __future__ import annotations

import io
import re
import json
import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from embodied_lib.export.artifacts import sha256_of

HEADER_BYTES = 4096
HUGE = 3e35
GENERIC = ("flip_header", "flip_body", "truncate", "overwrite_u32", "huge_weight")
SPECIFIC = {
    "executorch": ("garbled_name",),
    "executorch_batch1": ("garbled_name",),
    "executorch_int8": ("garbled_name",),
    "safetensors": ("relabel_dtype", "reshape"),
    "pth": ("relabel_dtype", "stride0", "overlap", "record_large", "record_short", "nested_pickle", "zip_bomb"),
}
# the formats a sweep mutates; the batch-1 program is the same file format as the shipped .pte, and the sweep hands
# the controller its mutants as the batch-1 file it loads (embodied_lib.hostile.sweep)
def kinds_of(fmt: str) -> tuple:
    return GENERIC + SPECIFIC.get(fmt, ())


KINDS = {fmt: kinds_of(fmt) for fmt in ("executorch", "onnx", "safetensors", "pth", "executorch_int8", "onnx_int8")}
MUST_REFUSE = {"truncate", "garbled_name", "relabel_dtype", "reshape", "stride0", "overlap", "record_large", "record_short",
               "nested_pickle", "zip_bomb"}
NESTING = 200_000
BOMB_BYTES = 512 << 20


@dataclass(frozen=True)
class Mutant:
    fmt: str
    kind: str
    index: int
    data: bytes

    @property
    def name(self) -> str:
        return f"{self.fmt}-{self.kind}-{self.index}"

    @property
    def must_refuse(self) -> bool:
        return self.kind in MUST_REFUSE


def _flip(data: bytes, rng, limit: int) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        out[int(rng.integers(0, min(limit, len(out))))] ^= int(rng.integers(1, 256))
    return bytes(out)


def _overwrite_u32(data: bytes, rng) -> bytes:
    out = bytearray(data)
    offset = 4 * int(rng.integers(0, min(HEADER_BYTES, len(out) - 4) // 4))
    value = int(rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, int(rng.integers(0, 1 << 32))]))
    out[offset:offset + 4] = struct.pack("<I", value)
    return bytes(out)


def _huge_floats(data: bytes, rng, start: int, end: int) -> bytes:
    out = bytearray(data)
    offset = start + 4 * int(rng.integers(0, max(1, (end - start) // 4 - 16)))
    out[offset:offset + 64] = np.full(16, HUGE, "<f4").tobytes()[: max(0, min(64, len(out) - offset))]
    return bytes(out)


def _safetensors_parts(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def _safetensors_bytes(header: dict, body: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + body


def _float_tensors(header: dict) -> list[str]:
    return sorted(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")


def _safetensors_mutant(data: bytes, kind: str, rng) -> bytes:
    header, body = _safetensors_parts(data)
    names = _float_tensors(header)
    name = names[int(rng.integers(0, len(names)))]
    if kind == "relabel_dtype":
        header[name]["dtype"] = str(rng.choice(["I32", "U32"]))   # the same bytes, read as integers
    elif kind == "reshape":
        shapes = [k for k in names if len(header[k]["shape"]) >= 2] or names
        name = shapes[int(rng.integers(0, len(shapes)))]
        shape = header[name]["shape"]
        header[name]["shape"] = shape[::-1] if len(shape) >= 2 and shape[0] != shape[-1] else [int(np.prod(shape))]
    else:   # huge_weight: inside one tensor's data
        begin, end = header[name]["data_offsets"]
        return _safetensors_bytes(header, _huge_floats(body, rng, begin, end))
    return _safetensors_bytes(header, body)


def _load_pth(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), weights_only=True)


def _save_pth(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _records(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info, z.read(info)) for info in z.infolist()]


def _rezip(records, replace: dict, compress: dict | None = None) -> bytes:
    """The archive again with some records' bytes replaced (and some written deflated)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info, blob in records:
            if compress and info.filename in compress:
                with z.open(zipfile.ZipInfo(info.filename), "w", force_zip64=True) as w:
                    compress[info.filename](w)
                continue
            z.writestr(zipfile.ZipInfo(info.filename), replace.get(info.filename, blob))
    return out.getvalue()


def _zeros_into(writer, total: int = BOMB_BYTES):
    block = bytes(1 << 20)
    for _ in range(total >> 20):
        writer.write(block)


@lru_cache(maxsize=4)
def _bomb(data: bytes) -> bytes:
    """The first storage record replaced by BOMB_BYTES of zeros, deflated (about 0.5 MB in the file)."""
    records = _records(data)
    target = next(info.filename for info, _ in records if "/data/" in info.filename)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info, blob in records:
            if info.filename == target:
                zi = zipfile.ZipInfo(info.filename)
                zi.compress_type = zipfile.ZIP_DEFLATED
                with z.open(zi, "w", force_zip64=True) as w:
                    _zeros_into(w)
            else:
                z.writestr(zipfile.ZipInfo(info.filename), blob)
    return out.getvalue()


def _pth_mutant(data: bytes, kind: str, rng) -> bytes:
    state = _load_pth(data)
    floats = sorted(k for k, v in state.items() if v.dtype == torch.float32 and v.numel() > 1)
    if kind in ("stride0", "overlap"):   # a view of a matrix: in one dimension every layout but one is dense
        floats = [k for k in floats if state[k].dim() >= 2]
    name = floats[int(rng.integers(0, len(floats)))]
    t = state[name]
    if kind == "relabel_dtype":
        state[name] = t.view(torch.int32)                      # the same bytes, declared int32
    elif kind == "stride0":
        state[name] = torch.as_strided(t.flatten().clone(), t.shape, [0] * t.dim())
    elif kind == "overlap":
        state[name] = torch.as_strided(t.flatten().clone(), t.shape, [1] * t.dim())
    elif kind == "record_large":
        state[name] = torch.cat([t.flatten(), torch.zeros(t.numel())])[: t.numel()].view(t.shape)
    elif kind == "huge_weight":
        flat = t.flatten().clone()
        flat[: min(16, flat.numel())] = HUGE
        state[name] = flat.view(t.shape)
    elif kind == "record_short":   # a storage record cut in half under a pickle that declares all of it
        records = _records(data)
        storages = [(info, blob) for info, blob in records if "/data/" in info.filename and len(blob) > 4]
        info, blob = storages[int(rng.integers(0, len(storages)))]
        return _rezip(records, {info.filename: blob[: len(blob) // 2]})
    elif kind == "nested_pickle":
        records = _records(data)
        pickle_name = next(info.filename for info, _ in records if info.filename.endswith("/data.pkl"))
        nested = b"\x80\x02" + b"]" * NESTING + b"a" * (NESTING - 1) + b"."
        return _rezip(records, {pickle_name: nested})
    elif kind == "zip_bomb":
        return _bomb(data)
    return _save_pth(state)


def mutate(data: bytes, fmt: str, kind: str, rng) -> bytes:
    if kind == "flip_header":
        return _flip(data, rng, HEADER_BYTES)
    if kind == "flip_body":
        return _flip(data, rng, len(data))
    if kind == "truncate":
        return data[: int(rng.integers(1, len(data)))]
    if kind == "overwrite_u32":
        return _overwrite_u32(data, rng)
    if fmt == "safetensors":
        return _safetensors_mutant(data, kind, rng)
    if fmt == "pth":
        return _pth_mutant(data, kind, rng)
    if kind == "garbled_name":   # .pte: an operator or backend name that is not UTF-8 (the runtime logs it)
        names = [m for m in re.finditer(rb"[A-Za-z_]{4,}::[A-Za-z_.]{2,}|XnnpackBackend", data)]
        if not names:
            return _flip(data, rng, HEADER_BYTES)
        m = names[int(rng.integers(0, len(names)))]
        at = m.start() + int(rng.integers(0, len(m.group()) - 1))
        return data[:at] + b"\xff\xfe" + data[at + 2:]
    if kind == "huge_weight":   # .pte / .onnx: float data sits in the file's second half
        return _huge_floats(data, rng, len(data) // 2, len(data))
    raise ValueError(f"no mutation {kind!r} for {fmt}")


def mutants(data: bytes, fmt: str, per_kind: int, seed: int) -> list[Mutant]:
    """``per_kind`` seeded mutants of each of the format's kinds (the zip bomb once: its bytes do not vary)."""
    rng = np.random.default_rng(seed)
    out = []
    for kind in kinds_of(fmt):
        for i in range(1 if kind == "zip_bomb" else per_kind):
            out.append(Mutant(fmt, kind, i, mutate(data, fmt, kind, rng)))
    return out


def write_hostile_folder(source: Path, folder: Path, fmt: str, mutant: Mutant) -> Path:
    """A copy of export folder ``source`` in ``folder`` whose ``fmt`` file is the mutant, with its sha256 and
    size rewritten in manifest.json (and manifest.sig removed: the attacker has no key). Returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((source / "manifest.json").read_text())
    for entry in manifest["artifacts"] + [manifest["golden"]] + manifest.get("extra_files", []):
        target = folder / entry["file"]
        if entry.get("format") == fmt:
            target.write_bytes(mutant.data)
            entry["sha256"], entry["bytes"] = sha256_of(target), len(mutant.data)
        elif not target.exists():
            target.symlink_to((source / entry["file"]).resolve())   # unchanged files: shared, not copied
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder / next(a["file"] for a in manifest["artifacts"] if a["format"] == fmt)
