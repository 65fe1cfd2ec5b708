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


def load(file, spec):
    """A verified package (artifacts.ModelBytes): the loader takes a path, so it gets a private copy of the
    verified bytes (a fresh 0700 folder), never the export folder's file, which may have changed since."""
    import shutil
    import tempfile
    from pathlib import Path

    require_magic(file, ZIP_MAGIC, 0, "AOTInductor package")
    private = Path(tempfile.mkdtemp(prefix="aoti-"))
    try:
        copy = private / file.path.name
        copy.write_bytes(file.data)
        runner = load_or_explain(file.path, "AOTInductor package", lambda: torch._inductor.aoti_load_package(str(copy)))
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return lambda *inputs: runner(*inputs)
