"""Training on one process, several processes, or several machines: torch.distributed, set up by torchrun.

    python -m embodied_lib.manipulation.train --profile full                                  # one process
    torchrun --standalone --nproc-per-node 2 -m embodied_lib.manipulation.train --profile full # two on this machine
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m embodied_lib.manipulation.train --profile full                                     # on each machine

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK and the rendezvous; ``setup`` reads them and starts the process
group (NCCL when the device is a GPU, gloo on CPUs). Gradients are averaged by DistributedDataParallel, batches
sharded by DistributedSampler: nothing here averages or communicates by hand.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from embodied_lib.config import resolve_device


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """The process's place in the run; starts the process group when torchrun launched several processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context(0, 1, resolve_device(device))
    wanted = resolve_device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if wanted.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) here: "
                               f"use --nproc-per-node <= {torch.cuda.device_count()}")
        wanted = torch.device("cuda", local_rank)
        torch.cuda.set_device(wanted)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if wanted.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), wanted)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, ctx: Context, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``model`` on the context's device; under several processes, inside DistributedDataParallel (batch norm
    synchronised across GPUs; gloo has no SyncBatchNorm on CPUs, so each CPU process normalises its own shard).
    ``find_unused_parameters``: for a model some of whose parameters a step may not use (the HRI probes)."""
    model = model.to(ctx.device)
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if ctx.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[ctx.device.index],
                                       find_unused_parameters=find_unused_parameters)
    return DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def mean_over_processes(total: float, count: int, ctx: Context) -> float:
    """The mean of a quantity summed over every process's shard (one all-reduce)."""
    if not ctx.distributed:
        return total / max(1, count)
    t = torch.tensor([total, float(count)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t[0] / max(1.0, float(t[1])))


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
