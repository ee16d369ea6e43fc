"""The ASR dataset: a lhotse CutSet mini-batch -> :class:`Batch` of padded tensors.

Shapes: N = cuts in the batch, T = frames (10 ms), F = 80 mel bins, U = tokens.
Features come from lhotse storage (``cut.load_features()``) or, with ``on_the_fly``, are
computed from audio by :func:`casnat.data.features.make_extractor`. A cut whose audio or
features cannot be read is dropped from its batch with a warning naming the file; the others
stay, ``batch.num_skipped`` says how many were dropped in this batch and
``dataset.num_skipped`` keeps the running total (per process: with DataLoader workers, sum
``batch.num_skipped`` in the training loop instead).

>>> ds = AsrDataset(tokenizer, train=True, spec_augment=SpecAugmentConfig())  # doctest: +SKIP
>>> batch = ds[cuts]                                                          # doctest: +SKIP
>>> batch.feats.shape, batch.tokens.shape                                     # doctest: +SKIP
(torch.Size([N, T, 80]), torch.Size([N, U]))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from lhotse import CutSet

from casnat.config import AugmentConfig, FeatureConfig, SpecAugmentConfig
from casnat.data.augment import make_augmenter
from casnat.data.features import (
    DEFAULT_FEATURES,
    AudioCache,
    audio_source,
    check_stored_features,
    cut_features,
    make_extractor,
)
from casnat.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """One padded mini-batch; tensors travel with their lengths.

    feats (N, T, F) float32 log-mel, zero-padded; feat_lens (N,) int64;
    tokens (N, U) int64 padded with -1; token_lens (N,) int64;
    cut_ids / texts: N strings; num_skipped: cuts of this batch dropped for bad audio.
    N is 0 when every cut of the batch was bad: the training loop should skip such a batch.
    """

    feats: torch.Tensor
    feat_lens: torch.Tensor
    tokens: torch.Tensor
    token_lens: torch.Tensor
    cut_ids: list[str]
    texts: list[str]
    num_skipped: int = 0

    @property
    def size(self) -> int:
        return len(self.cut_ids)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.feats.to(device), self.feat_lens.to(device), self.tokens.to(device),
                     self.token_lens.to(device), self.cut_ids, self.texts, self.num_skipped)


def spec_augment(
    feats: torch.Tensor, feat_lens: torch.Tensor, cfg: SpecAugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """SpecAugment masking (no time warp): ``cfg.num_freq_masks`` bands of width
    U[0, freq_mask_width] and ``cfg.num_time_masks`` spans of width up to
    ``time_mask_ratio * len`` per utterance, set to the utterance mean. feats (N, T, F)."""
    out = feats.clone()
    n, _, f = feats.shape
    for i in range(n):
        length = int(feat_lens[i])
        if length == 0:
            continue
        fill = out[i, :length].mean()
        for _ in range(cfg.num_freq_masks):
            w = int(torch.randint(0, cfg.freq_mask_width + 1, (1,), generator=generator))
            w = min(w, f)
            f0 = int(torch.randint(0, f - w + 1, (1,), generator=generator))
            out[i, :length, f0 : f0 + w] = fill
        max_w = max(0, int(cfg.time_mask_ratio * length))
        for _ in range(cfg.num_time_masks):
            w = int(torch.randint(0, max_w + 1, (1,), generator=generator))
            t0 = int(torch.randint(0, length - w + 1, (1,), generator=generator))
            out[i, t0 : t0 + w] = fill
    return out


class AsrDataset(torch.utils.data.Dataset):
    """Map-style lhotse dataset: ``dataset[cuts] -> Batch``.

    ``spec_augment`` and ``augment`` (waveform augmentation, see casnat.data.augment; needs
    ``on_the_fly``) are applied only when ``train`` is True (and they are not None).
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        train: bool,
        spec_augment: SpecAugmentConfig | None = None,
        on_the_fly: bool = False,
        feature_cfg: FeatureConfig = DEFAULT_FEATURES,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        audio_cache_mb: float = 0.0,
    ):
        self.tokenizer = tokenizer
        self.train = train
        self.spec_augment = spec_augment if train else None
        self.on_the_fly = on_the_fly
        self.feature_cfg = feature_cfg
        self.extractor = make_extractor(feature_cfg) if on_the_fly else None
        self.generator = torch.Generator().manual_seed(seed)
        self.num_skipped = 0
        self.augmenter = make_augmenter(augment, seed, on_the_fly) if train else None
        # Per process: each DataLoader worker fills its own copy (see AudioCache).
        self.audio_cache = AudioCache(audio_cache_mb) if on_the_fly and audio_cache_mb > 0 else None
        if self.augmenter is not None:
            self.augmenter.audio_cache = self.audio_cache

    def _features(self, cut, batch: CutSet | None = None) -> np.ndarray:
        """(T, F) features of ``cut``; raises ValueError naming the file when unreadable."""
        if self.on_the_fly or not cut.has_features:
            if self.extractor is None:
                self.extractor = make_extractor(self.feature_cfg)
            transform = None
            if self.augmenter is not None:  # training only; ``batch`` is the babble pool
                pool = batch if batch is not None else ()
                augmenter = self.augmenter

                def transform(samples: np.ndarray, c) -> np.ndarray:
                    return augmenter(samples, c.sampling_rate, c, pool)

            return cut_features(cut, self.extractor, self.feature_cfg.sample_rate, transform,
                                self.audio_cache)
        check_stored_features(cut, self.feature_cfg)  # raises: the manifest is wrong, not the cut
        try:
            feats = cut.load_features()
        except Exception as e:  # missing/corrupt storage raises many types
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise ValueError(f"cannot read features of cut {cut.id}: {reason}") from e
        if feats.shape[0] == 0:
            raise ValueError(f"empty features in cut {cut.id} ({audio_source(cut)})")
        return feats

    def __getitem__(self, cuts: CutSet) -> Batch:
        feats, ids, texts, skipped = [], [], [], 0
        for cut in cuts:
            try:
                x = self._features(cut, cuts)
            except ValueError as e:
                log.warning("skipping cut: %s", e)
                skipped += 1
                continue
            feats.append(torch.from_numpy(np.asarray(x, dtype=np.float32)))
            ids.append(cut.id)
            texts.append(" ".join(s.text for s in cut.supervisions if s.text))
        self.num_skipped += skipped
        dim = self.feature_cfg.num_mel_bins
        feat_lens = torch.tensor([x.shape[0] for x in feats], dtype=torch.int64)
        padded = torch.zeros(len(feats), int(feat_lens.max()) if feats else 0, dim)
        for i, x in enumerate(feats):
            padded[i, : x.shape[0]] = x
        if self.spec_augment is not None and feats:
            padded = spec_augment(padded, feat_lens, self.spec_augment, self.generator)
        token_seqs = [self.tokenizer.encode(t) for t in texts]
        token_lens = torch.tensor([len(t) for t in token_seqs], dtype=torch.int64)
        tokens = torch.full((len(token_seqs), int(token_lens.max()) if feats else 0), -1,
                            dtype=torch.int64)
        for i, t in enumerate(token_seqs):
            tokens[i, : len(t)] = torch.tensor(t, dtype=torch.int64)
        return Batch(padded, feat_lens, tokens, token_lens, ids, texts, skipped)
