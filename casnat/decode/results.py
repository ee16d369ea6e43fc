"""Result records shared by every search in :mod:`casnat.decode`.

A search returns :class:`Hypothesis` objects holding token ids, a score and, where the search
knows it, the encoder-frame span and a confidence for every token. Text is filled later by the
caller (the tokenizer lives in :mod:`casnat.data`, which the search code does not import), so a
hypothesis is created without text and copied with :meth:`Hypothesis.with_text`.

Frames are *encoder* frames. Their duration is the model's, not a constant:
:func:`encoder_frame_seconds` = feature frame shift x the encoder's ``subsampling_factor`` (10 ms
x 4 = 40 ms for the Conformer). A token spanning frames ``start..end`` (inclusive) covers the
time interval ``[start * f, (end + 1) * f)`` seconds; :meth:`Hypothesis.token_times` is the one
place that converts frames to seconds.

>>> hyp = Hypothesis(tokens=[5, 7], score=-1.5, token_starts=[3, 10], token_ends=[4, 10],
...                  confidences=[0.9, 0.8])
>>> hyp.token_times(encoder_frame_seconds(0.01, 4))
[(0.12, 0.2), (0.4, 0.44)]
>>> hyp.with_text("hi there").text
'hi there'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def encoder_frame_seconds(frame_shift: float, subsampling_factor: int) -> float:
    """Seconds per encoder frame: the feature frame shift (``features.frame_shift``) times the
    encoder's ``subsampling_factor`` (feature frames per encoder frame).

    >>> encoder_frame_seconds(0.01, 4)
    0.04
    """
    return frame_shift * subsampling_factor


def frames_to_seconds(frame: int, frame_seconds: float) -> float:
    """Time in seconds of the start of encoder frame ``frame``, each ``frame_seconds`` long.

    Rounded to microseconds so that ``3 * 0.04`` prints as ``0.12`` in result files.

    >>> frames_to_seconds(25, 0.04)
    1.0
    """
    return round(frame * frame_seconds, 6)


@dataclass(frozen=True)
class Hypothesis:
    """One decoding result for one utterance.

    Attributes:
        tokens: output token ids, without blank, sos or eos.
        score: search score (log domain; higher is better). Its meaning depends on the search:
            CTC greedy = log-prob of the best frame path, CTC prefix beam = log-prob of the
            labelling (all paths), AT beam = sum of token log-probs incl. eos, optionally length
            normalised.
        token_starts: first encoder frame of each token (``len(tokens)`` entries), or empty when
            the search has no frame timing (AT decoding).
        token_ends: last encoder frame of each token (inclusive), or empty like ``token_starts``.
        confidences: per-token confidence in ``[0, 1]`` (see each search for its definition),
            or empty when the search does not compute one.
        text: detokenized text, filled by the caller via :meth:`with_text` (empty until then).
    """

    tokens: list[int]
    score: float
    token_starts: list[int] = field(default_factory=list)
    token_ends: list[int] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    text: str = ""

    def __post_init__(self) -> None:
        n = len(self.tokens)
        for name in ("token_starts", "token_ends", "confidences"):
            got = len(getattr(self, name))
            if got not in (0, n):
                raise ValueError(f"Hypothesis.{name} has {got} entries, expected 0 or {n} "
                                 f"(one per token)")

    def with_text(self, text: str) -> Hypothesis:
        """Copy of this hypothesis with ``text`` set (the record itself is immutable)."""
        return dataclasses.replace(self, text=text)

    def token_times(self, frame_seconds: float) -> list[tuple[float, float]]:
        """``(start, end)`` seconds of each token; end is exclusive (end of its last frame).

        ``frame_seconds``: seconds per encoder frame (:func:`encoder_frame_seconds`). Empty when
        the hypothesis has no frame timing.
        """
        return [
            (frames_to_seconds(s, frame_seconds), frames_to_seconds(e + 1, frame_seconds))
            for s, e in zip(self.token_starts, self.token_ends, strict=True)
        ]
