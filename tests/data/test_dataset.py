from pathlib import Path

import pytest
import torch
from lhotse import CutSet
from lhotse.utils import fastcopy

from casnat.config import FeatureConfig, SpecAugmentConfig, TokenizerConfig
from casnat.data.dataset import AsrDataset, Batch, spec_augment
from casnat.data.features import FeatureMismatchError, compute_features
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


def _runs(idx: list[int]) -> list[int]:
    """Lengths of the runs of consecutive integers in sorted ``idx``."""
    runs: list[int] = []
    for k, v in enumerate(idx):
        if k and v == idx[k - 1] + 1:
            runs[-1] += 1
        else:
            runs.append(1)
    return runs


def _masks(clean: torch.Tensor, aug: torch.Tensor, length: int) -> tuple[list[int], list[int]]:
    """Masked frequency bins and masked frames of one ``(T, F)`` utterance, checking that every
    changed value lies in one of them, equals the utterance mean, and padding is untouched."""
    x, y = clean[:length], aug[:length]
    fill = x.mean()
    cols = [f for f in range(x.shape[1]) if bool((y[:, f] == fill).all())]
    rows = [t for t in range(length) if bool((y[t] == fill).all())]
    changed = y != x
    in_mask = torch.zeros_like(changed)
    in_mask[:, cols] = True
    in_mask[rows, :] = True
    assert not bool((changed & ~in_mask).any()), "a value changed outside every mask"
    assert bool((y[in_mask] == fill).all()), "a masked value is not the utterance mean"
    assert torch.equal(aug[length:], clean[length:]), "padding frames were touched"
    return cols, rows


def _check_masks(clean: torch.Tensor, aug: torch.Tensor, lens: torch.Tensor,
                 cfg: SpecAugmentConfig) -> tuple[int, int]:
    """Per utterance of ``(N, T, F)`` feats: at most ``num_*_masks`` bands/spans, each within its
    configured width. Returns the total number of masked bins and frames over the batch."""
    n_cols = n_rows = 0
    for i, length in enumerate(lens.tolist()):
        cols, rows = _masks(clean[i], aug[i], length)
        max_t = int(cfg.time_mask_ratio * length)
        assert len(_runs(cols)) <= cfg.num_freq_masks
        assert len(cols) <= cfg.num_freq_masks * cfg.freq_mask_width
        assert len(_runs(rows)) <= cfg.num_time_masks
        assert len(rows) <= cfg.num_time_masks * max_t
        n_cols, n_rows = n_cols + len(cols), n_rows + len(rows)
    return n_cols, n_rows


def test_spec_augment_train_only(tone_cuts: CutSet, tok: Tokenizer) -> None:
    cfg = SpecAugmentConfig(num_freq_masks=2, freq_mask_width=27, num_time_masks=2,
                            time_mask_ratio=0.2)
    clean = AsrDataset(tok, train=False, spec_augment=cfg, on_the_fly=True)[tone_cuts]
    aug = AsrDataset(tok, train=True, spec_augment=cfg, on_the_fly=True, seed=1)[tone_cuts]
    assert not torch.equal(clean.feats, aug.feats)
    assert torch.equal(clean.feat_lens, aug.feat_lens)
    n_cols, n_rows = _check_masks(clean.feats, aug.feats, clean.feat_lens, cfg)
    assert n_cols > 0 and n_rows > 0  # both kinds of mask are really applied
    x = torch.randn(1, 50, 80)
    y = spec_augment(x, torch.tensor([50]), SpecAugmentConfig(2, 27, 0, 0.0),
                     torch.Generator().manual_seed(0))
    assert ((x != y).any(dim=1).sum()) <= 54  # at most 2 bands of <= 27 bins masked


def test_spec_augment_is_off_for_eval_and_when_unset(tone_cuts: CutSet, tok: Tokenizer) -> None:
    cfg = SpecAugmentConfig()
    plain = AsrDataset(tok, train=True, spec_augment=None, on_the_fly=True)[tone_cuts]
    for ds in (AsrDataset(tok, train=False, spec_augment=cfg, on_the_fly=True, seed=1),
               AsrDataset(tok, train=True, spec_augment=None, on_the_fly=True, seed=1)):
        assert torch.equal(ds[tone_cuts].feats, plain.feats)


