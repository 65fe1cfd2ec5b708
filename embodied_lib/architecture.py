"""The layer graph a native twin rebuilds: one description, written by Python, read by C++ and Rust.

A model that can be rebuilt in LibTorch or tch-rs describes itself with ``architecture()``: a list
of nodes, each one operation on named values. Export writes it into ``manifest.json`` as
``{"inputs": [...], "nodes": [...]}``; ``native/cpp/twin.hpp`` and ``native/rust/tch-runner``
rebuild the network from it and load the exported weights by the names in ``params``. The last
node's value is the output. ``run_architecture`` below is the reference semantics, and the tests
check that it reproduces each model's own ``forward`` (so the description cannot drift from the code).

A node is ``{"op": ..., "in": [names], "out": name, ...}``; ``in`` defaults to the previous node's
value (the first model input for the first node), ``out`` to an anonymous value. Operations:

    linear        params P: P.weight [out, in], P.bias [out]          y = x W^T + b
    conv2d        params P: P.weight [co, ci, k, k], P.bias if "bias"; stride, padding
    batch_norm    params P: P.weight, P.bias, P.running_mean, P.running_var; eps (inference form)
    relu, tanh, sigmoid
    softmax       over the last dimension
    dropout       identity at inference (p kept for the record)
    avg_pool2d    kernel (stride = kernel, no padding)
    normalize     mean, std: names of [1, C, 1, 1] buffers;          y = (x - mean) / std
    spatial_soft  grid: name of an [H*W, 2] buffer; y = softmax(x.flatten(2), -1) @ grid, flattened to [B, 2K]
    concat        the values of "in", along the last dimension
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OPS = ("linear", "conv2d", "batch_norm", "relu", "tanh", "sigmoid", "softmax", "dropout", "avg_pool2d", "normalize",
       "spatial_softmax", "concat")


def linear(name: str, module: nn.Linear, **node) -> dict:
    return {"op": "linear", "params": name, "in_features": module.in_features, "out_features": module.out_features,
            **node}


def conv2d(name: str, module: nn.Conv2d, **node) -> dict:
    if module.groups != 1 or module.dilation != (1, 1) or module.kernel_size[0] != module.kernel_size[1]:
        raise ValueError(f"{name}: only square, ungrouped, undilated convolutions are described")
    return {"op": "conv2d", "params": name, "stride": module.stride[0], "padding": module.padding[0],
            "bias": module.bias is not None, **node}


def batch_norm(name: str, module: nn.BatchNorm2d, **node) -> dict:
    return {"op": "batch_norm", "params": name, "eps": module.eps, **node}


def dropout(module: nn.Dropout, **node) -> dict:
    return {"op": "dropout", "p": module.p, **node}


def op(kind: str, **node) -> dict:
    return {"op": kind, **node}


def sequential(prefix: str, module: nn.Sequential) -> list[dict]:
    """Nodes for an ``nn.Sequential`` of the layers above (torchvision's Conv2dNormActivation included)."""
    nodes = []
    for name, layer in module.named_children():
        path = f"{prefix}.{name}"
        if isinstance(layer, nn.Sequential):
            nodes += sequential(path, layer)
        elif isinstance(layer, nn.Linear):
            nodes.append(linear(path, layer))
        elif isinstance(layer, nn.Conv2d):
            nodes.append(conv2d(path, layer))
        elif isinstance(layer, nn.BatchNorm2d):
            nodes.append(batch_norm(path, layer))
        elif isinstance(layer, nn.Dropout):
            nodes.append(dropout(layer))
        elif type(layer) in (nn.ReLU, nn.Tanh, nn.Sigmoid):
            nodes.append(op(type(layer).__name__.lower()))
        elif hasattr(layer, "architecture"):
            nodes += layer.architecture(path)
        else:
            raise ValueError(f"{path}: no architecture node for {type(layer).__name__}")
    return nodes


def run_architecture(architecture: dict, state: dict[str, torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """The reference semantics of the description: what the C++ and Rust twins compute."""
    values = dict(zip(architecture["inputs"], inputs))
    current = inputs[0]
    for node in architecture["nodes"]:
        args = [values[name] for name in node.get("in", [])] or [current]
        x, p = args[0], node.get("params")
        kind = node["op"]
        if kind == "linear":
            y = F.linear(x, state[f"{p}.weight"], state[f"{p}.bias"])
        elif kind == "conv2d":
            y = F.conv2d(x, state[f"{p}.weight"], state.get(f"{p}.bias") if node["bias"] else None,
                         stride=node["stride"], padding=node["padding"])
        elif kind == "batch_norm":
            y = F.batch_norm(x, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                             state[f"{p}.bias"], training=False, eps=node["eps"])
        elif kind in ("relu", "tanh", "sigmoid"):
            y = getattr(torch, kind)(x)
        elif kind == "softmax":
            y = torch.softmax(x, dim=-1)
        elif kind == "dropout":
            y = x
        elif kind == "avg_pool2d":
            y = F.avg_pool2d(x, node["kernel"])
        elif kind == "normalize":
            y = (x - state[node["mean"]]) / state[node["std"]]
        elif kind == "spatial_softmax":
            y = torch.matmul(torch.softmax(x.flatten(2), dim=-1), state[node["grid"]]).flatten(1)
        elif kind == "concat":
            y = torch.cat(args, dim=-1)
        else:
            raise ValueError(f"unsupported layer {kind!r}; the twins build {OPS}")
        current = y
        if "out" in node:
            values[node["out"]] = y
    return current
