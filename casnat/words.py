"""Tokens with timings -> words with timings and a confidence.

casnat's tokenizers mark word boundaries in one of three ways (:mod:`casnat.data.tokenizer`):

* sentencepiece (``unigram``, ``bpe``): a piece that starts a word begins with ``▁``
  (``▁thir`` ``teen``); a lone ``▁`` piece only says "the next piece starts a word";
* ``char``: ``▁`` is a unit of its own, emitted between words (``o n e ▁ t w o``);
* ``word``: every token is a word.

:func:`pieces_to_words` handles all three with one rule: ``▁`` at the start of a piece opens a
new word, and the ``word`` kind opens one at every token. A lone ``▁`` carries no letters, so
its timing is not part of any word (for the char tokenizer it sits in the gap between words).

A word's **confidence is the minimum** of its pieces' confidences: a word is wrong as soon as one
of its pieces is, so the weakest piece bounds it; a mean would let three confident pieces hide
one doubtful one, which is the case a user filtering by confidence wants to see.

Times are seconds. An encoder frame is ``frame_shift x subsampling_factor`` seconds
(0.01 x 4 = 0.04 s); a token spanning frames ``s..e`` covers ``[s * 0.04, (e + 1) * 0.04)``.

>>> ps = [TimedPiece("▁thir", 0.12, 0.2, 0.9), TimedPiece("teen", 0.2, 0.28, 0.6),
...       TimedPiece("▁two", 0.6, 0.68, 0.8)]
>>> [(w.word, w.start, w.end, w.confidence) for w in pieces_to_words(ps)]
[('thirteen', 0.12, 0.28, 0.6), ('two', 0.6, 0.68, 0.8)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WORD_START = "▁"


@dataclass(frozen=True)
class TimedPiece:
    """One output token in file time.

    ``start``/``end`` are seconds (end exclusive) or None when the search gave no timing;
    ``confidence`` is in ``[0, 1]`` or None when the search gave none.
    """

    piece: str
    start: float | None
    end: float | None
    confidence: float | None


@dataclass(frozen=True)
class Word:
    """One word in file time; ``start``/``end``/``confidence`` are None when unknown."""

    word: str
    start: float | None
    end: float | None
    confidence: float | None

    def to_dict(self) -> dict:
        """The JSON form written to ``transcripts.jsonl``: ``{word, start, end, confidence}``."""
        return {
            "word": self.word,
            "start": _round(self.start),
            "end": _round(self.end),
            "confidence": _round(self.confidence, 4),
        }


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _valid(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def _word_of(pieces: list[TimedPiece]) -> Word:
    text = "".join(p.piece for p in pieces).replace(WORD_START, "")
    starts = [p.start for p in pieces if _valid(p.start)]
    ends = [p.end for p in pieces if _valid(p.end)]
    confs = [p.confidence for p in pieces if _valid(p.confidence)]
    return Word(
        word=text,
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        confidence=min(confs) if confs else None,
    )


def pieces_to_words(pieces: Sequence[TimedPiece], word_tokens: bool = False) -> list[Word]:
    """Group ``pieces`` (in time order) into words.

    Args:
        pieces: tokens of one stretch of speech, in order.
        word_tokens: True for a ``word`` tokenizer (every token is a word).

    Returns:
        The words, each with the span from its first to its last piece and the minimum
        confidence of its pieces. A piece that does not start with ``▁`` continues the current
        word (or starts the first one). Pieces that are only ``▁`` are dropped.

    >>> chars = [TimedPiece(c, i * 0.04, (i + 1) * 0.04, 0.9) for i, c in enumerate("ab▁c")]
    >>> [w.word for w in pieces_to_words(chars)]
    ['ab', 'c']
    """
    words: list[Word] = []
    current: list[TimedPiece] = []
    for p in pieces:
        opens = word_tokens or p.piece.startswith(WORD_START)
        if opens and current:
            words.append(_word_of(current))
            current = []
        if p.piece.replace(WORD_START, "") == "":
            continue  # a bare boundary marker: no letters, no timing
        current.append(p)
    if current:
        words.append(_word_of(current))
    return words


def token_pieces(
    tokenizer,
    tokens: Sequence[int],
    token_starts: Sequence[int],
    token_ends: Sequence[int],
    confidences: Sequence[float],
    frame_seconds: float,
    offset: float = 0.0,
) -> list[TimedPiece]:
    """A hypothesis's tokens as :class:`TimedPiece` in file time.

    ``token_starts``/``token_ends`` are encoder frames (inclusive; empty or -1 when unknown),
    ``frame_seconds`` = feature frame shift x encoder subsampling factor, and ``offset`` the time
    of the hypothesis's first encoder frame in the file (its segment's start).

    >>> class Tok:
    ...     def id_to_piece(self, i): return ["<blank>", "▁a", "b"][i]
    >>> token_pieces(Tok(), [1, 2], [0, 3], [1, 3], [0.5, 0.7], 0.04, offset=10.0)[1]
    TimedPiece(piece='b', start=10.12, end=10.16, confidence=0.7)
    """
    out = []
    for i, tok in enumerate(tokens):
        s = token_starts[i] if i < len(token_starts) else -1
        e = token_ends[i] if i < len(token_ends) else -1
        c = confidences[i] if i < len(confidences) else None
        out.append(
            TimedPiece(
                piece=tokenizer.id_to_piece(int(tok)),
                start=round(offset + s * frame_seconds, 6) if s >= 0 else None,
                end=round(offset + (e + 1) * frame_seconds, 6) if e >= 0 else None,
                confidence=None if c is None or math.isnan(c) else float(c),
            )
        )
    return out


def words_text(words: Sequence[Word]) -> str:
    """The transcript of ``words``: the words joined by single spaces."""
    return " ".join(w.word for w in words)


__all__ = ["TimedPiece", "Word", "pieces_to_words", "token_pieces", "words_text"]
