"""Checkpoint files: safe loading, discovery in an experiment directory, pruning and averaging.

Decoding, averaging and training all read checkpoints, so this lives outside ``train/`` (decoding
must not import training). Writing goes through :func:`casnat.atomic.atomic_torch_save`.

A checkpoint is user input (it may come from a stranger), so it is always read with
``torch.load(weights_only=True)``: only tensors and plain containers, never pickled code.

An experiment directory holds step checkpoints ``ckpt-{step}.pt`` (full training state, the
newest two kept), epoch checkpoints ``epoch-{epoch}.pt`` and averages ``avg-{n}.pt``:

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for name in ("ckpt-9.pt", "ckpt-10.pt", "epoch-2.pt", "notes.pt"):
...     _ = (d / name).write_bytes(b"")
>>> [p.name for p in step_checkpoints(d)], latest_checkpoint(d).name
(['ckpt-9.pt', 'ckpt-10.pt'], 'ckpt-10.pt')
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from casnat.errors import UserError

log = logging.getLogger(__name__)

_STEP_RE = re.compile(r"^ckpt-(\d+)\.pt$")
_EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing or unreadable; the message names it."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True); errors are one line naming the file.

    A file whose pickle asks for anything beyond tensors and plain containers (a class to
    build, a function to call, as a ``__reduce__`` exploit does) is refused before any of it
    runs; the message says so instead of relaying torch's page-long advice to turn the
    protection off."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln.upper()), "")
        if detail:  # the pickle names a global (a class or function) to load: refused
            raise CheckpointError(
                f"refusing checkpoint {path}: it asks to load Python objects beyond tensors "
                f"(possibly code; nothing of it was run): {detail}"
            ) from None
        # Not torch's advice to retry with weights_only=False: never right for a corrupt file.
        why = next((ln.strip() for ln in str(e).splitlines() if "Unsupported" in ln), "")
        raise CheckpointError(
            f"cannot load checkpoint {path}: corrupt or truncated ({why or 'not a checkpoint'})"
        ) from None
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(
            f"cannot load checkpoint {path}: corrupt or truncated ({_one_line(e)})"
        ) from None
    if not isinstance(ck, dict):
        raise CheckpointError(
            f"cannot load checkpoint {path}: expected a dict, got {type(ck).__name__}"
        )
    return ck


def _one_line(e: BaseException) -> str:
    """First line of an exception's message (torch and zipfile messages run to many lines)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200] or type(e).__name__


def latest_valid_checkpoint(
    exp_dir: str | Path,
    required: tuple[str, ...] = ("model",),
    map_location: str | torch.device = "cpu",
) -> tuple[Path, dict[str, Any]] | None:
    """The newest step checkpoint of ``exp_dir`` that loads and has the ``required`` keys, with
    its content; None if there are no step checkpoints.

    Checkpoints are written atomically, so a bad one means the disk or a person damaged it; a
    resume then falls back to the previous one (a warning names each bad file) rather than
    losing the run. When every step checkpoint is bad, a CheckpointError lists them."""
    bad = []
    for path in reversed(step_checkpoints(exp_dir)):
        try:
            ck = load_checkpoint(path, map_location=map_location)
            missing = [k for k in required if k not in ck]
            if missing:
                raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
        except CheckpointError as e:
            log.warning("%s; trying the previous checkpoint", e)
            bad.append(path.name)
            continue
        return path, ck
    if bad:
        raise CheckpointError(
            f"no usable checkpoint to resume from in {exp_dir}: {', '.join(bad)} unreadable "
            "(see the warnings above; delete them to start from scratch)"
        )
    return None


def _numbered(exp_dir: str | Path, pattern: re.Pattern[str]) -> list[Path]:
    """Files of ``exp_dir`` whose name matches ``pattern`` (one integer group), sorted by that
    number (numerically: ``ckpt-9.pt`` before ``ckpt-10.pt``)."""
    found = []
    for p in Path(exp_dir).glob("*.pt"):
        m = pattern.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def step_checkpoints(exp_dir: str | Path) -> list[Path]:
    """Step checkpoints ``ckpt-{step}.pt`` sorted by step (oldest first)."""
    return _numbered(exp_dir, _STEP_RE)


def epoch_checkpoints(exp_dir: str | Path) -> list[Path]:
    """Epoch checkpoints ``epoch-{epoch}.pt`` sorted by epoch number (oldest first)."""
    return _numbered(exp_dir, _EPOCH_RE)


def averaging_candidates(exp_dir: str | Path) -> list[Path]:
    """What checkpoint averaging chooses from, oldest first: the epoch checkpoints, then the
    newest step checkpoint when it is newer than the last epoch's (a run that ended mid-epoch,
    e.g. at train.max_minutes: its last steps ran at the annealed learning rate, often the best
    weights of the run, and an epoch-only choice would throw them away)."""
    epochs = epoch_checkpoints(exp_dir)
    steps = step_checkpoints(exp_dir)
    if not steps:
        return epochs
    last_step = int(_STEP_RE.match(steps[-1].name).group(1))  # type: ignore[union-attr]
    if not epochs:
        return [steps[-1]]
    epoch_step = load_checkpoint(epochs[-1]).get("step")
    if epoch_step is None:  # not the trainer's (e.g. weights only): trust the epoch order
        return epochs
    return epochs + [steps[-1]] if last_step > epoch_step else epochs


def latest_checkpoint(exp_dir: str | Path) -> Path | None:
    """The step checkpoint with the highest step in ``exp_dir`` (None if there is none)."""
    steps = step_checkpoints(exp_dir)
    return steps[-1] if steps else None


def default_checkpoint(exp_dir: str | Path) -> Path:
    """The checkpoint decoding uses when none is named: the newest ``avg-*.pt`` (by
    modification time), else the last epoch checkpoint, else the newest step checkpoint."""
    exp_dir = Path(exp_dir)
    avgs = sorted(exp_dir.glob("avg-*.pt"), key=lambda p: p.stat().st_mtime)
    if avgs:
        return avgs[-1]
    epochs = epoch_checkpoints(exp_dir)
    if epochs:
        return epochs[-1]
    step = latest_checkpoint(exp_dir)
    if step is None:
        raise CheckpointError(f"no checkpoint (avg-*.pt, epoch-*.pt, ckpt-*.pt) in {exp_dir}")
    return step


def prune(paths: list[Path], keep: int) -> None:
    """Delete all but the last ``keep`` of ``paths`` (already sorted oldest first)."""
    for p in paths[: max(0, len(paths) - keep)]:
        p.unlink(missing_ok=True)


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the ``model`` state dicts of ``paths`` (integer buffers: from the last).

    The sum is kept in float64 and cast back to each tensor's dtype at the end.

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
