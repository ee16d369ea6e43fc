"""What transcription reads: directories (recursive), globs, '-', wav.scp (files and piped
commands) with segments, lhotse manifests and in-memory waveforms; ids stay unique and a bad input
is one error naming it, never an exception that loses the others."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from casnat.errors import UserError
from casnat.inputs import as_inputs, downmix, from_array, one_line_reason, resolve_inputs

SR = 8000


def _wav(path: Path, seconds: float = 0.5, channels: int = 1, sr: int = SR) -> Path:
    rng = np.random.default_rng(len(str(path)))
    x = 0.1 * rng.standard_normal((int(seconds * sr), channels)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x if channels > 1 else x[:, 0], sr)
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    """d/s1/a.wav, d/s2/a.flac (same stem), d/s2/deep/b.wav, d/notes.txt, d/.hidden/c.wav."""
    d = tmp_path / "d"
    _wav(d / "s1" / "a.wav")
    _wav(d / "s2" / "a.flac", 0.3)
    _wav(d / "s2" / "deep" / "b.wav", 0.7)
    _wav(d / ".hidden" / "c.wav")
    (d / "notes.txt").write_text("not audio")
    return d


def test_directory_is_searched_recursively_with_unique_ids(tree):
    got = resolve_inputs([str(tree)])
    assert [Path(i.source).relative_to(tree).as_posix() for i in got] == [
        "s1/a.wav",
        "s2/a.flac",
        "s2/deep/b.wav",
    ]
    assert [i.id for i in got] == ["s1/a", "s2/a", "b"]  # a shared stem keeps its relative path
    assert all(i.error is None for i in got)
    assert [round(i.duration, 2) for i in got] == [0.5, 0.3, 0.7]


def test_glob_stdin_and_errors_do_not_stop_the_rest(tree, tmp_path):
    stdin = io.StringIO(f"{tree / 's1' / 'a.wav'}\n\n{tmp_path / 'gone.wav'}\n")
    got = resolve_inputs(
        [str(tree / "**" / "b.wav"), "-", str(tmp_path / "none*.wav")], stdin=stdin
    )
    assert [i.error is None for i in got] == [True, True, False, False]
    assert "gone.wav" in got[2].error and "no such audio file" in got[2].error
    assert "none*.wav" in got[3].error and "no file matches" in got[3].error
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    (bad,) = resolve_inputs([str(empty)])
    assert str(empty) in bad.error and "no audio files" in bad.error


def test_broken_and_empty_files_are_named_errors(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    b, e = resolve_inputs([str(broken), str(empty)])
    assert "broken.wav" in b.error and "unreadable" in b.error
    assert "empty.wav" in e.error and "empty" in e.error.split(": ", 1)[1]
    with pytest.raises(UserError, match="no audio given"):
        resolve_inputs([])


def test_an_unreadable_file_is_named_with_the_backends_reason_not_cut_at_details(tmp_path):
    """lhotse's message is "... failed. Details:" and the cause on the lines below it; the one-line
    error must carry the cause (the first line alone ended at "Details:")."""
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    (b,) = resolve_inputs([str(broken)])
    assert "\n" not in b.error and "unreadable audio" in b.error
    reason = b.error.split("unreadable audio (", 1)[1]
    assert not reason.rstrip(")").endswith("Details:"), b.error
    assert "LibsndfileError" in reason and "Error opening" in reason, b.error
    assert "LHOTSE_AUDIO_LOADING_EXCEPTION_VERBOSE" not in b.error


def test_one_line_reason_joins_lines_shortens_class_names_and_caps_the_length():
    e = RuntimeError(
        "Reading audio from 'x.wav' failed. Details:\n"
        "Exception #0 (<class 'lhotse.audio.backend.LibsndfileBackend'>): "
        "<class 'soundfile.LibsndfileError'>:   bad   header\n"
        "Set LHOTSE_AUDIO_LOADING_EXCEPTION_VERBOSE=1 environment variable for full stack traces."
    )
    assert one_line_reason(e) == (
        "Reading audio from 'x.wav' failed. Details: Exception #0 (LibsndfileBackend): "
        "LibsndfileError: bad header"
    )
    capped = one_line_reason(RuntimeError("word " * 200), limit=50)
    assert len(capped) == 50 and capped.endswith("...")
    assert one_line_reason(ValueError("")) == "ValueError"


@pytest.mark.skipif(not shutil.which("cat"), reason="needs a shell with cat")
def test_wav_scp_with_pipes_and_segments(tmp_path):
    a = _wav(tmp_path / "a.wav", 2.0)
    b = _wav(tmp_path / "b.wav", 1.0, channels=2)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"recA {a}\nrecB cat {b} |\nrecC false |\nrecD {tmp_path / 'no.wav'}\nlonely\n")
    got = resolve_inputs([str(scp)])
    assert [i.id for i in got] == ["recA", "recB", "recC", "recD", "lonely"]
    assert got[0].error is None and got[1].error is None
    assert got[1].cut.recording.sources[0].type == "command"  # read the way lhotse reads pipes
    samples, sr = got[1].load_mono()  # two channels averaged
    ref = sf.read(b, dtype="float32")[0].mean(axis=1)
    assert sr == SR and np.allclose(samples, ref, atol=1e-4)
    assert f"{scp}:3" in got[2].error and "command failed" in got[2].error
    assert f"{scp}:4" in got[3].error and "no.wav" in got[3].error
    assert f"{scp}:5" in got[4].error
    seg = tmp_path / "segments"
    seg.write_text("u1 recA 0.5 1.5\nu2 recB 0.25 -1\nu3 recC 0 1\n")
    u1, u2, u3 = resolve_inputs(wav_scp=scp, segments=seg)
    assert (u1.id, round(u1.duration, 2), u2.id, round(u2.duration, 2)) == ("u1", 1.0, "u2", 0.75)
    x, _ = u1.load_mono()
    full = sf.read(a, dtype="float32")[0]
    assert np.allclose(x, full[int(0.5 * SR) : int(1.5 * SR)], atol=1e-4)
    assert u3.error and "recC" in u3.error
    seg.write_text("u1 recA zero 1\n")
    with pytest.raises(UserError, match="segments:1"):
        resolve_inputs(wav_scp=scp, segments=seg)


def test_lhotse_manifests(tmp_path):
    from lhotse import CutSet, Recording, RecordingSet

    recs = [
        Recording.from_file(_wav(tmp_path / f"{k}.wav", 0.5 + k / 10), recording_id=f"r{k}")
        for k in range(3)
    ]
    RecordingSet.from_recordings(recs).to_file(tmp_path / "recs.jsonl.gz")
    cuts = CutSet.from_cuts([r.to_cut().truncate(duration=0.25) for r in recs])
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    got = resolve_inputs([str(tmp_path / "recs.jsonl.gz"), str(tmp_path / "cuts.jsonl.gz")])
    assert len(got) == 6 and all(i.error is None for i in got)
    assert len({i.id for i in got}) == 6  # a cut id equal to a recording id is made unique
    assert [round(i.duration, 2) for i in got] == [0.5, 0.6, 0.7, 0.25, 0.25, 0.25]
    (tmp_path / "sups.jsonl").write_text(
        '{"id": "s", "recording_id": "r0", "start": 0, "duration": 1, "channel": 0}\n'
    )
    with pytest.raises(UserError, match="sups.jsonl"):
        resolve_inputs([str(tmp_path / "sups.jsonl")])


def test_arrays_and_tensors_are_downmixed_by_averaging():
    stereo = np.stack([np.ones(100), 3 * np.ones(100)], axis=1)  # (T, C)
    assert np.allclose(downmix(stereo), 2.0) and np.allclose(downmix(stereo.T), 2.0)
    inp = from_array(torch.from_numpy(stereo.T.copy()), SR, "x")
    assert inp.error is None and inp.duration == pytest.approx(100 / SR)
    assert inp.load_mono()[0].shape == (100,)
    assert "sample rate" in from_array(stereo, 0, "bad").error
    assert "empty" in from_array(np.zeros(0), SR, "e").error
    assert "shape" in from_array(np.zeros((2, 2, 2)), SR, "3d").error
    a, b = as_inputs([(np.zeros(800), SR), (np.zeros(400), SR)])
    assert (a.id, b.id) == ("array0", "array1")
    with pytest.raises(TypeError, match="input 0"):
        as_inputs([42])


def test_cli_dash_reads_stdin(tree, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(str(tree / "s2" / "deep" / "b.wav") + "\n"))
    (got,) = resolve_inputs(["-"])
    assert got.id == "b" and got.error is None
