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


def test_encode_applies_the_cmvn_buffers(tone_cuts: CutSet, tmp_path: Path) -> None:
    """The statistics do their job only if ``encode`` normalizes with them: its output is the
    encoder run on (feats - mean) / std, changes when the buffers change, and survives a
    state-dict round trip (decoding reads CMVN from the checkpoint, nowhere else)."""
    from casnat.config import ModelConfig
    from casnat.models.asr import ASRModel
    from casnat.testing import tiny_parts

    tone_cuts.to_file(tmp_path / "c.jsonl.gz")
    cuts = CutSet.from_file(compute_features(tmp_path / "c.jsonl.gz", tmp_path / "f", None))
    mean, std = compute_global_cmvn(cuts)
    feats = torch.nn.utils.rnn.pad_sequence(
        [torch.from_numpy(c.load_features()) for c in cuts], batch_first=True)
    lens = torch.tensor([c.num_frames for c in cuts])
    torch.manual_seed(0)
    model = ASRModel(ModelConfig(encoder=tiny_parts()[0]), vocab_size=8).eval()
    with torch.no_grad():
        raw = model.encode(feats, lens).out  # default buffers: mean 0, istd 1
        assert torch.equal(raw, model.encoder(feats, lens).out)
        model.set_cmvn(mean, std)
        normed = model.encode(feats, lens)
        ref = model.encoder((feats - mean) * (1.0 / std), lens)
        assert torch.allclose(normed.out, ref.out, atol=1e-5)
        assert torch.equal(normed.lens, ref.lens)
        assert not torch.allclose(normed.out, raw, atol=1e-2)
        twin = ASRModel(ModelConfig(encoder=tiny_parts()[0]), vocab_size=8).eval()
        twin.load_state_dict(model.state_dict())
        assert torch.equal(twin.encode(feats, lens).out, normed.out)
