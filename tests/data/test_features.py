from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

from casnat.config import FeatureConfig
from casnat.data.features import KnfFbank, compute_features, knf_available, make_extractor


def test_extractors_agree() -> None:
    x = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    a = make_extractor(FeatureConfig(), "lhotse").extract(x, 16000)
    assert a.shape == (100, 80)
    if not knf_available():
        pytest.skip("kaldi-native-fbank not installed")
    b = make_extractor(FeatureConfig(), "knf").extract(x, 16000)
    assert b.shape == a.shape
    assert np.abs(a - b).mean() < 0.05


@pytest.mark.skipif(not knf_available(), reason="kaldi-native-fbank not installed")
def test_knf_registered_with_lhotse(tone_cuts: CutSet, tmp_path: Path) -> None:
    from lhotse import LilcomChunkyWriter
    from lhotse.features.base import get_extractor_type

    assert get_extractor_type("knf-fbank") is KnfFbank
    cut = tone_cuts[0]
    with LilcomChunkyWriter(tmp_path / "f") as w:
        cut = cut.compute_and_store_features(KnfFbank(), w)
    assert cut.load_features().shape == (cut.num_frames, 80)


def test_compute_features_speed_perturb(tone_cuts: CutSet, tmp_path: Path) -> None:
    tone_cuts.to_file(tmp_path / "cuts_x.jsonl.gz")
    out = compute_features(tmp_path / "cuts_x.jsonl.gz", tmp_path / "fbank",
                           speed_perturb=(0.9, 1.0, 1.1))
    cuts = {c.id: c for c in CutSet.from_file(out)}
    assert len(cuts) == 12
    orig = tone_cuts[2]
    assert cuts[orig.id].duration == pytest.approx(orig.duration)
    assert cuts[f"{orig.id}_sp0.9"].duration == pytest.approx(orig.duration / 0.9, abs=1e-3)
    assert cuts[f"{orig.id}_sp1.1"].duration == pytest.approx(orig.duration / 1.1, abs=1e-3)
    for c in cuts.values():
        f = c.load_features()
        assert f.shape == (c.num_frames, 80) and abs(f.shape[0] - c.duration * 100) <= 1


def test_compute_features_skips_bad_audio(bad_cuts: CutSet, tmp_path: Path, caplog) -> None:
    bad_cuts.to_file(tmp_path / "cuts_bad.jsonl.gz")
    out = compute_features(tmp_path / "cuts_bad.jsonl.gz", tmp_path / "fbank", None, num_jobs=1)
    cuts = CutSet.from_file(out)
    assert sorted(c.id for c in cuts) == ["tone0", "tone1", "tone2", "tone3"]
    skipped = (tmp_path / "fbank" / "cuts_bad.skipped.txt").read_text().splitlines()
    assert len(skipped) == 3
    for name in ("corrupt.wav", "empty.wav", "missing.wav"):
        assert any(name in line for line in skipped)
        assert name in caplog.text


def test_compute_features_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl.gz"):
        compute_features(tmp_path / "nope.jsonl.gz", tmp_path)


def test_works_without_knf(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "kaldi_native_fbank", None)  # import now raises
    assert not knf_available()
    ext = make_extractor(FeatureConfig())  # default needs no knf
    assert ext.extract(np.zeros(1600, dtype=np.float32), 16000).shape == (10, 80)
    with pytest.raises(ImportError):
        make_extractor(FeatureConfig(), "knf")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_an_error_naming_the_file(tmp_path: Path, bad: float) -> None:
    """NaN/Inf samples would give NaN features and a silent empty transcript (or a NaN loss in
    training): every path (compute_features, cut_features, transcribe) must refuse the file."""
    import soundfile as sf

    from casnat.data.features import cut_features, load_audio_checked
    from casnat.testing import make_cut

    x = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    x[4000] = bad
    path = tmp_path / "nonfinite.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    cut = make_cut(path, "one")
    with pytest.raises(ValueError, match=r"non-finite samples .*nonfinite\.wav"):
        load_audio_checked(cut)
    with pytest.raises(ValueError, match=r"non-finite samples .*nonfinite\.wav"):
        cut_features(cut, make_extractor(FeatureConfig()), 16000)  # resampled first
