from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from casnat.config import SpecAugmentConfig, TokenizerConfig
from casnat.data.dataset import AsrDataset, Batch, spec_augment
from casnat.data.features import compute_features
from casnat.data.tokenizer import Tokenizer


@pytest.fixture
def tok(tmp_path: Path, tone_cuts: CutSet) -> Tokenizer:
    texts = [c.supervisions[0].text for c in tone_cuts] + ["nine"]
    return Tokenizer.train(texts, TokenizerConfig("char"), tmp_path / "tok")


def _check(batch: Batch, cuts: list, tok: Tokenizer) -> None:
    n = len(cuts)
    assert batch.feats.dtype == torch.float32 and batch.feats.shape[0] == n
    assert batch.feats.shape[2] == 80
    assert batch.feat_lens.dtype == torch.int64 and batch.tokens.dtype == torch.int64
    assert batch.feats.shape[1] == int(batch.feat_lens.max())
    for i, cut in enumerate(cuts):
        assert abs(int(batch.feat_lens[i]) - round(cut.duration * 100)) <= 1
        assert (batch.feats[i, batch.feat_lens[i]:] == 0).all()
        u = int(batch.token_lens[i])
        assert batch.tokens[i, :u].tolist() == tok.encode(cut.supervisions[0].text)
        assert (batch.tokens[i, u:] == -1).all()
    assert batch.cut_ids == [c.id for c in cuts]
    assert batch.texts == [c.supervisions[0].text for c in cuts]


def test_precomputed_and_on_the_fly_agree(tone_cuts: CutSet, tok: Tokenizer, tmp_path) -> None:
    tone_cuts.to_file(tmp_path / "c.jsonl.gz")
    stored = CutSet.from_file(compute_features(tmp_path / "c.jsonl.gz", tmp_path / "f", None))
    a = AsrDataset(tok, train=False)[stored]
    b = AsrDataset(tok, train=False, on_the_fly=True)[tone_cuts]
    _check(a, list(stored), tok)
    _check(b, list(tone_cuts), tok)
    assert torch.allclose(a.feats, b.feats, atol=0.05)  # lilcom is lossy


def test_spec_augment_train_only(tone_cuts: CutSet, tok: Tokenizer) -> None:
    cfg = SpecAugmentConfig(num_freq_masks=2, freq_mask_width=27, num_time_masks=2,
                            time_mask_ratio=0.2)
    clean = AsrDataset(tok, train=False, spec_augment=cfg, on_the_fly=True)[tone_cuts]
    aug = AsrDataset(tok, train=True, spec_augment=cfg, on_the_fly=True, seed=1)[tone_cuts]
    assert not torch.equal(clean.feats, aug.feats)
    assert torch.equal(clean.feat_lens, aug.feat_lens)
    x = torch.randn(1, 50, 80)
    y = spec_augment(x, torch.tensor([50]), SpecAugmentConfig(2, 27, 0, 0.0),
                     torch.Generator().manual_seed(0))
    assert ((x != y).any(dim=1).sum()) <= 54  # at most 2 bands of <= 27 bins masked


def test_bad_audio_skipped_in_batch(bad_cuts: CutSet, tok: Tokenizer, caplog) -> None:
    ds = AsrDataset(tok, train=True, spec_augment=None, on_the_fly=True)
    batch = ds[bad_cuts]
    good = [c for c in bad_cuts if c.id.startswith("tone")]
    _check(batch, good, tok)
    assert batch.num_skipped == 3 and ds.num_skipped == 3
    for name in ("corrupt.wav", "empty.wav", "missing.wav"):
        assert name in caplog.text
    only_bad = CutSet.from_cuts([c for c in bad_cuts if not c.id.startswith("tone")])
    empty = ds[only_bad]
    assert empty.size == 0 and empty.feats.shape == (0, 0, 80) and ds.num_skipped == 6
