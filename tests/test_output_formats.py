"""Transcript writers: the JSONL schema, CTM fields, subtitle timestamps and cue limits, unique
ids, combined and per-input files written atomically."""

from __future__ import annotations

import json
import re

import pytest

from casnat.output_formats import (
    FORMATS,
    CueOptions,
    TranscriptRecord,
    format_ctm,
    format_srt,
    format_vtt,
    subtitle_cues,
    unique_ids,
    write_outputs,
)
from casnat.words import Word


def _words(n: int, step: float = 0.5, dur: float = 0.3, word: str = "seven") -> list[Word]:
    return [Word(f"{word}{i}", round(i * step, 3), round(i * step + dur, 3), 0.5 + i / (2 * n))
            for i in range(n)]


def _records() -> list[TranscriptRecord]:
    w = _words(40)
    return [
        TranscriptRecord("s1/a", "d/s1/a.wav", 20.5, " ".join(x.word for x in w), w),
        TranscriptRecord("b", "d/b.wav", None, "", [], error="d/b.wav: unreadable audio"),
    ]


def test_jsonl_has_exactly_the_schema(tmp_path):
    write_outputs(_records(), tmp_path, ["jsonl"])
    rows = [json.loads(ln) for ln in (tmp_path / "transcripts.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert list(row) == ["id", "source", "duration", "text", "words", "error"]
    assert rows[0]["words"][1] == {"word": "seven1", "start": 0.5, "end": 0.8,
                                   "confidence": pytest.approx(0.5125)}
    assert rows[1]["error"].endswith("unreadable audio") and rows[1]["words"] == []
    assert rows[0]["error"] is None


def test_ctm_lines():
    lines = format_ctm(_records()).splitlines()
    assert len(lines) == 40  # the failed input has no words
    assert lines[3] == "s1/a 1 1.500 0.300 seven3 0.5375"
    untimed = TranscriptRecord("u", "u.wav", 1.0, "x", [Word("x", None, None, None)])
    assert format_ctm([untimed]) == ""


def test_srt_and_vtt_timestamps():
    r = TranscriptRecord("t", "t.wav", 4000.0, "a b",
                         [Word("a", 3725.042, 3725.5, 1.0), Word("b", 3726.0, 3727.25, 1.0)])
    assert "01:02:05,042 --> 01:02:07,250\na b" in format_srt(r)
    vtt = format_vtt(r)
    assert vtt.startswith("WEBVTT\n") and "01:02:05.042 --> 01:02:07.250\na b" in vtt


def test_cues_respect_duration_width_and_gaps():
    opts = CueOptions(max_cue_s=7.0, max_chars=42, max_lines=2, max_gap_s=1.5)
    words = _words(60, step=0.4, dur=0.3, word="eleven")  # ~8-char words, 2.5 per second
    words.append(Word("late", 40.0, 40.5, 1.0))
    cues = subtitle_cues(words, opts)
    assert sum(len(" ".join(ls).split()) for _, _, ls in cues) == 61  # every word once
    for s, e, lines in cues:
        assert e - s <= 7.0 + 1e-9
        assert 1 <= len(lines) <= 2 and all(len(ln) <= 42 for ln in lines)
    assert cues[-1][2] == ["late"]  # after a 16 s silence
    assert cues[0][0] == 0.0 and cues[1][0] > cues[0][1] - 1e-9


def test_srt_numbering_continues_in_the_combined_file(tmp_path):
    recs = [TranscriptRecord(i, f"{i}.wav", 30.0, "", _words(30)) for i in ("x", "y")]
    written = write_outputs(recs, tmp_path, ["srt", "vtt"])
    names = sorted(p.name for p in written)
    assert names == ["transcripts.srt", "transcripts.vtt", "x.srt", "x.vtt", "y.srt", "y.vtt"]
    combined = (tmp_path / "transcripts.srt").read_text()
    numbers = [int(b.split("\n")[0]) for b in combined.strip().split("\n\n")]
    assert numbers == list(range(1, len(numbers) + 1))
    one = (tmp_path / "x.srt").read_text().strip().split("\n\n")
    assert len(numbers) == 2 * len(one)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}",
                        (tmp_path / "x.vtt").read_text().splitlines()[2])


def test_every_format_writes_and_leaves_no_temp_files(tmp_path):
    write_outputs(_records(), tmp_path, list(FORMATS))
    assert sorted(p.name for p in tmp_path.glob(".*")) == []
    text = (tmp_path / "transcripts.text").read_text().splitlines()
    assert text[0].startswith("s1/a seven0 seven1") and text[1] == "b"
    tsv = (tmp_path / "transcripts.tsv").read_text().splitlines()
    assert tsv[0] == "id\tsource\tduration\ttext\terror"
    assert tsv[2].split("\t") == ["b", "d/b.wav", "", "", "d/b.wav: unreadable audio"]
    assert (tmp_path / "s1" / "a.srt").is_file()  # a per-input subtitle under the id's folder


def test_unknown_format_and_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="docx"):
        write_outputs(_records(), tmp_path, ["docx"])
    r = _records()[0]
    with pytest.raises(ValueError, match="duplicate"):
        write_outputs([r, r], tmp_path, ["text"])


def test_unique_ids():
    assert unique_ids(["a/x.wav", "b/y.flac"]) == ["x", "y"]
    assert unique_ids(["c/a/x.wav", "c/b/x.wav", "c/z.wav"]) == ["a/x", "b/x", "z"]
    assert unique_ids(["a/x.wav", "a/x.flac"]) == ["x.wav", "x.flac"]
    assert unique_ids(["a/x.wav", "a/x.wav"]) == ["x-1", "x-2"]  # same file twice
