"""Training faults: damaged or malicious checkpoints, non-finite steps, a full disk, SIGKILL.

Each test puts the fault into a tiny real-speech run and asserts what the user gets: the run
continues where it safely can (and ends with the weights an undisturbed run has), or stops with
one line naming the file and the problem; nothing half-written is ever loaded.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from casnat.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from casnat.config import save_config
from casnat.testing import FAULT_FSIZE, fsdd_dir, load_tool, tiny_config, train_subprocess
from casnat.train.trainer import TrainingDivergedError, train


class _Evil:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def _cfg(tiny_fsdd: Path, **kw):
    kw.setdefault("max_steps", 6)
    return tiny_config(tiny_fsdd, max_epochs=3, checkpoint_every_steps=1, **kw)


@pytest.fixture(scope="module")
def full_run(tiny_fsdd, tmp_path_factory) -> Path:
    """An undisturbed 6-step run: the weights every interrupted run must end with."""
    exp = tmp_path_factory.mktemp("full") / "exp"
    train(_cfg(tiny_fsdd), exp, device="cpu")
    return exp


def test_resume_skips_a_truncated_checkpoint_with_a_warning(tiny_fsdd, full_run, tmp_path):
    exp = tmp_path / "exp"
    train(_cfg(tiny_fsdd, max_steps=4), exp, device="cpu")
    newest = latest_checkpoint(exp)
    assert newest.name == "ckpt-4.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # damaged on disk
    train(_cfg(tiny_fsdd), exp, resume=True, device="cpu")
    log = (exp / "train.log").read_text()
    assert any("WARNING" in ln and "ckpt-4.pt" in ln and "corrupt" in ln for ln in log.split("\n"))
    assert "resumed from" in log and "ckpt-3.pt at epoch" in log
    _assert_same(_weights(latest_checkpoint(exp)), _weights(latest_checkpoint(full_run)))


def test_resume_with_no_usable_checkpoint_is_one_line_naming_them(tiny_fsdd, tmp_path):
    exp = tmp_path / "exp"
    train(_cfg(tiny_fsdd, max_steps=2), exp, device="cpu")
    for p in exp.glob("ckpt-*.pt"):
        p.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        train(_cfg(tiny_fsdd), exp, resume=True, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and "ckpt-1.pt" in msg and "ckpt-2.pt" in msg


def test_malicious_pickle_is_refused_and_never_runs(tiny_fsdd, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": _Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"refusing checkpoint .*evil\.pt") as err:
        load_checkpoint(evil)
    assert "\n" not in str(err.value) and not marker.exists()
    # As a resume candidate: refused, named, and the previous checkpoint is used.
    exp = tmp_path / "exp"
    train(_cfg(tiny_fsdd, max_steps=2), exp, device="cpu")
    os.replace(evil, exp / "ckpt-99.pt")
    train(_cfg(tiny_fsdd, max_steps=3), exp, resume=True, device="cpu")
    log = (exp / "train.log").read_text()
    assert "refusing checkpoint" in log and "ckpt-99.pt" in log and "ckpt-2.pt at epoch" in log
    assert not marker.exists()
    # Through the CLI: one line, exit status 2.
    from casnat.cli import main

    torch.save({"model": {}, "x": _Evil(marker)}, evil)
    rc = main(["transcribe", "--exp-dir", str(exp), "--checkpoint", str(evil), "x.wav"])
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if "casnat transcribe" in ln]
    assert rc == 2 and len(err_lines) == 1 and "refusing checkpoint" in err_lines[0]
    assert not marker.exists()


def _nan_after(monkeypatch, bad_steps: set[int]) -> None:
    """Make the model's loss NaN on the given forward calls (0-based, training calls only)."""
    from casnat.models.asr import ASRModel

    orig = ASRModel.forward
    calls = {"n": 0}

    def forward(self, *a, **kw):
        out = orig(self, *a, **kw)
        if self.training:
            if calls["n"] in bad_steps:
                out = replace(out, total=out.total * float("nan"))
            calls["n"] += 1
        return out

    monkeypatch.setattr(ASRModel, "forward", forward)


