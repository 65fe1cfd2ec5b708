"""ModelSpec: one description of a model, read by training, export, parity, policies and the runners.

A spec says how to build the module, what goes in and out (names, shapes with a
dynamic ``"batch"`` dimension, dtypes), **how each output is judged** (``Judgement``:
a discrete argmax, probabilities with a confidence threshold, or continuous values with
bounds and the binary decisions read from them), how to draw realistic example inputs,
and the metadata the native side needs. Export, parity and the policies read nothing else;
the manifest carries the same description to C++ and Rust.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

BATCH = "batch"  # the name of the dynamic leading dimension in every shape
ALL_FORMATS = ("torch_export", "executorch", "onnx", "safetensors", "pth", "aoti", "executorch_int8", "onnx_int8")
# the robot's models also ship an ExecuTorch program for batch 1 only, the one the control loops load: ExecuTorch
# plans activation memory for the largest batch a program takes (manipulation: 122 MiB at 64, 1.8 MiB at 1)
ROBOT_FORMATS = (*ALL_FORMATS, "executorch_batch1")


class InputError(ValueError):
    """An input that does not match the model's contract (shape, dtype, NaN/Inf)."""


@dataclass(frozen=True)
class Threshold:
    """A binary decision read from one element of a continuous output: ``value > above``."""
    name: str
    index: int
    above: float = 0.0

    def to_json(self) -> dict:
        return {"name": self.name, "index": self.index, "above": self.above}


@dataclass(frozen=True)
class Judgement:
    """How an output is judged: what decision it means, and so what parity must preserve.

    - ``discrete``: scores whose argmax is the action (navigation's Q-values); parity keeps the argmax.
    - ``probabilities``: a softmax whose argmax is the decision, accepted when its probability reaches
      ``threshold`` (the HRI action type); parity keeps the argmax.
    - ``continuous``: values inside ``bounds`` (manipulation's action, the HRI parameters); parity
      compares values, plus each binary ``decisions`` entry (manipulation: gripper closed), never an argmax.
    """
    kind: str
    labels: tuple = ()
    threshold: float | None = None
    bounds: tuple | None = None          # (low, high) for every element, or None if unbounded
    decisions: tuple = ()                # Threshold rules on a continuous output

    KINDS = ("discrete", "probabilities", "continuous")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown judgement kind {self.kind!r}; one of {self.KINDS}")

    @property
    def uses_argmax(self) -> bool:
        return self.kind in ("discrete", "probabilities")

    def to_json(self) -> dict:
        out = {"kind": self.kind}
        if self.labels:
            out["labels"] = list(self.labels)
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.bounds is not None:
            out["bounds"] = list(self.bounds)
        if self.decisions:
            out["decisions"] = [d.to_json() for d in self.decisions]
        return out


def discrete(labels) -> Judgement:
    return Judgement("discrete", labels=tuple(labels))


def probabilities(labels, threshold: float | None) -> Judgement:
    return Judgement("probabilities", labels=tuple(labels), threshold=threshold, bounds=(0.0, 1.0))


def continuous(bounds=None, decisions=()) -> Judgement:
    return Judgement("continuous", bounds=tuple(bounds) if bounds is not None else None, decisions=tuple(decisions))


# Float inputs without a declared range must stay below this magnitude: nothing a sensor produces is
# larger, and values near float32's limit (3e38) overflow to Inf inside the first layer.
MAX_INPUT_MAGNITUDE = 1e4


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, with BATCH for the dynamic batch dimension
    dtype: str = "float32"
    judged: Judgement | None = None  # outputs only: how the values are read
    valid: tuple | None = None       # inputs: (low, high) inclusive, what the sensor/tokenizer can produce
    nonzero_rows: bool = False       # inputs: every row must hold a non-zero value (an attention mask)

    def value_range(self) -> tuple[float, float]:
        return self.valid if self.valid is not None else (-MAX_INPUT_MAGNITUDE, MAX_INPUT_MAGNITUDE)

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    def to_json(self) -> dict:
        out = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.judged is not None:
            out["judged"] = self.judged.to_json()
        else:  # an input: the value rules every runtime (Python, C++, Rust) checks before the model
            out["valid"] = list(self.value_range())
            if self.nonzero_rows:
                out["nonzero_rows"] = True
        return out


