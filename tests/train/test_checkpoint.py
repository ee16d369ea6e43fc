from __future__ import annotations

import pytest
import torch

from casnat.train.checkpoint import (
    CheckpointError,
    atomic_save,
    average_checkpoints,
    epoch_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    prune,
)


def test_atomic_save_keeps_old_file_when_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt-1.pt"
    atomic_save({"x": torch.ones(2)}, path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        atomic_save({"x": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-1.pt"]


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
    assert latest_checkpoint(tmp_path).name == "ckpt-300.pt"
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
