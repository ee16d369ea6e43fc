"""Training logs: rank 0 writes a text log and TensorBoard events, each step line says rate and
ETA, other ranks write nothing."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from casnat.train.logger import TrainLogger

PARTS = {"total": 2.5, "ctc": 1.25, "nat": 0.0}


def _run(exp: Path, rank: int = 0, eta_s: float = 3725.0) -> None:
    exp.mkdir(parents=True, exist_ok=True)
    logger = TrainLogger(exp, rank=rank)
    try:
        logger.log_step(SimpleNamespace(epoch=1, step=7), PARTS, lr=1.5e-3, frames_per_s=12345.4,
                        grad_norm=0.75, eta_s=eta_s, skipped=2)
        logger.log_epoch(SimpleNamespace(epoch=1, step=7), valid_loss=1.875, minutes=2.0)
    finally:
        logger.close()


@pytest.fixture(scope="module")
def exp(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("log") / "exp"
    _run(path)
    return path


def _step_line(exp: Path) -> str:
    lines = [ln for ln in (exp / "train.log").read_text().splitlines() if " step 7 " in ln]
    assert len(lines) == 2, lines  # the step line and the epoch line
    return lines[0]


def test_step_line_has_losses_lr_rate_and_eta(exp):
    line = _step_line(exp)
    assert "epoch 1 step 7 total=2.500 ctc=1.250 lr=1.50e-03" in line
    assert "nat=" not in line  # zero loss parts other than total are left out
    assert "rate=12345 frames/s" in line
    assert "eta=1:02:05" in line  # 3725 s as h:mm:ss
    assert "skipped_audio=2" in line


def test_epoch_line_has_the_valid_loss(exp):
    text = (exp / "train.log").read_text()
    assert re.search(r"epoch 1 done: step 7 valid_loss=1\.8750 elapsed=2\.0 min", text)


def test_unknown_eta_is_a_question_mark(tmp_path):
    _run(tmp_path / "exp", eta_s=float("nan"))
    assert "eta=? " in _step_line(tmp_path / "exp")


def test_tensorboard_events_hold_the_step_scalars(exp):
    events = list((exp / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    acc_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = acc_mod.EventAccumulator(str(exp / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/total", "train/ctc", "train/lr", "train/frames_per_s", "valid/loss"} <= tags
    (ev,) = acc.Scalars("train/total")
    assert ev.step == 7 and ev.value == pytest.approx(2.5)
    assert acc.Scalars("valid/loss")[0].value == pytest.approx(1.875)


def test_other_ranks_write_no_files(tmp_path):
    _run(tmp_path / "exp", rank=1)
    assert list((tmp_path / "exp").iterdir()) == []


def test_close_detaches_the_file_handler(tmp_path):
    """A second experiment in the same process must not keep writing into the first one's log."""
    _run(tmp_path / "a")
    _run(tmp_path / "b")
    assert "step 7" in (tmp_path / "b" / "train.log").read_text()
    assert (tmp_path / "a" / "train.log").read_text().count("step 7 total") == 1
