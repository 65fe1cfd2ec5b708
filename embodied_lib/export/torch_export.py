"""torch.export programs (.pt2): the graph every other compiled format starts from."""
from __future__ import annotations

import torch
from torch.export import Dim

from embodied_lib.export.artifacts import load_or_explain
from embodied_lib.spec import ModelSpec


def dynamic_shapes(spec: ModelSpec) -> dict:
    """One shared Dim per named dimension (``batch``, ``sequence``, ...) across all inputs; a dimension whose
    range is a single size (max_batch 1) is static."""
    names = {d for ts in spec.inputs for d in ts.shape if isinstance(d, str) and spec.dim_range(d)[0] < spec.dim_range(d)[1]}
    dims = {name: Dim(name, min=spec.dim_range(name)[0], max=spec.dim_range(name)[1]) for name in names}
    return {ts.name: {i: dims[d] for i, d in enumerate(ts.shape) if d in dims} for ts in spec.inputs}


def export_program(spec: ModelSpec, model: torch.nn.Module) -> torch.export.ExportedProgram:
    # Batch 2 example: a batch-1 example would specialise the batch dimension to 1.
    return torch.export.export(model.eval(), spec.example_inputs(batch=2),
                               dynamic_shapes=dynamic_shapes(spec), strict=False)


def save(spec, model, program, path):
    torch.export.save(program, str(path))


def load(file, spec):
    """A verified program (artifacts.ModelBytes), from its bytes in memory."""
    import io

    module = load_or_explain(file.path, "torch.export program", lambda: torch.export.load(io.BytesIO(file.data)).module())
    return lambda *inputs: module(*inputs)
