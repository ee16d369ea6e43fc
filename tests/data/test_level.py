"""features.level_dbfs: level normalization on every path where waveforms become features.

casnat.data.level itself (target reached, silence, peak cap) is tested in test_augment.py; here:
the config field, and that features computed with it do not depend on the input gain, for
waveforms in memory, cuts decoded on the fly and features stored by ``compute_features``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

from casnat.config import ConfigError, ExperimentConfig, FeatureConfig, from_dict
from casnat.data.features import (
    LevelNormalized,
    compute_features,
    cut_features,
    make_extractor,
    waveform_features,
)
from casnat.data.level import DEFAULT_LEVEL_DBFS, normalize_level, speech_level_dbfs
from casnat.testing import FSDD_RECORDINGS as FSDD
from casnat.testing import make_cut

needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")
LEVEL = FeatureConfig(level_dbfs=DEFAULT_LEVEL_DBFS)


def _clip(name: str = "4_theo_2") -> tuple[np.ndarray, int]:
    import soundfile as sf

    x, sr = sf.read(FSDD / f"{name}.wav", dtype="float32")
    return x, sr


def test_level_dbfs_config_defaults_off_loads_and_rejects_nonsense() -> None:
    assert FeatureConfig().level_dbfs is None
    assert not isinstance(make_extractor(FeatureConfig()), LevelNormalized)
    cfg = from_dict(ExperimentConfig, {"features": {"level_dbfs": -26}})
    assert cfg.features.level_dbfs == -26
    assert isinstance(make_extractor(cfg.features), LevelNormalized)
    for bad in (3.0, -120.0, "loud"):
        with pytest.raises(ConfigError, match="level_dbfs"):
            FeatureConfig(level_dbfs=bad)


@needs_fsdd
@pytest.mark.parametrize("gain", [0.05, 0.1, 3.0])  # 4_theo_2 is at -45 dBFS
def test_waveform_features_are_invariant_to_input_gain(gain: float) -> None:
    x, sr = _clip()
    ext = make_extractor(LEVEL)
    ref = waveform_features(x, sr, ext, LEVEL)
    scaled = waveform_features(np.clip(x * gain, -1, 1), sr, ext, LEVEL)
    assert ref.shape == scaled.shape and ref.shape[1] == 80
    np.testing.assert_allclose(scaled, ref, atol=2e-3)
    # without the option the same gain moves the log-mel by up to 2 ln(gain) (less in bins
    # that sit at the fbank's energy floor)
    plain = make_extractor(FeatureConfig())
    off = waveform_features(x * gain, sr, plain, FeatureConfig())
    shift = float(np.median(off - waveform_features(x, sr, plain, FeatureConfig())))
    assert np.sign(shift) == np.sign(gain - 1) and 0.6 < shift / (2 * np.log(gain)) <= 1.01


@needs_fsdd
def test_waveform_features_reach_the_target_level_once_with_a_plain_extractor() -> None:
    x, sr = _clip()
    # a plain extractor with a config that asks for a level: wrapped once, same result
    plain = make_extractor(FeatureConfig())
    np.testing.assert_array_equal(
        waveform_features(x, sr, plain, LEVEL),
        waveform_features(x, sr, make_extractor(LEVEL), LEVEL),
    )
    # and that result is the fbank of the waveform at the target level
    from casnat.data.features import resample

    y = normalize_level(resample(x, sr, 16000), 16000, DEFAULT_LEVEL_DBFS)
    assert abs(speech_level_dbfs(y, 16000) - DEFAULT_LEVEL_DBFS) < 0.01
    np.testing.assert_allclose(
        waveform_features(x, sr, plain, LEVEL), plain.extract(y, 16000), atol=1e-5
    )


def test_silence_is_left_alone_and_features_stay_finite() -> None:
    ext = make_extractor(LEVEL)
    for x in (np.zeros(8000, np.float32), np.full(8000, 1e-7, np.float32)):
        feats = waveform_features(x, 16000, ext, LEVEL)
        assert np.isfinite(feats).all()
        np.testing.assert_array_equal(feats, make_extractor(FeatureConfig()).extract(x, 16000))


@needs_fsdd
def test_cut_features_and_stored_features_are_invariant_to_gain(tmp_path: Path) -> None:
    cut = make_cut(FSDD / "7_yweweler_1.wav", "seven")
    quiet = cut.perturb_volume(0.05)  # -26 dB, a different cut id
    ext = make_extractor(LEVEL)
    a = cut_features(cut, ext, 16000)
    b = cut_features(quiet, ext, 16000)
    np.testing.assert_allclose(a, b, atol=2e-3)
    assert np.abs(cut_features(quiet, make_extractor(), 16000) - a).max() > 1.0

    manifest = tmp_path / "cuts_two.jsonl.gz"
    CutSet.from_cuts([cut, quiet]).to_file(manifest)
    out = compute_features(manifest, tmp_path / "fbank", speed_perturb=None, cfg=LEVEL)
    stored = [c.load_features() for c in CutSet.from_file(out)]
    assert stored[0].shape == a.shape
    np.testing.assert_allclose(stored[0], stored[1], atol=0.05)  # lilcom is lossy
    np.testing.assert_allclose(stored[0], a, atol=0.05)
    plain = compute_features(
        manifest, tmp_path / "plain", speed_perturb=None, cfg=replace(LEVEL, level_dbfs=None)
    )
    p = [c.load_features() for c in CutSet.from_file(plain)]
    assert np.abs(p[0] - p[1]).max() > 1.0
