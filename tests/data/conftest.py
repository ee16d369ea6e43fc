"""Small audio fixtures for the data tests (made by casnat.testing): tones and broken files."""

from __future__ import annotations

from pathlib import Path

import pytest
from lhotse import CutSet

from casnat.testing import make_tone_cuts, with_bad_cuts


@pytest.fixture
def tone_cuts(tmp_path: Path) -> CutSet:
    """Four 16 kHz noisy tones of 0.5-1.1 s with short texts."""
    return make_tone_cuts(tmp_path)


@pytest.fixture
def bad_cuts(tmp_path: Path, tone_cuts: CutSet) -> CutSet:
    """tone_cuts plus a corrupt wav, an empty wav and a missing file (in the middle)."""
    return with_bad_cuts(tmp_path, tone_cuts)
