"""ExecuTorch programs (.pte) lowered to the XNNPACK backend, and the same program with no delegate.

A .pte is what the ExecuTorch runtime executes (a .pt2 is a torch.export or
AOTInductor file, not something ExecuTorch can run). The program with no delegate runs
ExecuTorch's own CPU kernels (the wheel's kernel library: optimized kernels where it has them,
portable reference kernels elsewhere, convolution among them). Beside the XNNPACK file it
measures what the delegate's SIMD kernels buy (notebook 08).
"""
from __future__ import annotations

import torch

from embodied_lib.export.artifacts import load_or_explain, require_magic
from embodied_lib.quiet import native_stderr_filtered

PTE_MAGIC = b"ET"  # flatbuffer file identifier "ETxx" at byte 4


def _shape_env(program):
    for node in program.graph.nodes:
        for dim in getattr(node.meta.get("val"), "shape", ()):
            if isinstance(dim, torch.SymInt):
                return dim.node.shape_env
    return None


def save(spec, model, program, path):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    _lower(program, path, [XnnpackPartitioner()])


def save_batch1(spec, model, program, path):
    """The XNNPACK program traced for batch 1 alone: ExecuTorch plans activation memory for the largest batch a
    program accepts, so the shipped dynamic-batch file carries the plan of its max_batch (manipulation: 122 MiB at
    64 against 1.8 MiB at 1) into every robot that only ever runs batch 1."""
    import dataclasses

    from embodied_lib.export.torch_export import export_program

    save(spec, model, export_program(dataclasses.replace(spec, max_batch=1), model), path)


def save_undelegated(spec, model, program, path):
    _lower(program, path, [])


def _lower(program, path, partitioners):
    from executorch.exir import to_edge_transform_and_lower

    # Lowering re-traces each convolution with fake tensors; for a stride-1 conv torch asks "would
    # NNPACK take this (batch >= 16)?", answers from the example batch and narrows the batch range
    # to [2, 15] for good, so the .pte refused batch 16+ (measured, torch 2.13 / ExecuTorch 1.5.1).
    # The answer only picks a memory format; XNNPACK resizes at run time. Restore the exported range.
    env = _shape_env(program)
    ranges = dict(env.var_to_range) if env is not None else {}
    edge = to_edge_transform_and_lower(program, partitioner=partitioners)
    if env is not None:
        env.var_to_range.update(ranges)
    lowered = edge.to_executorch()
    with open(path, "wb") as f:
        lowered.write_to_file(f)


def load(file, spec):
    """A verified .pte (artifacts.ModelBytes) from its bytes, with ExecuTorch's internal-consistency
    verification (the program's tables are checked before use), after the sandbox has opened and run it
    once (pte_sandbox: a damaged program cannot abort this process)."""
    from executorch.runtime import Runtime, Verification

    from embodied_lib.export.pte_sandbox import probe

    require_magic(file, PTE_MAGIC, 4, "ExecuTorch .pte")
    probe(file.path, file.data, [t.numpy() for t in spec.example_inputs(batch=1)])
    with native_stderr_filtered():   # XNNPACK's ARM cpuinfo probes on the first load (embodied_lib.quiet)
        program = load_or_explain(file.path, "ExecuTorch program", lambda: Runtime.get().load_program(
            file.data, verification=Verification.InternalConsistency))
        method = load_or_explain(file.path, "ExecuTorch program", lambda: program.load_method("forward"))

    data = file.data

    def run(*inputs):
        # holds the program and its bytes: the runtime reads the program in place, so a program collected after
        # load_method leaves the method reading freed memory
        assert program is not None and data is not None
        return tuple(method.execute(list(inputs)))
    return run