@dataclass
class ModelSpec:
    name: str
    build: Callable[..., torch.nn.Module]
    config: dict                          # keyword arguments of ``build``
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sample_inputs: Callable[[int, int], tuple[np.ndarray, ...]]  # (n, seed) -> realistic inputs
    metadata: dict = field(default_factory=dict)
    spec_args: dict = field(default_factory=dict)  # keyword arguments that rebuild this spec
    tolerance: float = 1e-5               # max |diff| allowed between a runtime and eager
    max_batch: int = 1024                 # upper bound of the dynamic batch in exports
    dim_ranges: dict = field(default_factory=dict)  # other named dynamic dims: name -> (min, max)
    formats: tuple = ALL_FORMATS          # what export_all writes for this model
    parity_inputs: int = 1000             # how many sampled inputs the parity check runs
    golden_count: int = 32                # golden vectors written for the native runners
    # INT8 exports (embodied_lib.export.quantize): "static" (calibrated activations) or "dynamic" (per call);
    # int8_tolerance: the max |diff| to eager allowed for them; int8_agreement: the share of decisions
    # (argmax, gripper) that must stay on sampled inputs, leaving out those whose reference margin is within
    # int8_tie_margin (embodied_lib.export.parity_rule)
    quantization: str = "static"
    calibration_inputs: int = 256
    int8_tolerance: float = 0.1
    int8_tie_margin: float = 0.01
    int8_agreement: float = 0.95
    # writes files a deployment needs beside the model (e.g. tokenizer.json): (spec, model, out_dir) -> [paths]
    write_extras: Callable | None = None

    def __post_init__(self):
        missing = [o.name for o in self.outputs if o.judged is None]
        if missing:
            raise ValueError(f"{self.name}: outputs {missing} do not say how they are judged (TensorSpec.judged)")

    def dim_range(self, name: str) -> tuple[int, int]:
        return (1, self.max_batch) if name == BATCH else tuple(self.dim_ranges[name])

    def build_model(self) -> torch.nn.Module:
        return self.build(**self.config).eval()

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Inputs for tracing; batch >= 2 so the batch dimension stays dynamic (a spec with max_batch 1 gets
        batch 1: its exports are static batch-1 programs)."""
        return tuple(torch.from_numpy(a) for a in self.sample_inputs(min(batch, self.max_batch), seed))

    def check_inputs(self, *inputs) -> tuple[torch.Tensor, ...]:
        """Validate inputs against the contract and return them as tensors.

        Raises InputError naming the expected shape/dtype instead of letting a
        mismatch fail deep inside a runtime.
        """
        if len(inputs) != len(self.inputs):
            raise InputError(f"{self.name} takes {len(self.inputs)} input(s) "
                             f"({', '.join(s.describe() for s in self.inputs)}), got {len(inputs)}")
        checked, named = [], {}
        for value, ts in zip(inputs, self.inputs):
            if isinstance(value, np.ndarray):
                value = torch.from_numpy(value)
            if not isinstance(value, torch.Tensor):
                raise InputError(f"{ts.name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
            if str(value.dtype).replace("torch.", "") != ts.dtype:
                raise InputError(f"{ts.name} must have dtype {ts.dtype}, got {value.dtype} "
                                 f"(expected {ts.describe()})")
            expected = list(ts.shape)
            ok = value.dim() == len(expected) and all(
                isinstance(d, str) or d == actual for d, actual in zip(expected, value.shape))
            if not ok:
                raise InputError(f"{ts.name} has shape {list(value.shape)}, expected {ts.describe()}")
            for d, actual in zip(expected, value.shape):
                if isinstance(d, str):
                    lo, hi = self.dim_range(d)
                    if not lo <= actual <= hi:
                        raise InputError(f"{ts.name} {d} size must be in [{lo}, {hi}], got {actual}")
            for d, actual in zip(expected, value.shape):   # one size per named dimension across inputs
                if isinstance(d, str):
                    first = named.setdefault(d, (ts.name, actual))
                    if first[1] != actual:
                        raise InputError(f"{ts.name} has {d} size {actual} but {first[0]} has {first[1]}; "
                                         f"every input must share the {d} dimension")
            self._check_values(ts, value)
            checked.append(value.contiguous())
        return tuple(checked)

    @staticmethod
    def _check_values(ts: TensorSpec, value: torch.Tensor) -> None:
        # NumPy, not torch: on a camera frame torch wakes its OpenMP pool, whose spinning
        # threads then fight ONNX Runtime's for the cores (p99 40 ms for a 1.7 ms model on 2 cores).
        array = value.detach().numpy()
        if value.is_floating_point() and not np.isfinite(array).all():
            raise InputError(f"{ts.name} contains NaN or Inf")
        lo, hi = ts.value_range()
        if array.size and (array.min() < lo or array.max() > hi):
            bad = array[(array < lo) | (array > hi)].flat[0]
            raise InputError(f"{ts.name} holds {bad:g}, outside the valid range [{lo:g}, {hi:g}]"
                             + (" (a camera frame is float in [0, 1]: divide 0-255 pixels by 255)"
                                if ts.name == "image" and hi == 1 else ""))
        if ts.nonzero_rows and array.size and not array.reshape(len(array), -1).any(axis=1).all():
            raise InputError(f"{ts.name} has a row of zeros (an attention mask must keep at least one token)")

    def architecture(self, model: torch.nn.Module) -> dict | None:
        """The layer graph the native twins rebuild (embodied_lib.architecture), if the model has one."""
        describe = getattr(model, "architecture", None)
        if not describe:
            return None
        # every tensor of the weight files, as the twins must find it: they refuse any other dtype or shape
        weights = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                   for k, v in model.state_dict().items()}
        return {"inputs": [s.name for s in self.inputs], "nodes": describe(), "weights": weights}

    def to_json(self) -> dict:
        return {"model": self.name, "spec_args": self.spec_args, "config": self.config,
                "inputs": [s.to_json() for s in self.inputs],
                "outputs": [s.to_json() for s in self.outputs],
                "metadata": self.metadata, "tolerance": self.tolerance,
                "max_batch": self.max_batch, "dim_ranges": self.dim_ranges}


# -- checkpoints: safetensors weights + JSON config, LeRobot-style -------------------

def save_checkpoint(spec: ModelSpec, model: torch.nn.Module, directory, extra: dict | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps({**spec.to_json(), **(extra or {})}, indent=2))
    return directory


def read_checkpoint(directory, spec_of) -> tuple:
    """``(spec, model)`` from ``directory``: ``spec_of(config)`` rebuilds the spec from ``config.json``, the weights
    come from ``model.safetensors`` (no pickle), checked entry by entry (load_state_dict_strict)."""
    directory = Path(directory)
    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {path} is missing; train the model first "
                                    f"(notebooks 01-03 or `make run`)")
    spec = spec_of(json.loads(config_path.read_text()))
    model = spec.build_model()
    load_state_dict_strict(model, load_file(weights_path), source=weights_path)
    return spec, model.eval()


class WeightsError(ValueError):
    """Weights that are not exactly what the model holds (names, dtypes, shapes, layout)."""


def _dense_strides(shape) -> tuple:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def check_state_dict(model: torch.nn.Module, state, source, exact_storage: bool = False) -> None:
    """Every entry exactly what the model holds, before any is used: a dict of named tensors with the model's
    names, dtypes and shapes, each dense with C-order strides (no stride-0 or overlapping views). With
    ``exact_storage`` (a .pth, where every tensor has its own storage record) each storage must hold exactly
    the tensor's bytes from offset 0: a record whose size disagrees with its element count is refused.
    A relabelled dtype (float32 bytes read as int32) would otherwise be converted and run, silently wrong."""
    if not isinstance(state, dict):
        raise WeightsError(f"weights in {source} are a {type(state).__name__}, not a dict of named tensors")
    expected = model.state_dict()
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightsError(f"weights in {source} have a key {key!r} that is not a name")
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"weights in {source}: entry {key} is a {type(value).__name__}, not a tensor")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise WeightsError(f"weights in {source} do not fit {type(model).__name__}: missing={missing} "
                           f"unexpected={unexpected} wrong_shape={wrong}")
    for key, want in expected.items():
        got = state[key]
        if got.dtype != want.dtype:
            raise WeightsError(f"weights in {source}: entry {key} is {got.dtype}, the model holds {want.dtype} "
                               f"(a relabelled tensor is not loaded)")
        if got.numel() > 1 and tuple(got.stride()) != _dense_strides(got.shape):
            raise WeightsError(f"weights in {source}: entry {key} has strides {tuple(got.stride())}, not the dense "
                               f"{_dense_strides(got.shape)} of shape {tuple(got.shape)} (a stride-0 or overlapping view)")
        if exact_storage:
            nbytes = got.numel() * got.element_size()
            if got.storage_offset() != 0 or got.untyped_storage().nbytes() != nbytes:
                raise WeightsError(f"weights in {source}: entry {key} has a storage of "
                                   f"{got.untyped_storage().nbytes()} bytes at offset {got.storage_offset()} for "
                                   f"{got.numel()} elements ({nbytes} bytes)")


def load_state_dict_strict(model: torch.nn.Module, state, source, exact_storage: bool = False) -> None:
    """Load weights after check_state_dict, naming a bad entry instead of a torch traceback."""
    check_state_dict(model, state, source, exact_storage)
    model.load_state_dict(state)
