"""``casnat transcribe`` and ``Recognizer.transcribe`` at scale: directories and broken inputs,
every output format, long audio through the long-form path (word times in file time), arrays,
feature workers. Short inputs must decode exactly as one-by-one decoding does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from casnat.cli import main
from casnat.decode.runner import DecodeOptions
from casnat.inference import load_model
from casnat.inputs import as_inputs
from casnat.longform import LongformConfig
from casnat.testing import FSDD_RECORDINGS, tiny_config

pytestmark = pytest.mark.skipif(not FSDD_RECORDINGS.is_dir(), reason="FSDD data not found")

CLIPS = ("3_jackson_0.wav", "7_george_3.wav", "1_jackson_5.wav")


@pytest.fixture(scope="module")
def exp(tiny_fsdd, tmp_path_factory) -> Path:
    """A tiny CTC experiment whose default checkpoint (avg-*.pt) has the blank logit pushed far
    down, so greedy CTC emits tokens (a model a few steps old would emit mostly blanks)."""
    from casnat.train.trainer import train

    exp = tmp_path_factory.mktemp("transcribe") / "exp"
    train(tiny_config(tiny_fsdd, "ctc", max_steps=3, max_epochs=1), exp, device="cpu")
    ckpt = next(p for p in sorted(exp.glob("*.pt")) if p.name != "cmvn.pt")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    bias = state["ctc.proj.bias"].clone()
    bias[0] = -1e4
    torch.save({"model": {**state, "ctc.proj.bias": bias}}, exp / "avg-noblank.pt")
    return exp


@pytest.fixture
def audio_dir(tmp_path) -> Path:
    d = tmp_path / "audio"
    (d / "sub").mkdir(parents=True)
    for k, name in enumerate(CLIPS):
        shutil.copy(FSDD_RECORDINGS / name, (d / "sub" if k == 2 else d) / name)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return d


def _one_by_one(rec, path: Path) -> str:
    """Today's short path: the file's features decoded alone."""
    (h,) = rec.transcribe_features([rec.load_audio(path)], DecodeOptions())
    return rec.tokenizer.decode(h.tokens)


def test_directory_to_stdout_matches_one_by_one_decoding(exp, audio_dir, capsys):
    rc = main(["transcribe", "--exp-dir", str(exp), "--device", "cpu", str(audio_dir)])
    out, err = capsys.readouterr()
    assert rc == 1  # broken.wav failed, the others were transcribed
    lines = out.splitlines()
    rec = load_model(exp)
    want = sorted(audio_dir.rglob("*.wav"))
    want = [p for p in want if p.name != "broken.wav"]
    assert sorted(ln.split(" ", 1)[0] for ln in lines) == sorted(p.stem for p in want)
    got = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] if " " in ln else "" for ln in lines}
    for p in want:
        assert got[p.stem] == _one_by_one(rec, p)
        assert got[p.stem]  # the no-blank model emits something
    err_lines = [ln for ln in err.splitlines() if ln.startswith("casnat transcribe:")]
    assert any("broken.wav" in ln and "unreadable" in ln for ln in err_lines)
    assert "1 of 4 files failed" in err and "RTF" in err_lines[-1]


def test_every_format_in_output_dir(exp, audio_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "transcribe",
            "--exp-dir",
            str(exp),
            "--device",
            "cpu",
            "--quiet",
            "--format",
            "text,jsonl,ctm,srt,vtt,tsv",
            "--output-dir",
            str(out),
            "--batch-seconds",
            "1.5",
            str(audio_dir),
        ]
    )
    assert rc == 1 and capsys.readouterr().out == ""  # results went to files
    rows = [json.loads(ln) for ln in (out / "transcripts.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(
        list(r) == ["id", "source", "duration", "text", "words", "error"] for r in rows
    )
    bad = [r for r in rows if r["error"]]
    assert len(bad) == 1 and "broken.wav" in bad[0]["error"] and bad[0]["text"] == ""
    good = [r for r in rows if not r["error"]]
    for r in good:
        assert r["text"] == " ".join(w["word"] for w in r["words"])
        assert r["duration"] == pytest.approx(sf.info(r["source"]).duration, abs=1e-3)
        for w in r["words"]:
            assert 0 <= w["start"] < w["end"] <= r["duration"] + 0.05
            assert 0 <= w["confidence"] <= 1
        assert (out / f"{r['id']}.srt").is_file() and (out / f"{r['id']}.vtt").is_file()
    assert not (out / "broken.srt").exists()
    text = (out / "transcripts.text").read_text().splitlines()
    assert sorted(ln.split(" ", 1)[0] for ln in text) == sorted(r["id"] for r in good)
    ctm = (out / "transcripts.ctm").read_text().splitlines()
    assert len(ctm) == sum(len(r["words"]) for r in good)
    tsv = (out / "transcripts.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == ["id", "source", "duration", "text", "error"] and len(tsv) == 5
    assert (out / "transcripts.vtt").read_text().startswith("WEBVTT")
    assert not list(out.glob(".*.tmp"))  # atomic writes left no temporary files


def test_output_file_is_written_in_the_chosen_format(exp, audio_dir, tmp_path, capsys):
    """--format jsonl --output out.jsonl writes JSONL there (it used to write 'id text' lines
    whatever the format), keeping the failed file with its error, as stdout does."""
    out = tmp_path / "out.jsonl"
    rc = main(["transcribe", "--exp-dir", str(exp), "--device", "cpu", "--quiet",
               "--format", "jsonl", "--output", str(out), str(audio_dir)])
    assert rc == 1
    printed = capsys.readouterr().out
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(rows) == 4 and sum(bool(r["error"]) for r in rows) == 1
    assert [json.loads(ln) for ln in printed.splitlines()] == rows  # the same as on stdout
    plain = tmp_path / "out.txt"
    assert main(["transcribe", "--exp-dir", str(exp), "--device", "cpu", "--quiet",
                 "--output", str(plain), str(audio_dir)]) == 1
    ids = sorted(ln.split(" ", 1)[0] for ln in plain.read_text().splitlines())
    assert ids == sorted(r["id"] for r in rows if not r["error"])


def test_bad_output_options_are_one_line(exp, audio_dir, capsys):
    base = ["transcribe", "--exp-dir", str(exp), "--device", "cpu", str(audio_dir)]
    assert main([*base, "--format", "text,jsonl"]) == 2
    assert "--output-dir" in capsys.readouterr().err
    assert main([*base, "--format", "docx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "docx" in err[0]


def _long_wav(path: Path, seconds: float = 24.0) -> list[float]:
    """FSDD clips with 1.5 s pauses, up to ``seconds``; returns the start of each clip."""
    sr, parts, starts, t = 8000, [], [], 0.0
    names = sorted(FSDD_RECORDINGS.glob("*_jackson_*.wav"))
    k = 0
    while t < seconds:
        x, _ = sf.read(names[k % len(names)], dtype="float32")
        starts.append(t)
        parts += [x, np.zeros(int(1.5 * sr), dtype=np.float32)]
        t += len(x) / sr + 1.5
        k += 1
    sf.write(path, np.concatenate(parts), sr)
    return starts


def test_long_file_goes_through_long_form_with_file_time_words(exp, tmp_path, capsys):
    wav = tmp_path / "long.wav"
    _long_wav(wav)
    duration = sf.info(wav).duration
    out = tmp_path / "out"
    rc = main(
        [
            "transcribe",
            "--exp-dir",
            str(exp),
            "--device",
            "cpu",
            "--quiet",
            "--format",
            "jsonl,srt",
            "--output-dir",
            str(out),
            str(wav),
        ]
    )
    assert rc == 0
    (row,) = [json.loads(ln) for ln in (out / "transcripts.jsonl").read_text().splitlines()]
    starts = [w["start"] for w in row["words"]]
    assert starts == sorted(starts) and row["words"][-1]["end"] <= duration + 0.05
    assert starts[-1] > duration / 2  # offsets are file time, not segment time
    assert (out / "long.srt").read_text().count("-->") >= 2

    rec = load_model(exp)
    auto, never = rec.transcribe([wav]), rec.transcribe([wav], long="never")
    assert auto[0].long and not never[0].long
    assert auto[0].text == row["text"]
    short = rec.transcribe([FSDD_RECORDINGS / CLIPS[0]], long="auto")[0]
    assert not short.long  # short files keep the batched short path
    (fsdd,) = rec.transcribe([FSDD_RECORDINGS / CLIPS[0]], long="always")
    assert fsdd.long and fsdd.error is None


def test_arrays_tensors_and_stereo_match_the_file(exp):
    path = FSDD_RECORDINGS / CLIPS[1]
    x, sr = sf.read(path, dtype="float32")
    rec = load_model(exp)
    got = rec.transcribe([path, (x, sr), (torch.from_numpy(np.stack([x, x])), sr)])
    assert [g.error for g in got] == [None, None, None]
    assert got[0].text and got[1].text == got[0].text and got[2].text == got[0].text
    assert [g.id for g in got] == [path.stem, "array1", "array2"]
    (bad,) = rec.transcribe([(x[:10], sr)])
    assert bad.error and "too short" in bad.error


def test_feature_workers_give_the_same_text(exp, audio_dir, capsys):
    base = ["transcribe", "--exp-dir", str(exp), "--device", "cpu", "--quiet", str(audio_dir)]
    assert main(base) == 1
    here = capsys.readouterr().out
    assert main([*base, "--num-workers", "1"]) == 1
    assert capsys.readouterr().out == here


def test_progress_logs_lines_off_a_terminal_and_sums_audio(caplog):
    from casnat.bin.transcribe import Progress

    p = Progress(total_files=2, total_s=7200.0, quiet=False, every_s=0.0)
    assert p.bar is None  # pytest's stderr is not a terminal
    with caplog.at_level("INFO", logger="casnat.transcribe"):
        p.advance(1800.0)
        p.file_done(False)
        p.advance(1800.0)
        p.file_done(True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "0.500/2.000 h" in lines[0] and "ETA" in lines[0]
    summary = p.close()
    assert "2 files (1 failed)" in summary and "1.000 h" in summary and "RTF" in summary
    q = Progress(total_files=1, total_s=10.0, quiet=True, every_s=0.0)
    with caplog.at_level("INFO", logger="casnat.transcribe"):
        caplog.clear()
        q.advance(10.0)
    assert not caplog.records


def test_long_file_reports_progress_within_the_file(exp, tmp_path):
    wav = tmp_path / "long.wav"
    _long_wav(wav, 30.0)
    seen: list[float] = []
    rec = load_model(exp)
    inputs = as_inputs([wav])
    (res,) = [r for _, r in rec.iter_transcribe(inputs, DecodeOptions(), on_audio=seen.append)]

    assert res.long
    assert sum(seen) == pytest.approx(sf.info(wav).duration, abs=0.05)
    small = LongformConfig(batch_size=1)
    seen.clear()
    list(rec.iter_transcribe(inputs, DecodeOptions(), long_cfg=small, on_audio=seen.append))
    assert len(seen) >= 3  # one report per decoded segment batch, not one per file


@pytest.mark.skipif(not shutil.which("cat"), reason="needs a shell with cat")
def test_wav_scp_with_a_pipe_and_segments_through_the_cli(exp, tmp_path, capsys):
    a, b = FSDD_RECORDINGS / CLIPS[0], FSDD_RECORDINGS / CLIPS[1]
    scp = tmp_path / "wav.scp"
    scp.write_text(f"ra {a}\nrb cat {b} |\nrc false |\n")
    rc = main(
        ["transcribe", "--exp-dir", str(exp), "--device", "cpu", "--quiet", "--wav-scp", str(scp)]
    )
    out, err = capsys.readouterr()
    assert rc == 1 and f"{scp}:3" in err  # the failing command is named, the others decoded
    got = dict(ln.split(" ", 1) for ln in out.splitlines())
    rec = load_model(exp)
    assert got == {"ra": _one_by_one(rec, a), "rb": _one_by_one(rec, b)}
    seg = tmp_path / "segments"
    seg.write_text("u1 ra 0 -1\nu2 rb 0.0 0.2\n")
    assert (
        main(
            [
                "transcribe",
                "--exp-dir",
                str(exp),
                "--device",
                "cpu",
                "--quiet",
                "--wav-scp",
                str(scp),
                "--segments",
                str(seg),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert [ln.split(" ", 1)[0] for ln in out] == ["u1", "u2"]
    assert out[0] == f"u1 {got['ra']}"  # a whole-recording segment decodes as the file


def test_cuda_without_cuda_is_one_line(exp, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    wav = str(FSDD_RECORDINGS / CLIPS[0])
    assert main(["transcribe", "--exp-dir", str(exp), "--device", "cuda", wav]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(err) == 1 and "CUDA" in err[0]


def test_each_failed_input_is_one_stderr_line(exp, tmp_path, capsys):
    tiny = tmp_path / "tiny.wav"  # readable, but shorter than one feature frame
    sf.write(tiny, np.zeros(10, dtype=np.float32), 8000)
    args = ["transcribe", "--exp-dir", str(exp), "--device", "cpu", "--quiet"]
    rc = main([*args, str(tiny), str(tmp_path / "gone.wav"), str(FSDD_RECORDINGS / CLIPS[0])])
    out, err = capsys.readouterr()
    assert rc == 1 and out.startswith(Path(CLIPS[0]).stem + " ")
    assert sum("tiny.wav" in ln for ln in err.splitlines()) == 1
    assert sum("gone.wav" in ln for ln in err.splitlines()) == 1
    assert "too short" in err and "no such audio file" in err


def test_long_form_options_reach_the_segmenter():
    """``--vad`` / ``--max-segment-s`` change the long-form settings and nothing else; the
    defaults are LongformConfig's; a non-positive segment length is refused."""
    import argparse

    from casnat.bin.transcribe import _long_cfg, add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert _long_cfg(p.parse_args(["--exp-dir", "e", "x.wav"])) == LongformConfig()
    args = p.parse_args(["--exp-dir", "e", "--vad", "ctc", "--max-segment-s", "6", "x.wav"])
    cfg = _long_cfg(args)
    assert cfg == LongformConfig(vad="ctc", max_segment_s=6.0)
    with pytest.raises(SystemExit, match="max-segment-s"):
        _long_cfg(p.parse_args(["--exp-dir", "e", "--max-segment-s", "0", "x.wav"]))
