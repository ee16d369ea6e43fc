"""casnat/checkpoint.py: safe loads, discovery (numeric order), default choice, averaging."""

from __future__ import annotations

import os

import pytest
import torch

from casnat.atomic import atomic_torch_save as atomic_save
from casnat.checkpoint import (
    CheckpointError,
    average_checkpoints,
    default_checkpoint,
    epoch_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    prune,
    step_checkpoints,
)


def test_load_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


def test_missing_checkpoint_error_names_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_latest_and_epoch_discovery_and_prune(tmp_path):
    for s in (5, 40, 300):
        atomic_save({}, tmp_path / f"ckpt-{s}.pt")
    for e in (1, 2, 10):
        atomic_save({}, tmp_path / f"epoch-{e}.pt")
    (tmp_path / "ckpt-best.pt").write_bytes(b"")  # not a step checkpoint: ignored
    assert latest_checkpoint(tmp_path).name == "ckpt-300.pt"
    steps = [p.name for p in step_checkpoints(tmp_path)]
    assert steps == ["ckpt-5.pt", "ckpt-40.pt", "ckpt-300.pt"]
    eps = epoch_checkpoints(tmp_path)
    assert [p.name for p in eps] == ["epoch-1.pt", "epoch-2.pt", "epoch-10.pt"]
    prune(eps, keep=2)
    assert [p.name for p in epoch_checkpoints(tmp_path)] == ["epoch-2.pt", "epoch-10.pt"]


def test_average(tmp_path):
    for i, v in enumerate((1.0, 2.0, 6.0)):
        atomic_save(
            {"model": {"w": torch.full((2,), v), "n": torch.tensor(i)}}, tmp_path / f"epoch-{i}.pt"
        )
    avg = average_checkpoints(epoch_checkpoints(tmp_path))
    torch.testing.assert_close(avg["w"], torch.full((2,), 3.0))
    assert avg["n"].item() == 2 and avg["w"].dtype == torch.float32


def test_default_checkpoint_prefers_average_then_epoch_then_step(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        default_checkpoint(tmp_path)
    for name in ("ckpt-7.pt", "ckpt-12.pt"):
        atomic_save({}, tmp_path / name)
    assert default_checkpoint(tmp_path).name == "ckpt-12.pt"
    for name in ("epoch-2.pt", "epoch-10.pt"):
        atomic_save({}, tmp_path / name)
    assert default_checkpoint(tmp_path).name == "epoch-10.pt"
    atomic_save({}, tmp_path / "avg-5.pt")
    atomic_save({}, tmp_path / "avg-2.pt")
    os.utime(tmp_path / "avg-2.pt", (1, 1))  # older: the newest average wins, not the name
    assert default_checkpoint(tmp_path).name == "avg-5.pt"


def test_averaging_candidates_add_the_final_checkpoint_of_a_run_that_ended_mid_epoch(tmp_path):
    from casnat.checkpoint import averaging_candidates

    def save(name: str, step: int) -> None:
        torch.save({"model": {"w": torch.zeros(1)}, "step": step}, tmp_path / name)

    save("epoch-1.pt", 10)
    save("epoch-2.pt", 20)
    save("ckpt-20.pt", 20)  # the run ended with epoch 2: nothing newer
    assert [p.name for p in averaging_candidates(tmp_path)] == ["epoch-1.pt", "epoch-2.pt"]
    save("ckpt-27.pt", 27)  # ... or 7 steps into epoch 3 (max_minutes)
    names = [p.name for p in averaging_candidates(tmp_path)]
    assert names == ["epoch-1.pt", "epoch-2.pt", "ckpt-27.pt"]
    for p in tmp_path.glob("epoch-*.pt"):
        p.unlink()
    assert [p.name for p in averaging_candidates(tmp_path)] == ["ckpt-27.pt"]
