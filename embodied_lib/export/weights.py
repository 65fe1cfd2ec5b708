"""Plain weights for the native twins that rebuild the network in code (LibTorch, tch-rs).

- ``.safetensors``: read by Python, tch-rs and a 40-line C++ parser; no code inside.
- ``.pth``: ``torch.save(dict(state_dict))``, a *plain dict*: C++ ``torch::pickle_load``
  reads it (an OrderedDict fails with "Expected GenericDict"; ``torch::load`` cannot
  read a Python state_dict at all). Python loads it with ``weights_only=True``.
"""
from __future__ import annotations

import json

import torch
from safetensors.torch import load_file, save_file

from embodied_lib.export.artifacts import load_or_explain
from embodied_lib.spec import load_state_dict_strict


def _state(model):
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def save_safetensors(spec, model, program, path):
    save_file(_state(model), str(path), metadata={"model": spec.name, "config": json.dumps(spec.config)})


def save_pth(spec, model, program, path):
    torch.save(dict(_state(model)), str(path))


def _module_from(path, spec, read, format_name):
    state = load_or_explain(path, format_name, read)
    model = spec.build_model()
    load_state_dict_strict(model, state, source=path)
    model.eval()

    def run(*inputs):
        with torch.no_grad():
            out = model(*inputs)
        return out if isinstance(out, tuple) else (out,)
    return run


def load_safetensors(path, spec):
    return _module_from(path, spec, lambda: load_file(str(path)), "safetensors weights")


def load_pth(path, spec):
    return _module_from(path, spec, lambda: torch.load(str(path), weights_only=True), "state_dict .pth")
