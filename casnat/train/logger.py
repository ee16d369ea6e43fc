"""Training logs: a plain-text log file and TensorBoard, written by rank 0 only.

Every step line carries loss parts, learning rate, rate (feature frames per second) and ETA, so a
long run can be watched with ``tail -f exp/X/train.log`` or ``tensorboard --logdir exp``.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("casnat.train")


def _fmt_eta(seconds: float) -> str:
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class TrainLogger:
    def __init__(self, exp_dir: Path, rank: int = 0) -> None:
        self.rank = rank
        self.writer: Any = None
        self._handlers: list[logging.Handler] = []
        if rank != 0:
            return
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        fh = logging.FileHandler(exp_dir / "train.log")
        fh.setFormatter(fmt)
        root = logging.getLogger("casnat")
        root.setLevel(logging.INFO)
        root.addHandler(fh)
        self._handlers.append(fh)
        if not any(
            isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr
            for h in root.handlers + logging.getLogger().handlers
        ):
            sh = logging.StreamHandler(sys.stderr)
            sh.setFormatter(fmt)
            root.addHandler(sh)
            self._handlers.append(sh)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(exp_dir / "tensorboard"))
        except ImportError:  # tensorboard is a dependency, but do not die for a missing log sink
            log.warning("tensorboard not importable; logging to text only")

    def info(self, msg: str) -> None:
        if self.rank == 0:
            log.info(msg)

    def warning(self, msg: str) -> None:
        log.warning(f"[rank {self.rank}] {msg}")

    def error(self, msg: str) -> None:
        """Logged by rank 0 only: for facts every rank shares (e.g. a cross-rank check)."""
        if self.rank == 0:
            log.error(msg)

    def log_step(
        self,
        state,
        parts: dict[str, float],
        lr: float,
        frames_per_s: float,
        grad_norm: float,
        eta_s: float,
        skipped: int,
    ) -> None:
        if self.rank != 0:
            return
        loss_str = " ".join(f"{k}={v:.3f}" for k, v in parts.items() if v != 0.0 or k == "total")
        log.info(
            f"epoch {state.epoch} step {state.step} {loss_str} lr={lr:.2e} "
            f"grad_norm={grad_norm:.2f} "
            f"rate={frames_per_s:.0f} frames/s eta={_fmt_eta(eta_s)} skipped_audio={skipped}"
        )
        if self.writer is not None:
            for k, v in parts.items():
                self.writer.add_scalar(f"train/{k}", v, state.step)
            self.writer.add_scalar("train/lr", lr, state.step)
            self.writer.add_scalar("train/frames_per_s", frames_per_s, state.step)
            self.writer.add_scalar("train/grad_norm", grad_norm, state.step)

    def log_epoch(self, state, valid_loss: float, minutes: float, complete: bool = True) -> None:
        """One line per finished epoch, or for the budget stop part-way into one (``complete``
        False: that state goes to a step checkpoint only, not to an epoch-N.pt)."""
        if self.rank != 0:
            return
        what = (f"epoch {state.epoch} done" if complete
                else f"budget reached in epoch {state.epoch + 1}")
        log.info(
            f"{what}: step {state.step} valid_loss={valid_loss:.4f} elapsed={minutes:.1f} min"
        )
        if self.writer is not None and not math.isnan(valid_loss):
            self.writer.add_scalar("valid/loss", valid_loss, state.step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        root = logging.getLogger("casnat")
        for h in self._handlers:
            root.removeHandler(h)
            h.close()
        self._handlers.clear()
