"""INT8 exports: the same models, quantized, as ExecuTorch (XNNPACK) and ONNX Runtime files.

Two schemes, chosen per model by ``spec.quantization``:

- ``static`` (navigation, manipulation, the HRI heads): post-training static quantization. Weights
  per output channel, activations per tensor with ranges observed on ``calibration_inputs``, which the
  spec samples from its own seed range (config.CALIBRATION_SEED), never from the evaluation maps,
  scenes or test commands. ExecuTorch: the PT2E flow (``XNNPACKQuantizer`` -> ``prepare_pt2e`` ->
  calibrate -> ``convert_pt2e``) lowered to XNNPACK; ONNX Runtime: ``quantize_static`` in QDQ format. Both leave a
  softmax and what reads its probabilities float (the XNNPACK quantizer never annotates them; for ONNX Runtime
  ``save_onnx_int8`` excludes them, and says why).
- ``dynamic`` (the text pipeline): a sentence has no fixed activation range worth calibrating, and
  prepare_pt2e breaks transformers' attention-mask arithmetic (an int index turns float; measured,
  torch 2.13 / torchao). Linear layers get int8 per-channel weights with activations quantized per call
  (torchao ``Int8DynamicActivationIntxWeightConfig``, the ExecuTorch LLM "8da8w" recipe XNNPACK runs);
  the token-embedding table, 60 % of the weights, is stored int8 per row (ExecuTorch's
  ``EmbeddingQuantHandler``, run by its quantized kernels). ONNX Runtime: ``quantize_dynamic`` of
  MatMul, Gemm and Gather (the embedding) with per-channel weights.

ONNX Runtime's INT8 weights use 7 of their 8 bits in both schemes (``reduce_range``; ``save_onnx_int8`` says why).
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from embodied_lib.config import CALIBRATION_SEED
from embodied_lib.export.executorch_pte import load as load_pte, save as save_pte
from embodied_lib.export.onnx_model import save as save_onnx
from embodied_lib.export.torch_export import dynamic_shapes
from embodied_lib.quiet import native_stderr_filtered

SCHEMES = ("static", "dynamic")
CALIBRATION_BATCH = 16


def calibration_inputs(spec) -> tuple[np.ndarray, ...]:
    """Realistic inputs from the spec's sampler, seeded apart from evaluation, parity and golden vectors."""
    return spec.sample_inputs(spec.calibration_inputs, CALIBRATION_SEED)


def _batches(spec, inputs):
    n, size = inputs[0].shape[0], min(CALIBRATION_BATCH, spec.max_batch)
    for i in range(0, n, size):
        yield tuple(a[i:i + size] for a in inputs)


@contextlib.contextmanager
def _quiet():
    """The quantization libraries print deprecation notes, per-layer progress and a pre-processing hint
    (which does not apply: we pre-process) on every call; none of it is ours to act on."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _check_scheme(spec):
    if spec.quantization not in SCHEMES:
        raise ValueError(f"{spec.name}: unknown quantization scheme {spec.quantization!r}; one of {SCHEMES}")


def quantized_program(spec, model) -> torch.export.ExportedProgram:
    """An exported program with INT8 weights (and activations, static) ready for XNNPACK lowering."""
    _check_scheme(spec)
    example = spec.example_inputs(batch=2)
    with _quiet():
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        if spec.quantization == "static":
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer, get_symmetric_quantization_config)
            captured = torch.export.export(model.eval(), example, dynamic_shapes=dynamic_shapes(spec),
                                           strict=False).module()
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(captured, quantizer)
            with torch.no_grad():
                for batch in _batches(spec, calibration_inputs(spec)):
                    prepared(*(torch.from_numpy(a) for a in batch))
            quantized = convert_pt2e(prepared)
        else:
            quantized = _dynamic_int8_module(model)
        return torch.export.export(quantized, example, dynamic_shapes=dynamic_shapes(spec), strict=False)


def _dynamic_int8_module(model):
    import executorch.kernels.quantized  # noqa: F401  registers quantized_decomposed::embedding_byte
    with native_stderr_filtered():   # its tokenizer library logs a line when it loads (embodied_lib.quiet)
        from executorch.examples.models.llama.source_transformation.quantize import EmbeddingQuantHandler
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis

    quantized = copy.deepcopy(model).eval()
    quantized = EmbeddingQuantHandler(quantized, bitwidth=8, group_size=None, quantize_with_hqq=False).quantized_model()
    quantize_(quantized, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0)),
              filter_fn=lambda module, _: isinstance(module, torch.nn.Linear))
    return quantized


def save_executorch_int8(spec, model, program, path):
    save_pte(spec, model, quantized_program(spec, model), path)


def load_executorch_int8(file, spec):
    import executorch.kernels.quantized  # noqa: F401  the runtime kernels of int8 embedding tables
    return load_pte(file, spec)


def softmax_and_readers(path) -> list[str]:
    """The names of an ONNX graph's Softmax nodes and of the nodes that read their output (static INT8 leaves them
    float: ``save_onnx_int8`` says why)."""
    import onnx

    graph = onnx.load(str(path)).graph
    probabilities = {o for n in graph.node if n.op_type == "Softmax" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "Softmax" or probabilities & set(n.input)]


class _CalibrationReader:
    """onnxruntime.quantization's CalibrationDataReader protocol over calibration_inputs."""

    def __init__(self, spec):
        names = [s.name for s in spec.inputs]
        self._items = iter([dict(zip(names, batch)) for batch in _batches(spec, calibration_inputs(spec))])

    def get_next(self):
        return next(self._items, None)


def save_onnx_int8(spec, model, program, path, float_softmax: bool = True):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _check_scheme(spec)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        fp32, prepared = Path(tmp) / "fp32.onnx", Path(tmp) / "prepared.onnx"
        save_onnx(spec, model, program, fp32)
        # ONNX shape inference and graph clean-up first, as onnxruntime's quantization docs ask; its symbolic
        # pass cannot follow the attention mask's dynamic shapes, the plain ONNX one can.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        # float_softmax: a softmax and what reads its probabilities stay float, as the XNNPACK quantizer of the
        # ExecuTorch twin leaves them (it annotates conv, linear, add, mul, cat; ONNX Runtime's default quantizes
        # every op it can). Measured (issue 43, tools/int8_parity_study.py): manipulation's spatial softmax spreads
        # its probabilities over 625 cells, mostly below one INT8 step of a per-tensor [0, 1] scale, and the
        # keypoints they average were the largest loss of the graph (SQNR 18.7 dB, 36.0 float); quantized there,
        # 15 quick trainings read max |diff| 0.25-0.73 (two over the 0.6 rule), float there 0.11-0.24, as the
        # ExecuTorch INT8 twins (0.13-0.23).
        # reduce_range: 7-bit weights. On x86 without VNNI ONNX Runtime runs U8S8 through VPMADDUBSW, whose
        # 16-bit pair sums saturate at 8-bit weights (its docs' "saturation" note; measured on AVX2 EPYC:
        # navigation max |diff| 0.46 with graph optimisations on, 0.03 off or with reduce_range).
        if spec.quantization == "static":
            quantize_static(str(prepared), str(path), _CalibrationReader(spec), quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=True, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8,
                            nodes_to_exclude=softmax_and_readers(prepared) if float_softmax else None)
        else:
            quantize_dynamic(str(prepared), str(path), per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm", "Gather"])
