"""ModelSpec: one description of a model, read by training, export, parity and the runners.

A spec says how to build the module, what goes in and out (names, shapes with a
dynamic ``"batch"`` dimension, dtypes), how to draw realistic example inputs, and
the metadata the native side needs. Export and parity code reads nothing else.
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
ALL_FORMATS = ("torch_export", "executorch", "onnx", "safetensors", "pth", "aoti")


class InputError(ValueError):
    """An input that does not match the model's contract (shape, dtype, NaN/Inf)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, with BATCH for the dynamic batch dimension
    dtype: str = "float32"

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


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
    # writes files a deployment needs beside the model (e.g. tokenizer.json): (model, out_dir) -> [paths]
    write_extras: Callable | None = None

    def dim_range(self, name: str) -> tuple[int, int]:
        return (1, self.max_batch) if name == BATCH else tuple(self.dim_ranges[name])

    def build_model(self) -> torch.nn.Module:
        return self.build(**self.config).eval()

    def example_inputs(self, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Inputs for tracing; batch >= 2 so the batch dimension stays dynamic."""
        return tuple(torch.from_numpy(a) for a in self.sample_inputs(batch, seed))

    def check_inputs(self, *inputs) -> tuple[torch.Tensor, ...]:
        """Validate inputs against the contract and return them as tensors.

        Raises InputError naming the expected shape/dtype instead of letting a
        mismatch fail deep inside a runtime.
        """
        if len(inputs) != len(self.inputs):
            raise InputError(f"{self.name} takes {len(self.inputs)} input(s) "
                             f"({', '.join(s.describe() for s in self.inputs)}), got {len(inputs)}")
        checked = []
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
            # NumPy, not torch.isfinite: on a camera frame torch wakes its OpenMP pool, whose spinning
            # threads then fight ONNX Runtime's for the cores (p99 40 ms for a 1.7 ms model on 2 cores).
            if value.is_floating_point() and not np.isfinite(value.detach().numpy()).all():
                raise InputError(f"{ts.name} contains NaN or Inf")
            checked.append(value.contiguous())
        return tuple(checked)

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


def load_checkpoint(directory) -> tuple[ModelSpec, torch.nn.Module]:
    """Rebuild a model from ``config.json`` and load ``model.safetensors`` (no pickle)."""
    from embodied_lib.models import get_spec  # late import: the registry imports this module

    directory = Path(directory)
    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {path} is missing; train the model first "
                                    f"(notebook 01 or `make run`)")
    config = json.loads(config_path.read_text())
    spec = get_spec(config["model"], **config["spec_args"])
    model = spec.build_model()
    load_state_dict_strict(model, load_file(weights_path), source=weights_path)
    return spec, model.eval()


def load_state_dict_strict(model: torch.nn.Module, state: dict, source) -> None:
    """Load weights, naming missing/unexpected/mis-shaped entries instead of a torch traceback."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise ValueError(f"weights in {source} do not fit {type(model).__name__}: missing={missing} "
                         f"unexpected={unexpected} wrong_shape={wrong}")
    model.load_state_dict(state)
