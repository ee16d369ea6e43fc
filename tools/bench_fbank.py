"""Benchmark lhotse's torch Fbank against kaldi-native-fbank on the same audio.

Prints seconds of compute per hour of audio for each extractor and their ratio; the faster
one is casnat's default (casnat.data.features.make_extractor). One thread, so the numbers
are per core and comparable across machines with other jobs running.

    python tools/bench_fbank.py [--wav-dir ../shared/data/fsdd/recordings] [--minutes 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from casnat.config import FeatureConfig
from casnat.data.features import make_extractor, resample
from casnat.testing import fsdd_dir


def load_clips(wav_dir: Path | None, minutes: float, sr: int = 16000) -> list[np.ndarray]:
    """About ``minutes`` of 16 kHz audio: real clips when ``wav_dir`` has wavs, else noise."""
    clips: list[np.ndarray] = []
    total, target = 0, int(minutes * 60 * sr)
    files = sorted(wav_dir.glob("*.wav")) if wav_dir and wav_dir.is_dir() else []
    for f in files:
        x, fsr = sf.read(f, dtype="float32")
        x = resample(x, fsr, sr)  # lhotse's resampler, as casnat's data pipeline
        clips.append(x)
        total += x.size
        if total >= target:
            return clips
    rng = np.random.default_rng(0)
    while total < target:  # fall back to (or top up with) 3 s noise clips
        clips.append((0.1 * rng.standard_normal(3 * sr)).astype(np.float32))
        total += 3 * sr
    return clips


def time_extractor(backend: str, clips: list[np.ndarray], repeats: int) -> float:
    ext = make_extractor(FeatureConfig(), backend)
    ext.extract(clips[0], 16000)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x in clips:
            ext.extract(x, 16000)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fsdd = fsdd_dir()
    p.add_argument(
        "--wav-dir",
        type=Path,
        default=fsdd / "recordings" if fsdd else None,
        required=fsdd is None,
        help="wav files to time (default: FSDD in $CASNAT_SHARED_DATA or ../shared/data)",
    )
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    clips = load_clips(args.wav_dir, args.minutes)
    hours = sum(x.size for x in clips) / 16000 / 3600
    rows = {b: time_extractor(b, clips, args.repeats) / hours for b in ("lhotse", "knf")}
    print(f"audio: {len(clips)} clips, {hours * 60:.2f} min, 1 thread, best of {args.repeats}")
    print(f"{'extractor':<22}{'s / hour of audio':>18}{'x real time':>14}")
    for name, label in (("lhotse", "lhotse Fbank (torch)"), ("knf", "kaldi-native-fbank")):
        print(f"{label:<22}{rows[name]:>18.2f}{3600 / rows[name]:>14.0f}")
    fast = min(rows, key=rows.get)
    slow = max(rows, key=rows.get)
    print(f"faster: {fast} by {rows[slow] / rows[fast]:.2f}x (lhotse/knf = "
          f"{rows['lhotse'] / rows['knf']:.2f})")


if __name__ == "__main__":
    main()
