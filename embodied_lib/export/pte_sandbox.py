"""Open and run an ExecuTorch program once in a child process before this process opens it.

Why a child: ExecuTorch's Python bindings send the runtime's log through pybind11, which calls
``std::terminate`` when a message holds bytes that are not UTF-8, such as a backend or operator name from a
damaged ``.pte``; the process (a notebook's kernel) dies with SIGABRT where an exception was wanted, and no
check in Python can stop it once the runtime has the file. In a child, that death is the child's, and it
becomes an ArtifactError naming the file. The child is started once per process and kept (its start-up, an
ExecuTorch import, costs about a second; each probe after that a load and one batch-1 run); a program whose
bytes passed is not probed again. The parent then loads the same bytes, with the same verification.

Protocol (stdin/stdout of ``python -m embodied_lib.export.pte_sandbox``): the parent writes a 4-byte length
and a JSON header ``{"program": N, "inputs": [[dtype, shape], ...]}``, then the program's N bytes and each
input's raw bytes; the child answers one JSON line, ``{"ok": true}`` or ``{"error": "..."}``.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import signal
import struct
import subprocess
import sys
import tempfile
import threading

import numpy as np

from embodied_lib.export.artifacts import REEXPORT_HINT, ArtifactError


class _Child:
    def __init__(self):
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.proc = subprocess.Popen([sys.executable, "-m", "embodied_lib.export.pte_sandbox"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log)

    def ask(self, header: dict, blobs: list[bytes]) -> dict | None:
        """The child's answer, or None if it died."""
        encoded = json.dumps(header).encode()
        try:
            self.proc.stdin.write(struct.pack("<I", len(encoded)) + encoded)
            for blob in blobs:
                self.proc.stdin.write(blob)
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        return json.loads(line) if line else None

    def death(self) -> str:
        code = self.proc.wait()
        self.log.seek(0)
        tail = self.log.read()[-300:].decode("utf-8", "replace").strip().replace("\n", " | ")
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return how + (f"; its last output: {tail}" if tail else "")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        self.log.close()


_lock = threading.Lock()
_child: _Child | None = None
_passed: set[str] = set()


def _close():
    if _child is not None:
        _child.close()


atexit.register(_close)


def probe(path, data: bytes, inputs) -> None:
    """Load ``data`` (a .pte's bytes) and run it once on ``inputs`` in the child; ArtifactError if that fails
    or kills the child."""
    global _child
    digest = hashlib.sha256(data).hexdigest()
    arrays = [np.ascontiguousarray(np.asarray(a)) for a in inputs]
    with _lock:
        if digest in _passed:
            return
        if _child is None or _child.proc.poll() is not None:
            _child = _Child()
        header = {"program": len(data), "inputs": [[a.dtype.str, list(a.shape)] for a in arrays]}
        answer = _child.ask(header, [data] + [a.tobytes() for a in arrays])
        if answer is None:
            why, _child = _child.death(), None
            raise ArtifactError(f"cannot load {path} as an ExecuTorch program: the runtime crashed on it ({why}) "
                                f"in the sandbox process, so it was not opened here; {REEXPORT_HINT}")
        if "error" in answer:
            raise ArtifactError(f"cannot load {path} as an ExecuTorch program: {answer['error'][:300]}; {REEXPORT_HINT}")
        _passed.add(digest)


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _serve() -> None:
    # The bindings themselves, not executorch.runtime: that imports all of executorch.exir (~5 s on 2 cores)
    import torch
    import executorch.kernels.quantized  # noqa: F401  INT8 programs need the quantized kernels registered
    from executorch.extension.pybindings import _C

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            (length,) = struct.unpack("<I", _read_exact(stdin, 4))
            header = json.loads(_read_exact(stdin, length))
            program = _read_exact(stdin, header["program"])
            inputs = []
            for dtype, shape in header["inputs"]:
                dtype = np.dtype(dtype)
                count = int(np.prod(shape)) * dtype.itemsize
                inputs.append(torch.from_numpy(np.frombuffer(_read_exact(stdin, count), dtype).reshape(shape).copy()))
        except EOFError:
            return
        try:
            loaded = _C._load_program_from_buffer(program, enable_etdump=False, debug_buffer_size=0,
                                                  program_verification=_C.Verification.InternalConsistency,
                                                  data_path=None)
            loaded.load_method("forward")(inputs)
            answer = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure is the answer, named
            text = str(exc).strip().splitlines()
            answer = {"error": text[0] if text else type(exc).__name__}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    _serve()
