"""casnat/atomic.py: the content arrives whole, and a failed write leaves no temp file and the
previous target untouched (also for KeyboardInterrupt, which is not an Exception)."""

from __future__ import annotations

import json

import pytest
import torch

from casnat.atomic import (
    atomic_torch_save,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
)


def test_text_json_and_torch_content_written(tmp_path):
    atomic_write_text(tmp_path / "sub" / "a.txt", "héllo\n")  # parent created, UTF-8
    assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_json(tmp_path / "b.json", {"wer": 0.5, "n": [1, 2]})
    assert json.loads((tmp_path / "b.json").read_text()) == {"wer": 0.5, "n": [1, 2]}
    assert (tmp_path / "b.json").read_text().endswith("}\n")
    atomic_torch_save({"w": torch.arange(3.0)}, tmp_path / "c.pt")
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["w"], torch.arange(3.0))
    atomic_write_with(tmp_path / "d.bin", lambda f: f.write(b"\x00\x01"))
    assert (tmp_path / "d.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "c.pt", "d.bin", "sub"]


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failure_mid_write_keeps_old_target_and_removes_temp(tmp_path, exc):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old\n")
    with pytest.raises(type(exc)):
        with atomic_write(target) as f:
            f.write("half of the new conte")
            raise exc
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_torch_save_failure_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt-1.pt"
    atomic_torch_save({"x": torch.ones(2)}, path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"x": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-1.pt"]


def test_failure_without_old_target_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_with(tmp_path / "new.bin", lambda f: (_ for _ in ()).throw(ValueError()))
    assert list(tmp_path.iterdir()) == []


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", mode="a"):
            pass
