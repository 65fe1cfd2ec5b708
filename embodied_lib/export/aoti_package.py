"""AOTInductor packages (.aoti.pt2): the program compiled ahead of time to a shared library."""
from __future__ import annotations

import torch

from embodied_lib.export.artifacts import load_or_explain, require_magic

ZIP_MAGIC = b"PK"  # an AOTInductor package is a zip archive


def input_shapes_metadata(spec) -> str:
    """Per-input shapes without the batch dimension, e.g. "256" or "3x400x400;10"."""
    return ";".join("x".join(str(d) for d in ts.shape[1:]) for ts in spec.inputs)


def save(spec, model, program, path):
    # The C++ runner reads the input shapes from the package, to refuse wrong-size input.
    metadata = {"embodied.model": spec.name, "embodied.input_shapes": input_shapes_metadata(spec)}
    torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                             inductor_configs={"aot_inductor.metadata": metadata})


def load(path, spec):
    require_magic(path, ZIP_MAGIC, 0, "AOTInductor package")
    runner = load_or_explain(path, "AOTInductor package", lambda: torch._inductor.aoti_load_package(str(path)))
    return lambda *inputs: runner(*inputs)
