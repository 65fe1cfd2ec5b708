"""AOTInductor packages (.aoti.pt2): the program compiled ahead of time to a shared library."""
from __future__ import annotations

import torch

from embodied_lib.export.artifacts import load_or_explain, require_magic

ZIP_MAGIC = b"PK"  # an AOTInductor package is a zip archive


def save(spec, model, program, path):
    torch._inductor.aoti_compile_and_package(program, package_path=str(path))


def load(path, spec):
    require_magic(path, ZIP_MAGIC, 0, "AOTInductor package")
    runner = load_or_explain(path, "AOTInductor package", lambda: torch._inductor.aoti_load_package(str(path)))
    return lambda *inputs: runner(*inputs)
