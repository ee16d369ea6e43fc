"""ONNX export of the encoder + CTC: onnxruntime's greedy CTC gives exactly casnat's
``ctc_greedy`` text on real speech, and the file carries its tokenizer and feature config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from casnat.cli import main
from casnat.errors import UserError
from casnat.testing import FSDD_RECORDINGS, tiny_config

pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install .[onnx])")
pytest.importorskip("onnxruntime", reason="ONNX decoding needs onnxruntime (pip install .[onnx])")
pytestmark = pytest.mark.skipif(not FSDD_RECORDINGS.is_dir(), reason="FSDD data not found")

CLIPS = [FSDD_RECORDINGS / n for n in ("3_jackson_0.wav", "7_george_3.wav", "0_george_1.wav")]


@pytest.fixture(scope="module")
def exp(tiny_fsdd, tmp_path_factory) -> Path:
    """A tiny CTC experiment whose default checkpoint never prefers blank (so tokens come out)."""
    from casnat.train.trainer import train

    exp = tmp_path_factory.mktemp("onnx") / "exp"
    train(tiny_config(tiny_fsdd, "ctc", max_steps=2, max_epochs=1), exp, device="cpu")
    ckpt = next(p for p in sorted(exp.glob("ckpt-*.pt")))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    bias = state["ctc.proj.bias"].clone()
    bias[0] = -1e4
    torch.save({"model": {**state, "ctc.proj.bias": bias}}, exp / "avg-noblank.pt")
    return exp


def test_onnx_greedy_matches_casnat_ctc_greedy(exp, tmp_path, capsys):
    from casnat.inference import load_model
    from casnat.onnx_export import OnnxRecognizer

    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(exp), "-o", str(out)]) == 0
    assert '"max_abs_diff"' in capsys.readouterr().out
    want = load_model(exp).transcribe(CLIPS, mode="ctc_greedy", long="never")
    got = OnnxRecognizer(out).transcribe([*CLIPS, tmp_path / "gone.wav"], batch_size=2)
    assert [g.text for g in got[:3]] == [w.text for w in want] and any(g.text for g in got)
    assert [[x.word for x in g.words] for g in got[:3]] == [[x.word for x in w.words] for w in want]
    assert got[3].error and "gone.wav" in got[3].error


def test_not_a_casnat_onnx_file_is_named(tmp_path):
    from casnat.onnx_export import OnnxRecognizer

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(UserError, match="bad.onnx"):
        OnnxRecognizer(bad)
