"""Golden test vectors: fixed inputs and their eager outputs, for the native runners.

A deliberately simple little-endian binary format, readable in C++ and Rust with no
library (see native/): ::

    8 bytes  magic "EMBGOLD1"
    u32      number of tensors
    per tensor:
      u32 name length, name (UTF-8, "input.<name>" or "output.<name>")
      u32 rank, rank x i64 dimensions
      float32 data, C order

Row ``i`` of every tensor belongs to vector ``i``; inputs come in the model's input order.
Integer inputs (token ids, masks) are stored as float32 too: exact below 2**24.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from embodied_lib.config import GOLDEN_SEED

GOLDEN_MAGIC = b"EMBGOLD1"


def write_golden(path, tensors: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        f.write(GOLDEN_MAGIC)
        f.write(struct.pack("<I", len(tensors)))
        for name, array in tensors.items():
            array = np.ascontiguousarray(array, dtype="<f4")
            encoded = name.encode()
            f.write(struct.pack("<I", len(encoded)) + encoded)
            f.write(struct.pack("<I", array.ndim) + struct.pack(f"<{array.ndim}q", *array.shape))
            f.write(array.tobytes())


def read_golden(path) -> dict[str, np.ndarray]:
    data = Path(path).read_bytes()
    if data[:8] != GOLDEN_MAGIC:
        raise ValueError(f"{path} is not a golden-vector file (magic {data[:8]!r})")
    (count,), pos, tensors = struct.unpack_from("<I", data, 8), 12, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + length].decode()
        pos += 4 + length
        (rank,) = struct.unpack_from("<I", data, pos)
        shape = struct.unpack_from(f"<{rank}q", data, pos + 4)
        pos += 4 + 8 * rank
        n = int(np.prod(shape))
        if pos + 4 * n > len(data):
            raise ValueError(f"{path} is truncated inside tensor {name!r}")
        tensors[name] = np.frombuffer(data, dtype="<f4", count=n, offset=pos).reshape(shape).copy()
        pos += 4 * n
    return tensors


def make_golden(spec, model, n: int = 32, seed: int = GOLDEN_SEED) -> dict[str, np.ndarray]:
    """``n`` realistic inputs (the spec's sampler) and the eager model's outputs."""
    inputs = spec.sample_inputs(n, seed)
    with torch.no_grad():
        outputs = model.eval()(*(torch.from_numpy(a) for a in inputs))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    tensors = {f"input.{s.name}": a for s, a in zip(spec.inputs, inputs)}
    tensors.update({f"output.{s.name}": o.numpy() for s, o in zip(spec.outputs, outputs)})
    return tensors
