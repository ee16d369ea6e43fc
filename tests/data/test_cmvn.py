from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from casnat.config import FeatureConfig
from casnat.data.cmvn import compute_global_cmvn
from casnat.data.features import compute_features, make_extractor


def test_cmvn_matches_numpy(tone_cuts: CutSet, tmp_path: Path) -> None:
    tone_cuts.to_file(tmp_path / "c.jsonl.gz")
    cuts = CutSet.from_file(compute_features(tmp_path / "c.jsonl.gz", tmp_path / "f", None))
    mean, std = compute_global_cmvn(cuts)
    allf = np.concatenate([c.load_features() for c in cuts])
    assert mean.shape == std.shape == (80,) and mean.dtype == torch.float32
    np.testing.assert_allclose(mean.numpy(), allf.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std.numpy(), allf.std(0), rtol=1e-3, atol=1e-3)


def test_cmvn_on_the_fly_and_bad_audio(bad_cuts: CutSet) -> None:
    mean, std = compute_global_cmvn(bad_cuts)  # no stored features: computed from audio
    ext = make_extractor(FeatureConfig())
    good = [c for c in bad_cuts if c.id.startswith("tone")]
    allf = np.concatenate([ext.extract(c.load_audio()[0], 16000) for c in good])
    np.testing.assert_allclose(mean.numpy(), allf.mean(0), rtol=1e-4, atol=1e-4)
    assert (std > 0).all()
