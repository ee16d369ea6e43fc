"""Global mean / variance normalisation statistics over training features.

The model keeps ``mean`` and ``std`` as buffers and normalises ``(feats - mean) / std``, so the
statistics travel inside the checkpoint and decoding needs no extra file.

>>> mean, std = compute_global_cmvn(CutSet.from_file("data/fbank/cuts_train.jsonl.gz"))
... # doctest: +SKIP
>>> mean.shape, std.shape                                                 # doctest: +SKIP
(torch.Size([80]), torch.Size([80]))
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
from lhotse import CutSet

from casnat.config import FeatureConfig
from casnat.data.features import (
    DEFAULT_FEATURES,
    cut_features,
    make_extractor,
    stored_features_match,
)

log = logging.getLogger(__name__)


def compute_global_cmvn(
    cuts: CutSet | Iterable,
    max_cuts: int | None = None,
    feature_cfg: FeatureConfig = DEFAULT_FEATURES,
    min_std: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (each ``(F,)`` float32) over all frames of ``cuts``.

    Uses stored features when a cut has them and they match ``feature_cfg`` (an on-the-fly
    config may differ from stage 1's stored features), otherwise computes fbank from its audio.
    Accumulates in float64; unreadable cuts are skipped with a warning; at most ``max_cuts``
    cuts are read (None = all). ``std`` is floored at ``min_std``.
    """
    extractor = None
    total = sq = None
    frames, used = 0, 0
    for cut in cuts:
        if max_cuts is not None and used >= max_cuts:
            break
        try:
            if cut.has_features and stored_features_match(cut, feature_cfg):
                x = cut.load_features()
            else:
                extractor = extractor or make_extractor(feature_cfg)
                x = cut_features(cut, extractor, feature_cfg.sample_rate)
        except Exception as e:  # bad audio / storage must not stop the statistics
            log.warning("cmvn: skipping cut %s: %s", cut.id, e)
            continue
        x = np.asarray(x, dtype=np.float64)
        if total is None:
            total, sq = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        total += x.sum(0)
        sq += (x * x).sum(0)
        frames += x.shape[0]
        used += 1
    if frames == 0:
        raise ValueError("compute_global_cmvn: no readable features in the given cuts")
    mean = total / frames
    std = np.sqrt(np.maximum(sq / frames - mean * mean, 0.0))
    std = np.maximum(std, min_std)
    log.info("cmvn: %d cuts, %d frames", used, frames)
    return torch.from_numpy(mean).float(), torch.from_numpy(std).float()
