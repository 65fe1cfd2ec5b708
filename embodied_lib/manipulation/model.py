"""ManipulationNet: camera image + robot state -> [dx, dy, dz, gripper], and its spec.

Inputs (the contract): ``image`` float32 [B, 3, 400, 400], RGB in [0, 1], channels first (the raw
camera frame / 255, transposed); ``state`` float32 [B, 10] (TabletopEnv.STATE_FIELDS).
Normalisation lives inside the model, so every export takes the raw frame.
Output ``action`` float32 [B, 4] in [-1, 1] (tanh): dx, dy, dz scale the gripper's step
(MAX_STEP metres at 1); gripper > 0 means close, <= 0 open.

Encoder: average-pool the 400 x 400 frame to 100 x 100 (the cube stays ~8 px wide), three
``torchvision.ops.Conv2dNormActivation`` blocks down to a 25 x 25 feature map, then a spatial
softmax (Levine et al. 2016, as in robomimic and diffusion policy): each of KEYPOINTS maps
becomes the expected (x, y) of its softmax, so the network reads *where* the cube and fingers
are to a fraction of a cell. A flattened conv stack (the first version) closed the gripper
1.5-6 cm off the cube; it reached 74 % closed-loop success. No pretrained weights can be
downloaded here; ``encoder_weights`` loads a local safetensors file into the encoder if given.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

from embodied_lib import architecture as arch
from embodied_lib.config import MANIPULATION_SAMPLE_SEED_BASE
from embodied_lib.manipulation.env import (ACTION_FIELDS, GRIPPER_COMMAND_FIELD, IMAGE_SIZE, MAX_STEP, STATE_FIELDS,
                                          WORKSPACE_HIGH, WORKSPACE_LOW, TabletopEnv)
from embodied_lib.manipulation.expert import scripted_expert_action
from embodied_lib.spec import BATCH, ROBOT_FORMATS, ModelSpec, Threshold, TensorSpec, continuous, load_state_dict_strict

POOL = 4
CONV_BLOCKS = ((32, 2), (32, 2), (64, 1))   # (channels, stride): 100 -> 50 -> 25 -> 25
KEYPOINTS = 32
GRIPPER = ACTION_FIELDS.index("gripper")    # > 0 closes the fingers


# Every state field is metres, m/s or a fraction of a ~1 m workspace: anything past 10 is a broken sensor.
STATE_RANGE = (-10.0, 10.0)


class SpatialSoftmax(nn.Module):
    """[B, C, H, W] features -> [B, 2K]: the expected (x, y) in [-1, 1] of K softmax maps."""

    def __init__(self, channels: int, height: int, width: int, keypoints: int):
        super().__init__()
        self.keypoints = nn.Conv2d(channels, keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=1))  # [H*W, 2]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        attention = torch.softmax(self.keypoints(features).flatten(2), dim=-1)  # [B, K, H*W]
        return torch.matmul(attention, self.grid).flatten(1)

    def architecture(self, prefix: str) -> list[dict]:
        return [arch.conv2d(f"{prefix}.keypoints", self.keypoints), arch.op("spatial_softmax", grid=f"{prefix}.grid")]


# The widths of the layers structured pruning may narrow (embodied_lib.profiling.pruning); the keypoints and the
# action are the interface and stay.
WIDTHS = {"conv": [c for c, _ in CONV_BLOCKS], "image_head": 256, "state_mlp": [64, 64], "head": [256, 256]}


class ManipulationNet(nn.Module):
    def __init__(self, state_size: int = len(STATE_FIELDS), action_size: int = len(ACTION_FIELDS),
                 encoder_weights: str | None = None, widths: dict | None = None):
        super().__init__()
        w = {**WIDTHS, **(widths or {})}
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))
        self.pool = nn.AvgPool2d(POOL)  # first, so normalisation runs on 16x fewer pixels (same result)
        layers, c_in, size = [], 3, IMAGE_SIZE // POOL
        for c_out, (_, stride) in zip(w["conv"], CONV_BLOCKS):
            layers.append(Conv2dNormActivation(c_in, c_out, kernel_size=3, stride=stride))
            c_in, size = c_out, (size - 1) // stride + 1
        self.encoder = nn.Sequential(*layers, SpatialSoftmax(c_in, size, size, KEYPOINTS))
        (s1, s2), (h1, h2) = w["state_mlp"], w["head"]
        self.image_head = nn.Sequential(nn.Linear(2 * KEYPOINTS, w["image_head"]), nn.ReLU())
        self.state_mlp = nn.Sequential(nn.Linear(state_size, s1), nn.ReLU(), nn.Linear(s1, s2), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(w["image_head"] + s2, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                                  nn.Linear(h2, action_size), nn.Tanh())
        if encoder_weights:
            from safetensors.torch import load_file
            load_state_dict_strict(self.encoder, load_file(encoder_weights), source=encoder_weights)

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.forward_pooled(self.pool(image), state)

    def forward_pooled(self, pooled: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The network after the 4x average pool: training caches pooled frames (16x less memory
        and work per epoch); ``forward`` is the one exported."""
        return self.head(torch.cat([self.image_head(self.keypoints(pooled)), self.state_mlp(state)], dim=-1))

    def keypoints(self, pooled: torch.Tensor) -> torch.Tensor:
        """[B, 2 * KEYPOINTS]: (x, y) pairs in [-1, 1] image coordinates, what the head sees of the image."""
        return self.encoder((pooled - self.mean) / self.std)

    def input_stage(self, image: torch.Tensor) -> torch.Tensor:
        """What every call does to the raw frame before any pruned layer: pool, then normalise (the floor of its
        latency, embodied_lib.profiling.pruning.speed_floor)."""
        return (self.pool(image) - self.mean) / self.std

    def widths(self) -> dict:
        """The keyword arguments that rebuild this network's shape (what structured pruning changes)."""
        return {"widths": {"conv": [block[0].out_channels for block in self.encoder[:-1]],
                           "image_head": self.image_head[0].out_features,
                           "state_mlp": [self.state_mlp[0].out_features, self.state_mlp[2].out_features],
                           "head": [self.head[0].out_features, self.head[2].out_features]}}

    def architecture(self) -> list[dict]:
        """The forward pass above as the native twins' layer graph (embodied_lib.architecture)."""
        image = [arch.op("avg_pool2d", kernel=POOL), arch.op("normalize", mean="mean", std="std"),
                 *arch.sequential("encoder", self.encoder), *arch.sequential("image_head", self.image_head)]
        state = arch.sequential("state_mlp", self.state_mlp)
        image[0]["in"], image[-1]["out"] = ["image"], "image_features"
        state[0]["in"], state[-1]["out"] = ["state"], "state_features"
        return [*image, *state, arch.op("concat", **{"in": ["image_features", "state_features"]}),
                *arch.sequential("head", self.head)]


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Camera frames uint8 [N, H, W, 3] -> the model's float32 [N, 3, H, W] in [0, 1] (torch does this
    ~10x faster than NumPy)."""
    return torch.as_tensor(frames).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def pool_frames(frames: np.ndarray, chunk: int = 256) -> np.ndarray:
    """uint8 [N, 400, 400, 3] -> float16 [N, 3, 100, 100]: what ManipulationNet.pool makes of them."""
    out = [F.avg_pool2d(frames_to_tensor(frames[i:i + chunk]), POOL).half() for i in range(0, len(frames), chunk)]
    return torch.cat(out).numpy()


def frame_to_input(frames: np.ndarray) -> np.ndarray:
    """The same conversion in NumPy (what the exported runtimes are fed; equal to ``frames_to_tensor``, bit for
    bit). NumPy, not torch: in a control loop right after MuJoCo's renderer, torch's OpenMP pool wakes against
    Mesa's threads, and the 0.8 ms conversion took 24 ms at p99 on 2 cores."""
    frames = np.asarray(frames)
    return np.divide(frames.transpose(0, 3, 1, 2), np.float32(255.0), dtype=np.float32, order="C")


