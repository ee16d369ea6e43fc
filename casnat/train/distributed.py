"""Process-group set-up for ``torchrun`` (DDP), gloo on CPU and nccl on GPU, and the few
collectives the trainer needs (sums, per-rank gathers, a cross-rank weight check).

A plain ``python -m casnat.bin.train`` is world size 1 and touches no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    #: torchrun's restart count (TORCHELASTIC_RESTART_COUNT): 0 on the first attempt; > 0 when
    #: ``torchrun --max-restarts`` restarted the job after a worker died.
    restart_count: int = 0

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
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if attempt is None:  # not under torchrun (a launcher that only sets the env:// vars)
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(
                backend=backend, store=_attempt_store(attempt), rank=rank, world_size=world
            )
    return DistInfo(
        rank=rank,
        world_size=world,
        local_rank=local,
        device=device,
        restart_count=int(attempt or 0),
    )


def _attempt_store(attempt: str) -> dist.Store:
    """The env:// rendezvous store, its keys prefixed by torchrun's restart count.

    Why: under ``torchrun --max-restarts=N`` the workers of every attempt are clients of the
    same agent-hosted TCPStore (torch's comment says a new store is made per retry; with the
    c10d rendezvous of ``--standalone`` and torch 2.13 it is not: the restarted workers get the
    same MASTER_PORT and find the previous attempt's 3 keys in it), and ``init_process_group``
    writes its keys under the fixed prefix ``default_pg``. A restarted gloo rank that looks up a
    peer's address before the peer has re-published it reads the dead attempt's address (the
    key is already set, so it does not wait for the new one) and cannot connect ("Gloo
    connectFullMesh failed ... Connection refused"); the job then fails or, while torchrun
    waits on the ranks, appears to hang. A per-attempt prefix gives every attempt clean keys.
    """
    store, _, _ = next(dist.rendezvous("env://"))
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return dist.PrefixStore(f"casnat/{run_id}/attempt-{attempt}", store)


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


def gather_per_rank(value: T) -> list[T]:
    """Every rank's ``value`` (any picklable object), in rank order; ``[value]`` without a
    process group. Used for what a checkpoint must hold per rank: sampler positions, RNG states,
    skipped-audio counts."""
    if dist.is_available() and dist.is_initialized():
        out: list = [None] * dist.get_world_size()
        dist.all_gather_object(out, value)
        return out
    return [value]


def max_weight_difference(module: torch.nn.Module) -> float:
    """The largest absolute difference of any parameter element between ranks (0.0 without a
    process group).

    DDP keeps the replicas equal only as long as every rank applies the same averaged gradient;
    a rank that skipped an update or diverged would make the saved (rank 0) weights not the ones
    the other ranks trained. One all_reduce of the per-element maximum and one of the minimum
    (as the maximum of the negation) give max - min per element, without gathering the weights.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 0.0
    params = [p.detach().reshape(-1).double() for p in module.parameters()]
    if not params:
        return 0.0
    flat = torch.cat(params)
    if dist.get_backend() == "nccl" and flat.device.type != "cuda":
        flat = flat.to(torch.device("cuda", torch.cuda.current_device()))
    hi, lo = flat.clone(), -flat
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MAX)
    return float((hi + lo).max())
