"""Known, harmless noise from the libraries we call, filtered at its source, narrowly.

Each filter names the message and the module it comes from; everything else still reaches the user. The
notebooks' test (tests/test_notebooks.py) fails on any warning or stderr line an executed notebook shows that
is not on its short allow-list, so a new source of noise is seen, not buried.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import warnings

# XNNPACK's cpuinfo probes ARM-only files (/sys/devices/soc0/image_version, midr_el1) on the first ExecuTorch
# program a process loads and logs each failed probe, five lines, on an x86 machine where they cannot exist;
# ExecuTorch's tokenizer library (pytorch_tokenizers, loaded by its embedding quantizer) logs one line at load.
NATIVE_NOISE = re.compile(r"^(\[cpuinfo_utils\.cpp:\d+\] |I tokenizers:regex\.cpp:\d+\] Registering override fallback regex)")


class _MessageFilter(logging.Filter):
    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def install() -> None:
    """Python-level filters; idempotent (embodied_lib's import calls it)."""
    # torch 2.13 warns "isinstance(treespec, LeafSpec) is deprecated" whenever ExecuTorch, Inductor or the ONNX
    # exporter copies a program's input specs: inside those libraries, once per export, nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated", category=FutureWarning)
    # torchao (imported by ExecuTorch's quantizer, partitioner and runtime) registers Enum classes with torch's
    # pytree, which logs a deprecation per class at import: noise about torchao's code, before every INT8 export.
    pytree = logging.getLogger("torch.utils._pytree")
    if not any(isinstance(f, _MessageFilter) for f in pytree.filters):
        pytree.addFilter(_MessageFilter(r"register_constant\(\) on Enum subclasses is deprecated"))


@contextlib.contextmanager
def native_stderr_filtered(pattern: re.Pattern = NATIVE_NOISE):
    """Run a block whose native code writes to stderr, and pass on only the lines not matching ``pattern``.
    Native code reaches stderr two ways: file descriptor 2 directly, or (ExecuTorch's Python bindings) Python's
    ``sys.stderr``, which in a Jupyter kernel is not fd 2; both are caught. Python's warnings filters see neither."""
    sys.stderr.flush()
    saved = os.dup(2)
    python_side = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            with contextlib.redirect_stderr(python_side):
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace") + python_side.getvalue()
            kept = [line for line in text.splitlines(keepends=True) if not pattern.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
