"""Input level at inference: measure the speech level of a recording and bring it to a target.

A model trained on one corpus has seen speech at that corpus's level; a recording 20 dB quieter
is, to log-mel features, a different input (issue 17: 1.3% -> 35% WER). :func:`normalize_level`
removes that difference before features are computed.

Level is measured over speech frames only, so leading/trailing silence and pauses do not
lower it: the cut is split into 30 ms frames; a frame counts as speech when its power is
within ``dynamic_range_db`` (30 dB) of the loudest frame and above -90 dBFS (digital
silence). The level is ``10 log10`` of the mean power of those frames, in dBFS with full scale
= 1.0 (a full-scale sine reads -3 dBFS). The gain is limited to ``max_gain_db`` (50 dB) either
way, so a near-silent file is not blown up into noise; 50 dB still brings FSDD's quietest
speaker (-44 dBFS) recorded 30 dB quieter up to the -25 dBFS default target. If the gained
signal would clip, it is scaled down so its peak is 1.0 (the target level is then not reached,
but no sample clips).

>>> x = 0.01 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
>>> round(speech_level_dbfs(x, 16000), 1)
-43.0
>>> round(speech_level_dbfs(normalize_level(x, 16000, target_dbfs=-23.0), 16000), 1)
-23.0
"""

from __future__ import annotations

import numpy as np

FRAME_SECONDS = 0.03
SILENCE_DBFS = -90.0
#: Default target of ``features.level_dbfs`` (and of ``casnat bench-robust --level-dbfs on``):
#: the median speech level of FSDD's training cuts, so normalized input sits where most of the
#: training data already was. Measured with :func:`speech_level_dbfs` on every 7th cut of
#: egs/fsdd data/manifests/cuts_train.jsonl.gz (286 cuts, 16 kHz): percentiles 5/25/50/75/95 =
#: -43.9/-36.0/-24.8/-22.0/-18.7 dBFS; per speaker the medians run from -41 (theo) to -20.5
#: (jackson), so the corpus itself spans 20 dB and the test split matches (median -25.0).
DEFAULT_LEVEL_DBFS = -25.0


def speech_level_dbfs(
    samples: np.ndarray, sampling_rate: int, dynamic_range_db: float = 30.0
) -> float:
    """Speech level of ``samples`` (S,) in dBFS over its speech frames (see the module
    docstring); ``-inf`` for digital silence."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    hop = max(1, int(round(FRAME_SECONDS * sampling_rate)))
    n = x.size // hop
    if n == 0:
        power = np.array([np.mean(x**2)]) if x.size else np.zeros(1)
    else:
        power = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1)
    peak = float(power.max())
    if peak <= 10.0 ** (SILENCE_DBFS / 10.0):
        return float("-inf")
    floor = max(peak * 10.0 ** (-dynamic_range_db / 10.0), 10.0 ** (SILENCE_DBFS / 10.0))
    return float(10.0 * np.log10(np.mean(power[power >= floor])))


def normalize_level(
    samples: np.ndarray, sampling_rate: int, target_dbfs: float = DEFAULT_LEVEL_DBFS,
    max_gain_db: float = 50.0,
) -> np.ndarray:
    """``samples`` (S,) scaled so that :func:`speech_level_dbfs` is ``target_dbfs``; float32.

    The gain is clipped to ``[-max_gain_db, max_gain_db]`` and lowered further when the peak
    would pass 1.0. Digital silence is returned unchanged.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    level = speech_level_dbfs(x, sampling_rate)
    if not np.isfinite(level):
        return x.astype(np.float32)
    gain_db = float(np.clip(target_dbfs - level, -max_gain_db, max_gain_db))
    y = x * 10.0 ** (gain_db / 20.0)
    peak = float(np.max(np.abs(y)))
    if peak > 1.0:
        y /= peak
    return y.astype(np.float32)
