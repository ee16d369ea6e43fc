"""DataLoaders over lhotse cut manifests, sharded per DDP rank.

Training batches are drawn by lhotse's ``DynamicBucketingSampler`` (similar durations together,
at most ``max_duration`` seconds of audio per batch). The sampler is returned beside the
loader: call ``sampler.set_epoch(epoch)`` each epoch, save ``sampler.state_dict()`` in a
checkpoint and ``sampler.load_state_dict(...)`` on resume to continue at the exact batch.
``world_size`` / ``rank`` are passed explicitly (no torch.distributed lookup), so the ranks
get disjoint batches of the same shuffled order.

>>> loader, sampler = make_train_loader("data/fbank/cuts_train.jsonl.gz", tok, DataConfig(), 0)
... # doctest: +SKIP
>>> for batch in loader: ...                                                     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler

from casnat.config import DataConfig, FeatureConfig
from casnat.data.augment import tag_epochs
from casnat.data.dataset import AsrDataset
from casnat.data.features import DEFAULT_FEATURES
from casnat.data.tokenizer import Tokenizer


def _as_cutset(cuts: CutSet | str | Path) -> CutSet:
    if isinstance(cuts, CutSet):
        return cuts
    path = Path(cuts)
    if not path.is_file():
        raise FileNotFoundError(f"cuts manifest not found: {path}")
    return CutSet.from_file(path)


def make_train_loader(
    cuts: CutSet | str | Path,
    tokenizer: Tokenizer,
    cfg: DataConfig,
    seed: int,
    world_size: int = 1,
    rank: int = 0,
    feature_cfg: FeatureConfig = DEFAULT_FEATURES,
) -> tuple[torch.utils.data.DataLoader, DynamicBucketingSampler]:
    """Shuffled, bucketed, SpecAugmented training batches for one DDP rank.

    Returns ``(loader, sampler)``; the loader yields :class:`casnat.data.dataset.Batch`.
    """
    cuts = _as_cutset(cuts)
    sampler = DynamicBucketingSampler(
        cuts,
        max_duration=cfg.max_duration,
        num_buckets=cfg.num_buckets,
        shuffle=cfg.shuffle,
        drop_last=world_size > 1,  # every rank must see the same number of batches
        seed=seed,
        world_size=world_size,
        rank=rank,
    )
    # Cuts carry their epoch to the dataset (workers): augmentation is seeded by (seed, epoch, cut).
    sampler = tag_epochs(sampler)
    dataset = AsrDataset(
        tokenizer,
        train=True,
        spec_augment=cfg.spec_augment,
        on_the_fly=cfg.on_the_fly_feats,
        feature_cfg=feature_cfg,
        seed=seed + 1000 * rank,
        augment=cfg.augment,
        audio_cache_mb=cfg.audio_cache_mb,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )
    return loader, sampler


def make_eval_loader(
    cuts: CutSet | str | Path,
    tokenizer: Tokenizer,
    max_duration: float,
    on_the_fly: bool = False,
    feature_cfg: FeatureConfig = DEFAULT_FEATURES,
    num_workers: int = 0,
    max_cuts: int | None = None,
) -> torch.utils.data.DataLoader:
    """Batches in manifest order, no augmentation, no shuffle (dev loss, decoding).

    ``max_cuts`` caps the utterances per batch (``max_cuts=1`` decodes one utterance at a time).
    """
    cuts = _as_cutset(cuts)
    if max_cuts is not None:
        sampler = SimpleCutSampler(cuts, max_cuts=max_cuts, shuffle=False)
    else:
        sampler = SimpleCutSampler(cuts, max_duration=max_duration, shuffle=False)
    dataset = AsrDataset(tokenizer, train=False, on_the_fly=on_the_fly, feature_cfg=feature_cfg)
    return torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=num_workers
    )
