"""Pieces -> words for the three tokenizer kinds, word times from encoder frames, and the
minimum-piece confidence."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from casnat.words import TimedPiece, Word, pieces_to_words, token_pieces, words_text


def _p(piece: str, start: float, conf: float = 0.9) -> TimedPiece:
    return TimedPiece(piece, start, round(start + 0.04, 6), conf)


def test_sentencepiece_pieces():
    ps = [_p("▁se", 0.0), _p("ven", 0.04, 0.3), _p("▁", 0.4), _p("8", 0.44), _p("▁two", 0.8)]
    words = pieces_to_words(ps)
    assert words == [
        Word("seven", 0.0, 0.08, 0.3),  # min confidence of its pieces
        Word("8", 0.44, 0.48, 0.9),  # a lone ▁ opens a word but lends it no time
        Word("two", 0.8, 0.84, 0.9),
    ]


def test_char_tokenizer_space_unit():
    ps = [_p(c, i * 0.04) for i, c in enumerate("one▁▁two")]
    words = pieces_to_words(ps)
    assert [w.word for w in words] == ["one", "two"]
    assert words[1].start == pytest.approx(5 * 0.04) and words[0].end == pytest.approx(0.12)


def test_word_tokenizer_every_token_is_a_word():
    ps = [_p("three", 0.0), _p("one", 0.5)]
    assert [w.word for w in pieces_to_words(ps, word_tokens=True)] == ["three", "one"]
    assert [w.word for w in pieces_to_words(ps)] == ["threeone"]  # without the flag: one word


def test_missing_timing_and_confidence():
    ps = [TimedPiece("▁a", None, None, None), TimedPiece("b", None, None, None)]
    assert pieces_to_words(ps) == [Word("ab", None, None, None)]
    assert Word("ab", None, None, None).to_dict() == {"word": "ab", "start": None, "end": None,
                                                     "confidence": None}


def test_token_pieces_use_frames_and_offset():
    tok = SimpleNamespace(id_to_piece=lambda i: ["<blank>", "▁one", "▁two"][i])
    ps = token_pieces(tok, [1, 2], [2, 10], [3, 12], [0.8, 0.7], frame_seconds=0.04, offset=60.0)
    assert ps[0] == TimedPiece("▁one", 60.08, 60.16, 0.8)
    assert ps[1] == TimedPiece("▁two", 60.4, 60.52, 0.7)
    untimed = token_pieces(tok, [1], [], [], [], frame_seconds=0.04)
    assert untimed == [TimedPiece("▁one", None, None, None)]
    assert words_text(pieces_to_words(ps)) == "one two"
