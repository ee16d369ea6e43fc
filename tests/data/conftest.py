"""Small audio fixtures for the data tests: a few FSDD clips and synthetic wavs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from casnat.testing import make_cut


@pytest.fixture
def tone_cuts(tmp_path: Path) -> CutSet:
    """Four 16 kHz noisy tones of 0.5-1.1 s with short texts."""
    rng = np.random.default_rng(0)
    cuts = []
    for i, (dur, text) in enumerate([(0.5, "one"), (0.8, "two three"), (1.1, "four five six"),
                                     (0.6, "seven")]):
        t = np.arange(int(dur * 16000)) / 16000
        x = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 0.01 * rng.standard_normal(t.size)
        path = tmp_path / f"tone{i}.wav"
        sf.write(path, x.astype(np.float32), 16000)
        cuts.append(make_cut(path, text))
    return CutSet.from_cuts(cuts)


@pytest.fixture
def bad_cuts(tmp_path: Path, tone_cuts: CutSet) -> CutSet:
    """tone_cuts plus a corrupt wav, an empty wav and a missing file (in the middle)."""
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    missing = tmp_path / "missing.wav"
    good = list(tone_cuts)
    bad = [make_cut(p, "nine", sr=16000) for p in (corrupt, empty, missing)]
    return CutSet.from_cuts([good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3]])
