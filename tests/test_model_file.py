"""One-file models: ``casnat export-model`` packs an experiment so that ``load_model(file)`` and
``transcribe --model`` decode exactly what the experiment directory decodes, loading never
unpickles, and a damaged or foreign file is one clear error naming it."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from casnat.cli import main
from casnat.errors import UserError
from casnat.testing import FSDD_RECORDINGS, tiny_config

pytest.importorskip("safetensors", reason="one-file models need safetensors (pip install .[dev])")
pytestmark = pytest.mark.skipif(not FSDD_RECORDINGS.is_dir(), reason="FSDD data not found")

CLIPS = [FSDD_RECORDINGS / n for n in ("3_jackson_0.wav", "7_george_3.wav", "8_jackson_1.wav")]


@pytest.fixture(scope="module")
def exp(tiny_fsdd, tmp_path_factory) -> Path:
    """A tiny CASS-NAT experiment (CTC + AT + NAT heads, so every weight kind is packed) with a
    decode result, and a no-blank average as its default checkpoint (greedy CTC emits tokens)."""
    from casnat.train.trainer import train

    exp = tmp_path_factory.mktemp("model_file") / "exp"
    train(tiny_config(tiny_fsdd, "cassnat", max_steps=2, max_epochs=1), exp, device="cpu")
    ckpt = next(p for p in sorted(exp.glob("ckpt-*.pt")))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    bias = state["ctc.proj.bias"].clone()
    bias[0] = -1e4
    torch.save({"model": {**state, "ctc.proj.bias": bias}}, exp / "avg-noblank.pt")
    (exp / "decode_test_ctc_greedy").mkdir()
    (exp / "decode_test_ctc_greedy" / "summary.json").write_text(
        json.dumps({"utterances": 6, "wer": 0.25, "cer": 0.125, "rtf": 0.01})
    )
    return exp


@pytest.fixture(scope="module")
def model_file(exp, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("packed") / "tiny.casnat"
    assert main(["export-model", str(exp), "-o", str(out)]) == 0
    return out


def test_file_holds_weights_config_tokenizer_and_card(exp, model_file):
    with zipfile.ZipFile(model_file) as z:
        names = set(z.namelist())
        card = json.loads(z.read("card.json"))
    assert {
        "casnat-model.json",
        "model.safetensors",
        "config.yaml",
        "tokenizer/tokenizer.json",
        "tokenizer/units.txt",
        "card.json",
    } <= names
    assert not any(n.endswith(".pt") for n in names)  # no pickle inside
    assert card["checkpoint"] == "avg-noblank.pt" and card["model_type"] == "cassnat"
    assert card["results"]["test_ctc_greedy"]["wer"] == 0.25
    assert card["train_data"].endswith("cuts_train.jsonl.gz")


@pytest.mark.parametrize("mode", ["ctc_greedy", "cassnat"])
def test_decodes_exactly_like_the_experiment(exp, model_file, mode, monkeypatch):
    from casnat.inference import load_model

    want = [t.text for t in load_model(exp).transcribe(CLIPS, mode=mode)]

    def no_pickle(*a, **k):
        raise AssertionError("a one-file model must load without torch.load")

    monkeypatch.setattr(torch, "load", no_pickle)
    rec = load_model(model_file)
    assert rec.card["name"] == "exp"
    got = [t.text for t in rec.transcribe(CLIPS, mode=mode)]
    assert got == want and any(got)


def test_cli_model_flag_matches_exp_dir(exp, model_file, capsys):
    clips = [str(c) for c in CLIPS]
    assert main(["transcribe", "--exp-dir", str(exp), "--device", "cpu", *clips]) == 0
    from_exp = capsys.readouterr().out
    assert main(["transcribe", "--model", str(model_file), "--device", "cpu", *clips]) == 0
    assert capsys.readouterr().out == from_exp and from_exp.strip()
    assert main(["transcribe", "--model", str(model_file), "--checkpoint", "x.pt", *clips]) == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_damaged_or_foreign_files_are_named_errors(model_file, tmp_path):
    from casnat.model_file import read_model_file

    foreign = tmp_path / "foreign.casnat"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("hello.txt", "hi")
    truncated = tmp_path / "truncated.casnat"
    truncated.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    no_weights = tmp_path / "no_weights.casnat"
    with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(no_weights, "w") as dst:
        for n in src.namelist():
            if n != "model.safetensors":
                dst.writestr(n, src.read(n))
    text = tmp_path / "text.casnat"
    text.write_text("not a zip")
    for bad, why in [
        (foreign, "not a casnat model"),
        (truncated, ""),
        (no_weights, "model.safetensors"),
        (text, "not a casnat model"),
    ]:
        with pytest.raises(UserError, match=why) as err:
            read_model_file(bad)
        assert str(bad) in str(err.value)


def test_export_errors_name_the_problem(exp, tmp_path, capsys):
    assert main(["export-model", str(tmp_path / "nope"), "-o", str(tmp_path / "m.casnat")]) == 2
    assert "nope" in capsys.readouterr().err
    broken = tmp_path / "exp"
    shutil.copytree(exp, broken)
    shutil.rmtree(broken / "tokenizer")
    assert main(["export-model", str(broken), "-o", str(tmp_path / "m.casnat")]) == 2
    assert "tokenizer" in capsys.readouterr().err
    assert not (tmp_path / "m.casnat").exists()
