"""casnat/train/logger.py: rank 0 writes train.log (steps, epochs, errors) and leaves no handler
behind after close(); other ranks write nothing but their own warnings."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

from casnat.train.logger import TrainLogger, _fmt_eta


def test_rank0_writes_lines_and_close_removes_its_handlers(tmp_path):
    root = logging.getLogger("casnat")
    before = list(root.handlers)
    lg = TrainLogger(tmp_path, rank=0)
    state = SimpleNamespace(epoch=1, step=20)
    lg.log_step(state, {"total": 1.5, "ctc": 1.0, "nat": 0.0}, lr=1e-3, frames_per_s=1234.0,
                grad_norm=2.0, eta_s=3725.0, skipped=1)
    lg.log_epoch(state, valid_loss=0.75, minutes=2.0, complete=False)
    lg.error("weights differ")
    lg.close()
    assert root.handlers == before
    text = (tmp_path / "train.log").read_text()
    assert "epoch 1 step 20 total=1.500 ctc=1.000 lr=1.00e-03" in text
    assert "nat=" not in text  # zero parts are left out, except the total
    assert "eta=1:02:05 skipped_audio=1" in text
    assert "budget reached in epoch 2: step 20 valid_loss=0.7500" in text
    assert "ERROR weights differ" in text
    lg.info("after close")
    assert "after close" not in (tmp_path / "train.log").read_text()


def test_other_ranks_write_no_log_file(tmp_path):
    lg = TrainLogger(tmp_path, rank=1)
    lg.info("hello")
    lg.error("nope")
    lg.close()
    assert not (tmp_path / "train.log").exists() and lg.writer is None


def test_eta_format():
    assert _fmt_eta(59.9) == "0:00:59" and _fmt_eta(3600) == "1:00:00"
    assert _fmt_eta(math.nan) == "?" and _fmt_eta(-1) == "?"
