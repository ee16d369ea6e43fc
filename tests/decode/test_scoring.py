"""Tests for casnat.decode.scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from casnat.decode.scoring import score_wer, write_report


def test_counts_and_rates() -> None:
    refs = {"a": "the cat sat on the mat", "b": "hello world", "c": "good morning"}
    hyps = {"a": "the cat sit on mat", "b": "hello big world", "c": "good  morning "}
    rep = score_wer(refs, hyps)
    assert (rep.sub, rep.dels, rep.ins) == (1, 1, 1)
    assert rep.num_ref_words == 10
    assert rep.wer == pytest.approx(0.3)
    assert rep.num_utts == 3 and rep.sentence_errors == 2
    assert rep.missing == [] and rep.extra == []
    assert rep.num_ref_chars == len("the cat sat on the mat") + len("hello world") + len(
        "good morning")
    # c: "sat"->"sit" 1 sub, "the " deleted (4 chars); b: "big " inserted (4 chars)
    assert rep.char_sub + rep.char_dels + rep.char_ins == 9
    assert rep.cer == pytest.approx(9 / rep.num_ref_chars)
    by_id = {u.utt_id: u for u in rep.utterances}
    assert by_id["a"].ops == ["", "", "S", "", "D", ""]
    assert by_id["a"].hyp_aligned[4] == "*"
    assert by_id["b"].ops == ["", "I", ""] and by_id["b"].ref_aligned[1] == "*"
    assert by_id["c"].errors == 0 and by_id["c"].hyp == "good morning"


def test_missing_and_extra() -> None:
    rep = score_wer({"u1": "a b c", "u2": "d e"}, {"u1": "a b c", "zz": "x"})
    assert rep.missing == ["u2"] and rep.extra == ["zz"]
    assert rep.dels == 2 and rep.wer == pytest.approx(2 / 5)
    u2 = next(u for u in rep.utterances if u.utt_id == "u2")
    assert u2.missing and u2.ops == ["D", "D"]


def test_empty_reference_and_no_utterances() -> None:
    rep = score_wer({"u": ""}, {"u": "x y"})
    assert rep.ins == 2 and rep.num_ref_words == 0 and rep.wer == 0.0
    empty = score_wer({}, {"x": "y"})
    assert empty.num_utts == 0 and empty.extra == ["x"]


def test_write_report(tmp_path: Path) -> None:
    refs = {"u1": "one two three", "u2": "four five", "u3": "six"}
    hyps = {"u1": "one too three", "u3": "six"}
    rep = score_wer(refs, hyps)
    out = tmp_path / "score"
    write_report(rep, out)
    assert (out / "ref.txt").read_text() == "u1 one two three\nu2 four five\nu3 six\n"
    assert (out / "hyp.txt").read_text() == "u1 one too three\nu3 six\n"
    wer = (out / "wer.txt").read_text()
    assert wer.startswith("%WER 50.00 [ 3 / 6, 0 ins, 2 del, 1 sub ]")
    errors = (out / "errors.txt").read_text()
    assert "Missing hypotheses (1)" in errors
    # worst first: u2 (2 errors), u1 (1), u3 (0)
    assert errors.index("u2  #err=2") < errors.index("u1  #err=1") < errors.index("u3  #err=0")
    assert "REF: one two three\nHYP: one too three\nOPS:     S" in errors
    # atomic writes leave no temp files; rewriting replaces content
    write_report(score_wer(refs, refs), out)
    assert sorted(p.name for p in out.iterdir()) == ["errors.txt", "hyp.txt", "ref.txt",
                                                     "wer.txt"]
    assert (out / "wer.txt").read_text().startswith("%WER 0.00")
