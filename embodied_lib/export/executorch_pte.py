"""ExecuTorch programs (.pte) lowered to the XNNPACK backend.

A .pte is what the ExecuTorch runtime executes (a .pt2 is a torch.export or
AOTInductor file, not something ExecuTorch can run).
"""
from __future__ import annotations

from embodied_lib.export.artifacts import load_or_explain, require_magic

PTE_MAGIC = b"ET"  # flatbuffer file identifier "ETxx" at byte 4


def save(spec, model, program, path):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    with open(path, "wb") as f:
        lowered.write_to_file(f)


def load(path, spec):
    from executorch.runtime import Runtime

    require_magic(path, PTE_MAGIC, 4, "ExecuTorch .pte")
    method = load_or_explain(path, "ExecuTorch program",
                             lambda: Runtime.get().load_program(str(path)).load_method("forward"))
    return lambda *inputs: tuple(method.execute(list(inputs)))