def test_nonfinite_steps_are_skipped_and_counted(tiny_fsdd, tmp_path, monkeypatch):
    _nan_after(monkeypatch, {1, 2})
    exp = tmp_path / "exp"
    train(_cfg(tiny_fsdd, max_steps=5, max_nonfinite_steps=3), exp, device="cpu")
    log = (exp / "train.log").read_text()
    skips = [ln for ln in log.splitlines() if "update skipped" in ln]
    assert len(skips) == 2 and "2 in a row" in skips[1]
    assert "non-finite steps skipped: 2" in log
    ck = load_checkpoint(latest_checkpoint(exp))
    assert ck["nonfinite_steps"] == 2 and ck["nonfinite_in_row"] == 0
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_too_many_nonfinite_steps_in_a_row_stop_with_a_clear_error(
    tiny_fsdd, tmp_path, monkeypatch
):
    _nan_after(monkeypatch, set(range(1, 100)))
    exp = tmp_path / "exp"
    with pytest.raises(TrainingDivergedError, match="3 steps in a row") as err:
        train(_cfg(tiny_fsdd, max_steps=10, max_nonfinite_steps=3), exp, device="cpu")
    assert "train.max_nonfinite_steps" in str(err.value) and "\n" not in str(err.value)
    ck = load_checkpoint(latest_checkpoint(exp))  # written before the NaNs: still finite
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_disk_full_while_checkpointing_is_one_line_and_keeps_the_previous(tiny_fsdd, tmp_path):
    exp = tmp_path / "exp"
    cfg_path = tmp_path / "cfg.yaml"
    save_config(_cfg(tiny_fsdd), cfg_path)
    train(_cfg(tiny_fsdd, max_steps=2), exp, device="cpu")
    before = (exp / "ckpt-2.pt").read_bytes()
    limit = len(before) // 2  # big enough for logs and config, too small for a checkpoint
    proc = train_subprocess(cfg_path, exp, resume=True, **{FAULT_FSIZE: str(limit)})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("casnat train: error: ") and "ckpt-3.pt" in last, last
    assert "disk full" in last or "file too large" in last.lower()
    assert (exp / "ckpt-2.pt").read_bytes() == before  # the previous checkpoint is intact
    assert not list(exp.glob(".*.tmp"))
    _weights(exp / "ckpt-2.pt")


@pytest.mark.skipif(fsdd_dir() is None, reason="FSDD data not found")
def test_sigkill_trials_resume_to_the_undisturbed_weights(tmp_path):
    """Three trials of tools/fault_suite.py's SIGKILL section (the script runs ten): killed
    half-way through a checkpoint write, at a random moment, and in a write again, each
    resumed with --resume. Every checkpoint left on disk loads (writes are atomic), the resume
    continues from a whole one, deletes the killed write's temporary file and ends with the
    weights of an undisturbed run (0 workers: exact resumes)."""
    tool = load_tool("fault_suite")
    rows = tool.run_sigkill_trials(tmp_path, trials=3, seed=1)
    table, ok = tool.sigkill_table(rows)
    assert [r.how for r in rows] == ["write", "random", "write"]
    for r in rows:
        assert r.killed, table
        assert r.all_whole and r.resumed_whole, table  # no partial checkpoint loaded
        assert r.resume_rc == 0 and r.tmp_removed and r.equal, table
    # A write kill leaves its half-written temporary file, never a ckpt-N.pt of it.
    for r in rows[::2]:
        assert any(n.endswith(".tmp") for n in r.on_disk), table
        assert r.resumed_from != "scratch", table
    assert ok and table.count("\n") == 2 + len(rows) - 1


def test_a_tokenizer_interrupted_while_training_is_trained_again(tiny_fsdd, tmp_path, monkeypatch):
    """The tokenizer is trained into a temporary directory and renamed: a run killed half-way
    leaves no ``tokenizer/`` that the next run would load as finished."""
    from casnat.data.tokenizer import Tokenizer

    orig = Tokenizer.train.__func__

    def dies_half_way(cls, texts, cfg, out_dir):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "units.txt").write_text("a 0\n")  # partial output
        raise KeyboardInterrupt

    exp = tmp_path / "exp"
    monkeypatch.setattr(Tokenizer, "train", classmethod(dies_half_way))
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_fsdd, max_steps=1), exp, device="cpu")
    assert not (exp / "tokenizer").exists()
    monkeypatch.setattr(Tokenizer, "train", classmethod(orig))
    train(_cfg(tiny_fsdd, max_steps=1), exp, resume=True, device="cpu")
    assert Tokenizer.load(exp / "tokenizer").vocab_size > 3