def test_spec_augment_is_deterministic_under_the_dataset_seed(tone_cuts: CutSet,
                                                              tok: Tokenizer) -> None:
    cfg = SpecAugmentConfig(num_freq_masks=2, freq_mask_width=10, num_time_masks=2,
                            time_mask_ratio=0.1)

    def batches(seed: int) -> list[torch.Tensor]:
        ds = AsrDataset(tok, train=True, spec_augment=cfg, on_the_fly=True, seed=seed)
        return [ds[tone_cuts].feats for _ in range(2)]

    a, b, c = batches(3), batches(3), batches(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # same seed, same masks
    assert not torch.equal(a[0], a[1])  # the generator moves on: a new draw each batch
    assert not torch.equal(a[0], c[0])  # another seed, other masks


def test_spec_augment_masks_within_the_config_widths() -> None:
    """Random inputs (no value equals the mean by chance); many draws cover the width range."""
    cfg = SpecAugmentConfig(num_freq_masks=3, freq_mask_width=6, num_time_masks=2,
                            time_mask_ratio=0.1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 120, 40, generator=g)
    lens = torch.randint(60, 121, (16,), generator=g)
    x[torch.arange(120)[None, :] >= lens[:, None]] = 0.0
    y = spec_augment(x, lens, cfg, torch.Generator().manual_seed(1))
    n_cols, n_rows = _check_masks(x, y, lens, cfg)
    assert n_cols > 16 and n_rows > 16  # on average well over one masked bin / frame each
    none = SpecAugmentConfig(num_freq_masks=0, freq_mask_width=6, num_time_masks=0)
    assert torch.equal(spec_augment(x, lens, none, torch.Generator().manual_seed(1)), x)


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


def _stored(cuts: CutSet, tmp_path: Path, cfg: FeatureConfig, name: str = "c") -> CutSet:
    cuts.to_file(tmp_path / f"{name}.jsonl.gz")
    return CutSet.from_file(
        compute_features(tmp_path / f"{name}.jsonl.gz", tmp_path / f"f_{name}", None, cfg=cfg)
    )


@pytest.mark.parametrize(
    "stored_cfg, field",
    [
        (FeatureConfig(sample_rate=8000), "sample_rate"),
        (FeatureConfig(num_mel_bins=40), "num_mel_bins"),
        (FeatureConfig(level_dbfs=-25.0), "level_dbfs"),
    ],
)
def test_stored_features_for_another_front_end_stop_the_run(
    tone_cuts: CutSet, tok: Tokenizer, tmp_path: Path, stored_cfg: FeatureConfig, field: str
) -> None:
    """Features stored for another config must not be fed to a model silently (nor skipped cut
    by cut): the error names the cut, the field and both values."""
    stored = _stored(tone_cuts, tmp_path, stored_cfg)
    with pytest.raises(FeatureMismatchError, match=rf"cut {stored[0].id} .*{field}"):
        AsrDataset(tok, train=False)[stored]  # the default front end: 80 bins, 16 kHz, no level
    ok = AsrDataset(tok, train=False, feature_cfg=stored_cfg)[stored]  # its own config reads it
    assert ok.feats.shape[0] == len(stored) and ok.feats.shape[2] == stored_cfg.num_mel_bins
    # on the fly, stored features are not used, so they cannot mismatch
    assert AsrDataset(tok, train=False, on_the_fly=True)[stored].feats.shape[2] == 80


def test_unrecorded_manifests_are_checked_on_what_lhotse_stores(
    tone_cuts: CutSet, tok: Tokenizer, tmp_path: Path
) -> None:
    """Manifests from before the record (or other tools) still get the dimension checked."""
    stored = _stored(tone_cuts, tmp_path, FeatureConfig(num_mel_bins=40))
    bare = CutSet.from_cuts(fastcopy(c, custom=None) for c in stored)
    with pytest.raises(FeatureMismatchError, match=r"num_mel_bins 40 \(stored\) vs 80"):
        AsrDataset(tok, train=False)[bare]
    plain = CutSet.from_cuts(
        fastcopy(c, custom=None) for c in _stored(tone_cuts, tmp_path, FeatureConfig(), "p")
    )
    assert AsrDataset(tok, train=False)[plain].feats.shape[0] == len(plain)


def test_cmvn_reads_audio_when_stored_features_do_not_match(
    tone_cuts: CutSet, tmp_path: Path
) -> None:
    """An on-the-fly config trained beside stage 1's features gets statistics of its own front
    end, not of the stored one."""
    from casnat.data.cmvn import compute_global_cmvn

    stored = _stored(tone_cuts, tmp_path, FeatureConfig(num_mel_bins=40))
    mean, std = compute_global_cmvn(stored, feature_cfg=FeatureConfig())
    assert mean.shape[-1] == 80 and std.shape[-1] == 80
    mean40, _ = compute_global_cmvn(stored, feature_cfg=FeatureConfig(num_mel_bins=40))
    assert mean40.shape[-1] == 40
