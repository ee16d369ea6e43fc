"""The Python decoding API: ``load_model(exp_dir)`` picks the checkpoint a user expects (avg, then
the last epoch, then the newest step), and ``transcribe`` decodes real 8 kHz speech, marks a broken
file with ``error`` without losing the others, and times tokens inside the audio."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from casnat.inference import load_model
from casnat.testing import fsdd_dir, tiny_config

MARK = "ctc.proj.bias"  # a checkpoint key: stable, since old checkpoints must keep loading


@pytest.fixture(scope="module")
def trained_exp(tiny_fsdd, tmp_path_factory) -> Path:
    """A tiny CTC experiment trained for a few steps (config.yaml, tokenizer/, checkpoints)."""
    from casnat.train.trainer import train

    exp = tmp_path_factory.mktemp("inference") / "exp"
    train(tiny_config(tiny_fsdd, "ctc", max_steps=3, max_epochs=1), exp, device="cpu")
    return exp


def _state(exp: Path) -> dict[str, torch.Tensor]:
    ckpt = next(p for p in sorted(exp.glob("*.pt")) if p.name != "cmvn.pt")
    return torch.load(ckpt, map_location="cpu", weights_only=True)["model"]


def _marked(state: dict, value: float) -> dict:
    return {**state, MARK: torch.full_like(state[MARK], value)}


def _loaded_mark(exp: Path, **kw) -> float:
    return float(load_model(exp, **kw).model.state_dict()[MARK][0])


def test_default_checkpoint_is_avg_then_last_epoch_then_newest_step(trained_exp, tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    for name in ("config.yaml", "tokenizer"):
        (shutil.copytree if (trained_exp / name).is_dir() else shutil.copy)(
            trained_exp / name, exp / name)
    state = _state(trained_exp)
    # step numbers compare as numbers: ckpt-10 is newer than ckpt-9
    for step in (9, 10, 2):
        torch.save({"model": _marked(state, step)}, exp / f"ckpt-{step}.pt")
    assert _loaded_mark(exp) == 10
    for epoch in (9, 10, 3):
        torch.save({"model": _marked(state, 100 + epoch)}, exp / f"epoch-{epoch}.pt")
    assert _loaded_mark(exp) == 110
    for i, name in enumerate(("avg-old.pt", "avg-new.pt")):
        torch.save({"model": _marked(state, 1000 + i)}, exp / name)
        os.utime(exp / name, (1_000_000 + i, 1_000_000 + i))
    assert _loaded_mark(exp) == 1001  # the newest average
    assert _loaded_mark(exp, checkpoint=exp / "ckpt-2.pt") == 2  # an explicit choice wins


def test_no_checkpoint_is_an_error_naming_the_dir(trained_exp, tmp_path):
    exp = tmp_path / "empty"
    shutil.copytree(trained_exp / "tokenizer", exp / "tokenizer")
    shutil.copy(trained_exp / "config.yaml", exp / "config.yaml")
    with pytest.raises(Exception, match="no checkpoint") as err:
        load_model(exp)
    assert str(exp) in str(err.value)


@pytest.fixture(scope="module")
def always_emitting(trained_exp, tmp_path_factory) -> Path:
    """The trained weights with the blank logit pushed far down, so greedy CTC emits a token in
    every run of frames: a model a few steps old would otherwise emit mostly blanks."""
    state = _state(trained_exp)
    bias = state[MARK].clone()
    bias[0] = -1e4
    path = tmp_path_factory.mktemp("noblank") / "noblank.pt"
    torch.save({"model": {**state, MARK: bias}}, path)
    return path


def test_transcribe_real_wav_and_broken_files(trained_exp, always_emitting, tmp_path):
    wav = fsdd_dir() / "recordings" / "3_jackson_0.wav"
    assert sf.info(wav).samplerate == 8000  # resampled to the model's 16 kHz on the way in
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    missing = tmp_path / "missing.wav"
    tiny = tmp_path / "tiny.wav"  # 10 samples: shorter than one feature frame
    sf.write(tiny, np.zeros(10, dtype=np.float32), 8000)
    rec = load_model(trained_exp, checkpoint=always_emitting)
    out = rec.transcribe([wav, broken, wav, missing, tiny], mode="ctc_greedy", batch_size=2)
    assert "tiny.wav" in out[4].error and "too short" in out[4].error and out[4].text == ""
    out = out[:4]
    assert [t.source for t in out] == [str(wav), str(broken), str(wav), str(missing)]
    assert out[0].error is None and out[2].error is None
    assert "broken.wav" in out[1].error and out[1].text == "" and out[1].tokens == []
    assert "missing.wav" in out[3].error and out[3].text == ""
    assert out[0].text and out[0].text == out[2].text  # decoded, and alone or batched alike
    assert [t.token for t in out[0].tokens] == [t.token for t in out[2].tokens]


def test_timestamps_increase_and_stay_inside_the_audio(trained_exp, always_emitting):
    wav = fsdd_dir() / "recordings" / "7_george_3.wav"
    duration = sf.info(wav).duration
    (t,) = load_model(trained_exp, checkpoint=always_emitting).transcribe([wav])
    assert t.error is None and len(t.tokens) >= 2
    frame = 0.04  # 10 ms feature shift x 4 subsampling
    prev_end = 0.0
    for tok in t.tokens:
        assert prev_end <= tok.start < tok.end <= duration + 1e-6, (tok, duration)
        assert (tok.end - tok.start) / frame == pytest.approx(round((tok.end - tok.start) / frame))
        assert 0.0 <= tok.confidence <= 1.0
        prev_end = tok.end
