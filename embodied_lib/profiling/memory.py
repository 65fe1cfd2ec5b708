"""Peak resident memory of a process that loads one model and runs it at batch 1.

Each measurement is a fresh Python process (``python -m embodied_lib.profiling.memory child ...``), so
one model's allocations never count for another. The child reports three numbers (MiB, from
/proc/self/status): ``baseline_mb``, its resident memory once the libraries are imported (torch, the workbook, ExecuTorch's
runtime with its quantized kernels, ONNX Runtime) and before the file is opened; ``peak_mb``, its peak (VmHWM) after loading the file and running golden vector 0 twenty
times; and ``model_mb = peak_mb - baseline_mb``, what this model in this runtime costs on top of the
imports. Every Python child imports the same libraries, so the baselines agree and ``model_mb`` compares
what each runtime holds for the model (weights, planned activations, kernels' packed copies); the native
runners (embodied_lib.native) report their whole-process peak, without Python or torch, which is the
footprint a robot pays.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


RUNS = 20
TORCHSCRIPT = "torchscript"   # the retired path (embodied_lib.profiling.torchscript), not an export format


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/self/status has no {field}; the memory harness needs Linux")


def _child(export_dir: Path, runtime: str, torchscript_file: Path | None) -> dict:
    import torch

    import executorch.kernels.quantized  # noqa: F401  every child pays the same imports, whichever runtime it runs
    import onnxruntime  # noqa: F401
    from executorch.runtime import Runtime

    from embodied_lib.registry import load_runtime
    from embodied_lib.runtime.latency import golden_batch1
    Runtime.get()
    inputs = golden_batch1(export_dir)
    # reset the high-water mark to the current RSS: reading golden.bin (all its vectors) must not count
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_mb("VmRSS")
    if runtime == TORCHSCRIPT:
        module = torch.jit.load(str(torchscript_file))   # our own trace, written by this benchmark run
        run = module
    else:
        run = load_runtime(export_dir, runtime, trusted=True)   # our own exports, signed on this machine
    with torch.no_grad():
        for _ in range(RUNS):
            run(*inputs)
    peak = _status_mb("VmHWM")
    return {"baseline_mb": round(baseline, 1), "peak_mb": round(peak, 1), "model_mb": round(peak - baseline, 1)}


def measure(export_dir, runtime: str, torchscript_file=None, timeout_s: float = 600) -> dict:
    """Run one child process; its numbers, or a RuntimeError with the child's last error line."""
    cmd = [sys.executable, "-m", "embodied_lib.profiling.memory", "child", str(export_dir), runtime]
    if torchscript_file is not None:
        cmd += ["--torchscript", str(torchscript_file)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(f"memory child for {runtime} on {export_dir} failed: {lines[-1] if lines else proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    child = sub.add_parser("child", help="load one model, run it at batch 1, print the memory JSON")
    child.add_argument("export_dir", type=Path)
    child.add_argument("runtime", help="an export format (embodied_lib.export.FORMATS) or 'torchscript'")
    child.add_argument("--torchscript", type=Path, help="the traced .pt file, for runtime torchscript")
    args = parser.parse_args(argv)
    if args.runtime == TORCHSCRIPT and args.torchscript is None:
        parser.error("runtime torchscript needs --torchscript FILE")
    print(json.dumps(_child(args.export_dir, args.runtime, args.torchscript)))


if __name__ == "__main__":
    main()
