"""Plain weights for the native twins that rebuild the network in code (LibTorch, tch-rs).

- ``.safetensors``: read by Python, tch-rs (the safetensors crate) and a 40-line C++ parser; no code inside.
- ``.pth``: ``torch.save(dict(state_dict))``, a *plain dict*: C++ ``torch::pickle_load``
  reads it (an OrderedDict fails with "Expected GenericDict"; ``torch::load`` cannot
  read a Python state_dict at all). Python loads it with ``weights_only=True``.

Both are loaded from the verified bytes (artifacts.ModelBytes) and every tensor is checked against the
model the spec builds before it is used (spec.check_state_dict: names, dtypes, shapes, dense strides; for a
.pth also storages that hold exactly their tensor). A .pth archive is checked before torch reads it
(``check_pth_archive``): records stored uncompressed and inside the file, as torch.save writes them (no
decompression bomb), and a pickle whose stack never grows past MAX_PICKLE_DEPTH (no 200,000-deep nesting).
"""
from __future__ import annotations

import io
import json
import pickletools
import zipfile

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save_file

from embodied_lib.export.artifacts import REEXPORT_HINT, ArtifactError, load_or_explain
from embodied_lib.spec import WeightsError, load_state_dict_strict

# A plain-dict state_dict's pickle stack holds a handful of items (the dict, a key, a tensor's rebuild call and
# its arguments); the C++ reader (native/cpp/pth_check.hpp) uses the same bound.
MAX_PICKLE_DEPTH = 100
MAX_RECORDS = 10_000


def _state(model):
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def save_safetensors(spec, model, program, path):
    save_file(_state(model), str(path), metadata={"model": spec.name, "config": json.dumps(spec.config)})


def save_pth(spec, model, program, path):
    torch.save(dict(_state(model)), str(path))


def pickle_depth(data: bytes) -> int:
    """The deepest the unpickler's stack (items plus marks) gets, from the opcodes alone (nothing runs)."""
    height, marks, deepest = 0, [], 0
    for op, _, _ in pickletools.genops(data):
        before = op.stack_before
        if pickletools.markobject in before:   # pops everything above the last mark, and what is below it
            height = marks.pop() - before.index(pickletools.markobject)
        else:
            height -= len(before)
        if op.name == "MARK":
            marks.append(height)
        else:
            height += len(op.stack_after)
        deepest = max(deepest, height + len(marks))
    return deepest


def check_pth_archive(path, data: bytes) -> None:
    """The archive torch.save writes, before torch reads it: ArtifactError naming what is not."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            records = archive.infolist()
            if len(records) > MAX_RECORDS:
                raise ArtifactError(f"{path} has {len(records)} records, more than the {MAX_RECORDS} of a state_dict")
            for r in records:
                if r.compress_type != zipfile.ZIP_STORED or r.file_size != r.compress_size:
                    raise ArtifactError(f"{path}: record {r.filename} is compressed ({r.compress_size} bytes that "
                                        f"unpack to {r.file_size}); torch.save stores records as they are, so this "
                                        f"is not its file (a decompression bomb?); {REEXPORT_HINT}")
                if r.header_offset + r.file_size > len(data):
                    raise ArtifactError(f"{path}: record {r.filename} claims {r.file_size} bytes at offset "
                                        f"{r.header_offset}, past the end of the {len(data)}-byte file")
            pickles = [r for r in records if r.filename.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ArtifactError(f"{path} has {len(pickles)} data.pkl records, a state_dict .pth has one")
            depth = pickle_depth(archive.read(pickles[0]))
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"{path} is not a torch.save archive ({exc}); {REEXPORT_HINT}") from None
    except (ValueError, IndexError) as exc:   # pickletools: an unknown opcode or a truncated argument
        raise ArtifactError(f"{path}: its data.pkl is not a valid pickle ({exc}); {REEXPORT_HINT}") from None
    if depth > MAX_PICKLE_DEPTH:
        raise ArtifactError(f"{path}: its pickle nests {depth} deep, more than the {MAX_PICKLE_DEPTH} of a plain "
                            f"state_dict; {REEXPORT_HINT}")


def _module_from(file, spec, read, format_name, exact_storage):
    state = load_or_explain(file.path, format_name, read)
    model = spec.build_model()
    try:
        load_state_dict_strict(model, state, source=file.path, exact_storage=exact_storage)
    except WeightsError as exc:
        raise ArtifactError(f"{exc}; {REEXPORT_HINT}") from None
    model.eval()

    def run(*inputs):
        with torch.no_grad():
            out = model(*inputs)
        return out if isinstance(out, tuple) else (out,)
    return run


def load_safetensors(file, spec):
    return _module_from(file, spec, lambda: load_safetensors_bytes(file.data), "safetensors weights", False)


def load_pth(file, spec):
    check_pth_archive(file.path, file.data)
    return _module_from(file, spec, lambda: torch.load(io.BytesIO(file.data), weights_only=True),
                        "state_dict .pth", True)
