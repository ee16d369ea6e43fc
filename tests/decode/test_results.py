"""Tests for casnat.decode.results."""

from __future__ import annotations

import dataclasses

import pytest

from casnat.decode.results import Hypothesis, encoder_frame_seconds, frames_to_seconds

FS = encoder_frame_seconds(0.01, 4)  # the Conformer's 10 ms x 4


def test_frame_seconds() -> None:
    assert FS == pytest.approx(0.04)
    assert encoder_frame_seconds(0.01, 6) == pytest.approx(0.06)
    assert frames_to_seconds(0, FS) == 0.0
    assert frames_to_seconds(3, FS) == 0.12
    assert frames_to_seconds(10, frame_seconds=0.06) == 0.6


def test_token_times_and_text() -> None:
    hyp = Hypothesis(tokens=[4, 9], score=-0.5, token_starts=[2, 5], token_ends=[3, 5],
                     confidences=[0.5, 0.9])
    assert hyp.token_times(FS) == [(0.08, 0.16), (0.2, 0.24)]
    assert hyp.token_times(encoder_frame_seconds(0.01, 3)) == [(0.06, 0.12), (0.15, 0.18)]
    named = hyp.with_text("ab")
    assert named.text == "ab" and hyp.text == ""
    assert named.tokens == hyp.tokens
    with pytest.raises(dataclasses.FrozenInstanceError):
        hyp.score = 0.0  # type: ignore[misc]


def test_timing_optional_and_checked() -> None:
    hyp = Hypothesis(tokens=[1, 2, 3], score=0.0)
    assert hyp.token_times(FS) == []
    with pytest.raises(ValueError, match="token_starts"):
        Hypothesis(tokens=[1, 2], score=0.0, token_starts=[0], token_ends=[0])