def sample_scenes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (image, state) pairs as the camera sees them: fresh scenes plus a few expert steps."""
    env = TabletopEnv()
    rng = np.random.default_rng(seed)
    images, states = [], []
    for i in range(n):
        obs, _ = env.reset(seed=MANIPULATION_SAMPLE_SEED_BASE + seed * 10_000 + i)
        for _ in range(int(rng.integers(0, 12))):
            obs, *_ = env.step(scripted_expert_action(env))
        images.append(obs["image"])
        states.append(obs["state"])
    env.close()
    return frame_to_input(np.stack(images)), np.stack(states).astype(np.float32)


def manipulation_spec(widths: dict | None = None) -> ModelSpec:
    """``widths``: the layer widths of a structurally pruned network (default: WIDTHS)."""
    narrowed = {"widths": widths} if widths is not None else {}
    return ModelSpec(
        name="manipulation", build=ManipulationNet,
        config={"state_size": len(STATE_FIELDS), "action_size": len(ACTION_FIELDS), **narrowed},
        spec_args=narrowed,
        inputs=(TensorSpec("image", (BATCH, 3, IMAGE_SIZE, IMAGE_SIZE), valid=(0.0, 1.0)),
                TensorSpec("state", (BATCH, len(STATE_FIELDS)), valid=STATE_RANGE)),
        outputs=(TensorSpec("action", (BATCH, len(ACTION_FIELDS)),
                            judged=continuous((-1.0, 1.0), [Threshold("gripper_closed", GRIPPER, 0.0)])),),
        sample_inputs=sample_scenes,
        metadata={"image": "RGB float32 in [0, 1], channels first (frame / 255, HWC -> CHW); normalised inside",
                  "state_fields": list(STATE_FIELDS), "action_fields": list(ACTION_FIELDS),
                  "action_semantics": "dx, dy, dz in [-1, 1] scale a 0.02 m step; gripper > 0 close, <= 0 open",
                  "camera": "fixed 'front' camera, 400 x 400",
                  "safety": {
                      "fallback": "hold: dx = dy = dz = 0 and the gripper command unchanged (a held cube is not dropped)",
                      "action_bounds": [-1.0, 1.0], "max_step_m": MAX_STEP,
                      "workspace_m": {"low": list(WORKSPACE_LOW), "high": list(WORKSPACE_HIGH), "tolerance": 0.01},
                      "position_fields": [0, 1, 2], "gripper_command_field": GRIPPER_COMMAND_FIELD,
                      "out_of_bounds": "an action outside action_bounds, or non-finite, falls back to hold",
                      "workspace": "a step whose target (position + action * max_step_m) leaves the workspace is "
                                   "shortened to its edge; a state whose position is outside it by more than the tolerance falls back to hold"}},
        formats=ROBOT_FORMATS, tolerance=1e-4, max_batch=64, parity_inputs=100, golden_count=8, calibration_inputs=128,
        int8_tolerance=0.6, int8_agreement=0.95)   # INT8 measured (full profile): max |diff| 0.23-0.40 of a [-1, 1] range
