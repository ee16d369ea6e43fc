"""Process-group set-up for ``torchrun`` (DDP): gloo on CPU, nccl on GPU.

A plain ``python -m casnat.bin.train`` is world size 1 and touches no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(prefer_cuda: bool = True) -> DistInfo:
    """Read torchrun's env vars; start the process group when world size > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = prefer_cuda and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity without a process group).

    nccl reduces only CUDA tensors, so under nccl a CPU tensor (the loss tallies and counters the
    trainer keeps on the CPU) makes the round trip through this rank's GPU; the result is on the
    device ``values`` came from.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return values
    work = values.clone()
    if dist.get_backend() == "nccl" and work.device.type != "cuda":
        work = work.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(work)
    return work.to(values.device)
