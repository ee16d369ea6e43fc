"""Training loop: it learns, it checkpoints atomically, and a resumed run continues exactly."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet

from casnat.checkpoint import latest_checkpoint, load_checkpoint
from casnat.testing import make_cut, tiny_config
from casnat.train.trainer import train


def _batches(exp: Path) -> list[str]:
    return (exp / "batches.rank0.txt").read_text().splitlines()


def test_train_writes_logs_checkpoints_and_tokenizer(tiny_fsdd, tmp_path):
    cfg = tiny_config(tiny_fsdd, max_steps=4, max_epochs=5)
    summary = train(cfg, tmp_path / "exp", device="cpu")
    exp = tmp_path / "exp"
    assert summary.steps == 4
    assert (exp / "config.yaml").is_file() and (exp / "tokenizer").is_dir()
    assert (exp / "cmvn.pt").is_file()
    log = (exp / "train.log").read_text()
    assert "frames/s" in log and "eta=" in log and "params=" in log
    assert any((exp / "tensorboard").iterdir())
    ck = load_checkpoint(latest_checkpoint(exp))
    assert ck["step"] == 4 and "optimizer" in ck and "samplers" in ck
    assert not list(exp.glob(".*.tmp"))  # no temp files left behind
    assert math.isfinite(summary.last_valid_loss)


def test_resume_continues_with_same_data_and_weights(tiny_fsdd, tmp_path):
    full = tmp_path / "full"
    train(
        tiny_config(tiny_fsdd, max_steps=5, max_epochs=3), full, device="cpu", dump_batch_ids=True
    )
    # The same run "killed" after 2 steps, then resumed.
    part = tmp_path / "part"
    train(
        tiny_config(tiny_fsdd, max_steps=2, max_epochs=3), part, device="cpu", dump_batch_ids=True
    )
    train(
        tiny_config(tiny_fsdd, max_steps=5, max_epochs=3),
        part,
        resume=True,
        device="cpu",
        dump_batch_ids=True,
    )
    assert _batches(part) == _batches(full)
    a = load_checkpoint(latest_checkpoint(full))["model"]
    b = load_checkpoint(latest_checkpoint(part))["model"]
    assert latest_checkpoint(full).name == latest_checkpoint(part).name == "ckpt-5.pt"
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_loss_decreases_when_training_on_real_speech(tiny_fsdd, tmp_path):
    cfg = tiny_config(tiny_fsdd, max_steps=30, max_epochs=30, peak_lr=3e-3)
    exp = tmp_path / "exp"
    train(cfg, exp, device="cpu")
    lines = [
        ln
        for ln in (exp / "train.log").read_text().splitlines()
        if " step " in ln and "total=" in ln
    ]
    first = float(lines[0].split("total=")[1].split()[0])
    last = float(lines[-1].split("total=")[1].split()[0])
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_bad_audio_is_skipped_named_and_counted_without_losing_data(
    tiny_fsdd, tmp_path, num_workers
):
    """A corrupt, an empty and a missing wav among real training cuts (features on the fly): the
    run finishes, the log names each file and counts 3 per epoch (also when a DataLoader worker,
    with its own copy of the dataset, reads the audio), and every good cut is still trained on."""
    good = CutSet.from_file(tiny_fsdd.parent / "manifests" / "cuts_train.jsonl.gz").to_eager()
    corrupt, empty, missing = (tmp_path / f"{n}.wav" for n in ("corrupt", "empty", "missing"))
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    bad = [make_cut(p, "one", sr=16000) for p in (corrupt, empty, missing)]
    cuts = list(good)
    for i, c in enumerate(bad):  # spread through the manifest
        cuts.insert(1 + i * len(good) // 3, c)
    train_cuts = tmp_path / "cuts_train_with_bad.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(train_cuts)

    cfg = tiny_config(tiny_fsdd, max_epochs=2)
    cfg = replace(
        cfg,
        data=replace(
            cfg.data, train_cuts=str(train_cuts), on_the_fly_feats=True, num_workers=num_workers
        ),
    )
    exp = tmp_path / "exp"
    summary = train(cfg, exp, device="cpu", dump_batch_ids=True)
    assert summary.epochs == 2
    log = (exp / "train.log").read_text()
    assert re.search(r"skipped audio files: 6\b", log)  # 3 bad files x 2 epochs
    for name in ("corrupt.wav", "empty.wav", "missing.wav"):  # named once per epoch
        assert sum("WARNING skipping cut:" in ln and name in ln for ln in log.splitlines()) == 2
    for epoch in ("0", "1"):
        seen = {
            cut_id
            for line in _batches(exp)
            if line.split()[0] == epoch
            for cut_id in line.split()[1:]
        }
        assert seen == {c.id for c in good}


def test_fit_schedule_to_budget_moves_the_end_only_when_time_runs_out_first():
    from casnat.train.trainer import _fit_schedule_to_budget

    class Log:
        lines: list[str] = []

        def info(self, msg: str) -> None:
            self.lines.append(msg)

    tc = replace(tiny_config(Path("."), max_steps=1000, max_minutes=10.0).train,
                 lr_schedule="cosine")
    log = Log()
    # 20 steps in 60 s (3 s/step), 540 s left: 0.95 * 540 / 3 = 171 more steps -> ends at 191.
    assert _fit_schedule_to_budget(20, 20, 0.0, 600.0, tc, log, now=60.0) == 191
    assert "~191 steps of train.max_steps=1000" in log.lines[-1] and "anneals" in log.lines[-1]
    # Fast enough for max_steps: unchanged (0 = max_steps).
    assert _fit_schedule_to_budget(20, 20, 0.0, 600.0, tc, log, now=2.0) == 0


def test_time_capped_run_anneals_by_the_step_its_minutes_allow(tiny_fsdd, tmp_path, monkeypatch):
    """max_minutes binds before max_steps: the run ends at the step it fitted, on the floor LR."""
    import casnat.train.trainer as trainer

    clock = iter(range(10**9))  # a fake clock: every reading is 0.25 s after the previous one
    monkeypatch.setattr(trainer.time, "monotonic", lambda: next(clock) * 0.25)
    cfg = tiny_config(tiny_fsdd, max_steps=100000, max_epochs=1000, max_minutes=0.5,
                      warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.1)
    exp = tmp_path / "exp"
    summary = train(cfg, exp, device="cpu")
    log = (exp / "train.log").read_text()
    m = re.search(r"time for ~(\d+) steps of train.max_steps=100000", log)
    assert m, log
    end = int(m.group(1))
    assert 20 < end < 100000 and summary.steps == end
    ck = load_checkpoint(latest_checkpoint(exp))
    assert ck["schedule_end"] == end
    assert ck["scheduler"]["_last_lr"][0] == pytest.approx(2e-3 * 0.1)
