"""ONNX models (.onnx) from the dynamo exporter, run with ONNX Runtime."""
from __future__ import annotations

import warnings

import torch

from embodied_lib.export.artifacts import ArtifactError, load_or_explain
from embodied_lib.export.torch_export import dynamic_shapes


def save(spec, model, program, path):
    # external_data=False keeps weights inside the one .onnx file the runners are given. The exporter warns
    # that a second input's "batch" axis name is dropped because it equals the first's: that is the contract.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will not be used, since it shares the same shape constraints")
        torch.onnx.export(model.eval(), spec.example_inputs(batch=2), str(path), dynamo=True,
                          input_names=[s.name for s in spec.inputs],
                          output_names=[s.name for s in spec.outputs],
                          dynamic_shapes=dynamic_shapes(spec), external_data=False,
                          optimize=True, verbose=False)


def load(file, spec):
    """A verified model (artifacts.ModelBytes), from its bytes in memory."""
    import onnxruntime as ort

    path = file.path
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = load_or_explain(path, "ONNX model", lambda: ort.InferenceSession(
        file.data, options, providers=["CPUExecutionProvider"]))
    names = [s.name for s in spec.inputs]
    for side, declared, found in (("inputs", spec.inputs, session.get_inputs()), ("outputs", spec.outputs, session.get_outputs())):
        got = [(f.name, len(f.shape)) for f in found]
        want = [(t.name, len(t.shape)) for t in declared]
        if got != want:   # the file is an ONNX model, but not of this contract
            raise ArtifactError(f"{path} has {side} {got} (name, rank); the {spec.name} contract has {want}")
    return lambda *inputs: tuple(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)}))
