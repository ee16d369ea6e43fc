"""casnat/train/distributed.py in a real 2-process gloo group: per-rank gathers come back in rank
order, sums add up, and the cross-rank weight check finds a replica that drifted."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from casnat.train.distributed import all_reduce_sum, gather_per_rank, max_weight_difference

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch built without distributed")


def test_without_a_process_group_everything_is_local():
    assert gather_per_rank({"a": 1}) == [{"a": 1}]
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(all_reduce_sum(x), x)
    assert max_weight_difference(torch.nn.Linear(3, 2)) == 0.0


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank,
                            world_size=world)
    try:
        torch.manual_seed(0)  # identical replicas ...
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
        same = max_weight_difference(model)
        if rank == 1:  # ... until rank 1's last bias drifts
            with torch.no_grad():
                model[1].bias[1] += 0.25
        result = {
            "gathered": gather_per_rank({"rank": rank, "state": torch.tensor([rank, 10 * rank])}),
            "sum": all_reduce_sum(torch.tensor([rank + 1.0])).tolist(),
            "same": same,
            "drifted": max_weight_difference(model),
        }
        torch.save(result, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks(tmp_path):
    # fork: the children need not import torch again (seconds each on a loaded machine)
    mp.start_processes(_worker, args=(2, str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    out = {r: torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)}
    for rank in (0, 1):
        gathered = out[rank]["gathered"]
        assert [g["rank"] for g in gathered] == [0, 1]
        assert torch.equal(gathered[1]["state"], torch.tensor([1, 10]))
        assert out[rank]["sum"] == [3.0]
        # Every rank learns the same difference: 0 for equal replicas, else the drift.
        assert out[rank]["same"] == 0.0
        assert out[rank]["drifted"] == pytest.approx(0.25, abs=1e-7)
