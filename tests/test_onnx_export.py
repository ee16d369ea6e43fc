"""ONNX export: onnxruntime's greedy CTC gives exactly casnat's ``ctc_greedy`` text on real
speech, the exported CASS-NAT path (encoder graph -> NumPy segments -> NAT graph) exactly its
``cassnat`` text, through one file at several batch sizes and lengths; the files carry their
tokenizer and feature config; int8 exports load and decode; other modes fail naming the mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from casnat.cli import main
from casnat.errors import UnsupportedModeError, UserError
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


@pytest.fixture(scope="module")
def nat_exp(tiny_fsdd, tmp_path_factory) -> Path:
    """A tiny CASS-NAT experiment whose CTC never prefers blank, so the greedy path has
    tokens and the NAT decoder has segments to decode (the model is barely trained: its
    outputs are far from one-hot, which makes an exact text match a strict test)."""
    from casnat.train.trainer import train

    exp = tmp_path_factory.mktemp("onnx_nat") / "exp"
    train(tiny_config(tiny_fsdd, "cassnat", max_steps=2, max_epochs=1), exp, device="cpu")
    ckpt = next(p for p in sorted(exp.glob("ckpt-*.pt")))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    bias = state["ctc.proj.bias"].clone()
    bias[0] = -1e4
    torch.save({"model": {**state, "ctc.proj.bias": bias}}, exp / "avg-noblank.pt")
    return exp


@pytest.fixture(scope="module")
def nat_onnx(nat_exp, tmp_path_factory) -> Path:
    from casnat.onnx_export import export_onnx, nat_graph_path

    out = tmp_path_factory.mktemp("onnx_files") / "m.onnx"
    meta = export_onnx(nat_exp, out)
    assert nat_graph_path(out).is_file() and meta["nat_graph"] == "m.nat.onnx"
    assert meta["nat_max_abs_diff"] < 1e-3
    return out


def test_numpy_segments_equal_alignment_to_segments():
    from casnat.align import alignment_to_segments
    from casnat.onnx_numpy import greedy_segments

    rng = np.random.default_rng(0)
    for b, t in [(1, 1), (3, 17), (4, 40)]:
        lens = rng.integers(1, t + 1, size=b)
        path = np.where(rng.random((b, t)) < 0.4, 0, rng.integers(1, 5, size=(b, t)))
        path[np.arange(t)[None] >= lens[:, None]] = -1
        for left, right in [(0, 0), (1, 1), (2, 0)]:
            want = alignment_to_segments(torch.from_numpy(path), torch.from_numpy(lens), 0,
                                         left, right)
            got = greedy_segments(path, lens, 0, left, right)
            for name in ("tokens", "token_lens", "trigger_mask", "starts", "ends"):
                assert np.array_equal(getattr(got, name), getattr(want, name).numpy()), name


def test_onnx_cassnat_matches_torch_cassnat(nat_exp, nat_onnx):
    from casnat.inference import load_model
    from casnat.onnx_export import OnnxRecognizer

    clips = CLIPS + [FSDD_RECORDINGS / n for n in ("5_jackson_2.wav", "9_george_4.wav")]
    rec = load_model(nat_exp)
    want = rec.transcribe(clips, mode="cassnat", long="never")
    onnx_rec = OnnxRecognizer(nat_onnx, mode="cassnat")
    for batch_size in (1, 2, 5):  # several batch sizes and lengths through one exported file
        got = onnx_rec.transcribe(clips, batch_size=batch_size)
        assert [g.text for g in got] == [w.text for w in want]
        assert [[(x.word, x.start, x.end) for x in g.words] for g in got] == [
            [(x.word, x.start, x.end) for x in w.words] for w in want
        ]  # the words' times come from the CTC runs of the segments: the same frames
    assert any(w.text for w in want)
    greedy = rec.transcribe(clips, mode="ctc_greedy", long="never")
    assert [g.text for g in onnx_rec.transcribe(clips, mode="ctc_greedy")] == [
        w.text for w in greedy
    ]


def test_onnx_unsupported_modes_are_named(nat_onnx, exp, tmp_path):
    from casnat.onnx_export import OnnxRecognizer, export_onnx

    rec = OnnxRecognizer(nat_onnx)
    for mode in ("at_beam", "cassnat_esa", "ctc_prefix_beam"):
        with pytest.raises(UnsupportedModeError, match=f"mode '{mode}'"):
            rec.transcribe(CLIPS[:1], mode=mode)
    with pytest.raises(UnsupportedModeError, match="mode 'joint_ctc_at'"):
        OnnxRecognizer(nat_onnx, mode="joint_ctc_at")
    ctc_only = tmp_path / "ctc.onnx"
    export_onnx(exp, ctc_only)  # a CTC model: no NAT graph, so no cassnat
    with pytest.raises(UnsupportedModeError, match="mode 'cassnat'.*no NAT graph"):
        OnnxRecognizer(ctc_only, mode="cassnat")


def test_int8_export_loads_and_decodes(nat_exp, tmp_path, capsys):
    from casnat.onnx_export import OnnxRecognizer

    out = tmp_path / "m.int8.onnx"
    assert main(["export-onnx", str(nat_exp), "-o", str(out), "--int8"]) == 0
    assert '"quantization": "int8-dynamic"' in capsys.readouterr().out
    assert (tmp_path / "m.int8.nat.onnx").is_file()
    rec = OnnxRecognizer(out, mode="cassnat")
    assert rec.meta["quantization"] == "int8-dynamic"
    got = rec.transcribe(CLIPS, batch_size=2)
    assert len(got) == 3 and not any(g.error for g in got) and any(g.text for g in got)


def test_transcribe_backend_onnx(nat_onnx, capsys):
    assert main(["transcribe", "--backend", "onnx", "--model", str(nat_onnx),
                 "--mode", "cassnat", "--quiet", *map(str, CLIPS)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert main(["transcribe", "--backend", "onnx", "--model", str(nat_onnx), "--mode",
                 "at_beam", "--quiet", str(CLIPS[0])]) == 2
    assert "mode 'at_beam' is not supported by this ONNX export" in capsys.readouterr().err


def test_decode_backend_onnx_scores_as_torch(nat_exp, nat_onnx, tiny_fsdd, tmp_path):
    import json

    cuts = str(tiny_fsdd / "cuts_test.jsonl.gz")
    common = ["--cuts", cuts, "--mode", "cassnat", "--batch-size", "4"]
    assert main(["decode", "--exp-dir", str(nat_exp), *common, "--out-dir",
                 str(tmp_path / "torch")]) == 0
    assert main(["decode", "--backend", "onnx", "--onnx-model", str(nat_onnx), *common,
                 "--out-dir", str(tmp_path / "onnx")]) == 0
    hyp = (tmp_path / "onnx" / "hyp.txt").read_text()
    assert hyp.strip() and hyp == (tmp_path / "torch" / "hyp.txt").read_text()
    summary = json.loads((tmp_path / "onnx" / "summary.json").read_text())
    assert summary["backend"] == "onnx" and summary["utterances"] == 6
    assert main(["decode", "--backend", "onnx", "--onnx-model", str(nat_onnx), "--cuts", cuts,
                 "--mode", "attention_rescoring", "--out-dir", str(tmp_path / "x")]) == 2


def test_bench_onnx_prints_one_table(nat_exp, tiny_fsdd, tmp_path, capsys, monkeypatch):
    import importlib.util
    import json
    import sys

    path = Path(__file__).resolve().parents[1] / "tools" / "bench_onnx.py"
    spec = importlib.util.spec_from_file_location("bench_onnx", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_onnx", bench)  # its dataclass looks itself up there
    spec.loader.exec_module(bench)
    assert bench.main(["--exp-dir", str(nat_exp), "--cuts", str(tiny_fsdd / "cuts_test.jsonl.gz"),
                       "--out-dir", str(tmp_path), "--limit", "4", "--repeats", "1"]) == 0
    rows = json.loads((tmp_path / "bench_onnx.json").read_text())
    assert [(r["backend"], r["mode"]) for r in rows] == [
        (b, m) for m in ("ctc_greedy", "cassnat") for b in ("torch", "onnx fp32", "onnx int8")
    ]
    assert all(r["identical"] == 1.0 for r in rows if r["backend"] != "onnx int8")
    assert "| onnx int8 | cassnat |" in capsys.readouterr().out
