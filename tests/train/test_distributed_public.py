"""Process-group set-up: a plain run is world size 1 with no process group, and under a real
2-process gloo group ``init_distributed`` reads torchrun's variables and ``all_reduce_sum`` sums."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from casnat.train.distributed import all_reduce_sum, cleanup, init_distributed

_TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def test_single_process_defaults(monkeypatch):
    for name in _TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    info = init_distributed(prefer_cuda=False)
    assert (info.rank, info.world_size, info.local_rank) == (0, 1, 0)
    assert info.is_main and info.device == torch.device("cpu")
    assert not dist.is_initialized()  # world size 1 starts no process group
    cleanup()  # a no-op without a group, not an error


def test_all_reduce_sum_without_a_group_returns_its_input():
    assert not dist.is_initialized()
    x = torch.tensor([1.5, -2.0, 3.0])
    out = all_reduce_sum(x)
    assert torch.equal(out, torch.tensor([1.5, -2.0, 3.0]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(
        WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    info = init_distributed(prefer_cuda=False)
    x = torch.tensor([float(rank + 1), 10.0 * (rank + 1)])
    summed = all_reduce_sum(x)
    torch.save(
        {"rank": info.rank, "world": info.world_size, "main": info.is_main,
         "backend": dist.get_backend(), "input": x, "sum": summed},
        Path(out_dir) / f"rank{rank}.pt",
    )
    cleanup()


@pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed")
@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork start method")
def test_two_process_gloo_group_sums_over_ranks(tmp_path):
    world = 2
    # fork, not spawn: the children need not re-import torch (seconds, not tens of seconds)
    mp.start_processes(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world,
                       join=True, start_method="fork")
    res = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
    assert [(r["rank"], r["world"], r["main"]) for r in res] == [(0, 2, True), (1, 2, False)]
    assert {r["backend"] for r in res} == {"gloo"}
    for r in res:
        assert torch.equal(r["sum"], torch.tensor([3.0, 30.0]))  # 1 + 2, 10 + 20
    assert torch.equal(res[1]["input"], torch.tensor([2.0, 20.0]))  # the input is left alone
