"""Checkpoints: atomic writes, safe loads, discovery of the latest one, and averaging.

A checkpoint is user input (it may come from a stranger), so it is always read with
``torch.load(weights_only=True)``: only tensors and plain containers, never pickled code.
It is written to a temporary file in the same directory and renamed over the target, so a run
killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from casnat.errors import UserError

log = logging.getLogger(__name__)

_STEP_RE = re.compile(r"^ckpt-(\d+)\.pt$")
_EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing or unreadable; the message names it."""


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to ``path`` via a temp file + os.replace (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"cannot load checkpoint {path}: {e}") from e


def latest_checkpoint(exp_dir: str | Path) -> Path | None:
    """The step checkpoint with the highest step in ``exp_dir`` (None if there is none)."""
    best: tuple[int, Path] | None = None
    for p in Path(exp_dir).glob("ckpt-*.pt"):
        m = _STEP_RE.match(p.name)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return best[1] if best else None


def epoch_checkpoints(exp_dir: str | Path) -> list[Path]:
    """Epoch checkpoints sorted by epoch number."""
    found = []
    for p in Path(exp_dir).glob("epoch-*.pt"):
        m = _EPOCH_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def prune(paths: list[Path], keep: int) -> None:
    """Delete all but the last ``keep`` of ``paths`` (already sorted oldest first)."""
    for p in paths[: max(0, len(paths) - keep)]:
        p.unlink(missing_ok=True)


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the ``model`` state dicts of ``paths`` (integer buffers: from the last).

    >>> # average_checkpoints([Path('exp/epoch-9.pt'), Path('exp/epoch-10.pt')])
    """
    if not paths:
        raise CheckpointError("no checkpoints to average")
    avg: dict[str, torch.Tensor] = {}
    for i, p in enumerate(paths):
        state = load_checkpoint(p)["model"]
        for k, v in state.items():
            if i == 0:
                avg[k] = v.clone().double() if v.is_floating_point() else v.clone()
            elif v.is_floating_point():
                avg[k] += v.double()
            else:
                avg[k] = v.clone()
    n = len(paths)
    ref = load_checkpoint(paths[-1])["model"]
    return {
        k: (v / n).to(ref[k].dtype) if ref[k].is_floating_point() else v for k, v in avg.items()
    }
