"""AudioCache: later epochs of on-the-fly training skip decoding, and change nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from casnat.config import AugmentConfig, TokenizerConfig
from casnat.data.augment import tag_epochs
from casnat.data.dataset import AsrDataset
from casnat.data.features import AudioCache, load_audio_checked
from casnat.data.tokenizer import Tokenizer
from casnat.testing import make_cut

ALL_ON = AugmentConfig(gain_prob=0.8, noise_prob=0.9, noise_types=("babble", "white"),
                       reverb_prob=0.5, telephone_prob=0.3)


def _wav_cuts(tmp_path: Path, n: int = 6) -> list:
    """``n`` 8 kHz clips (resampled to 16 kHz on load, as fsdd is), texts '0' .. 'n-1'."""
    rng = np.random.default_rng(0)
    cuts = []
    for i in range(n):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(4000 + 400 * i)).astype(np.float32), 8000)
        cuts.append(make_cut(path, str(i)))
    return cuts


def test_a_cached_cut_is_not_read_again_and_is_the_same_audio(tmp_path: Path) -> None:
    cut = _wav_cuts(tmp_path, 1)[0].resample(16000)
    cache = AudioCache(max_mb=10)
    first = load_audio_checked(cut, cache)
    (tmp_path / "c0.wav").unlink()  # a second read from disk would now fail
    again = load_audio_checked(cut, cache)
    assert again is first and cache.hits == 1 and cache.misses == 1
    assert not again.flags.writeable  # callers copy before changing it
    with pytest.raises(ValueError, match="c0.wav"):
        load_audio_checked(cut)  # without the cache: the file is gone, and the error says so


def test_the_cache_holds_at_most_max_mb_dropping_the_least_recent(tmp_path: Path) -> None:
    cuts = [c.resample(16000) for c in _wav_cuts(tmp_path, 4)]
    one = load_audio_checked(cuts[0]).nbytes
    cache = AudioCache(max_mb=2.5 * one / 2**20)  # room for two clips
    for c in cuts[:2]:
        load_audio_checked(c, cache)
    load_audio_checked(cuts[0], cache)  # cuts[0] is now the most recent
    load_audio_checked(cuts[2], cache)  # evicts cuts[1]
    assert cache.bytes <= cache.max_bytes
    hits = cache.hits
    load_audio_checked(cuts[0], cache)
    assert cache.hits == hits + 1
    load_audio_checked(cuts[1], cache)
    assert cache.hits == hits + 1  # was evicted: read again


def _two_epochs(cuts: CutSet, tok: Tokenizer, cache_mb: float) -> dict:
    """{(epoch, cut id): features} of two epochs of one augmented training dataset."""
    ds = AsrDataset(tok, train=True, spec_augment=None, on_the_fly=True, seed=3, augment=ALL_ON,
                    audio_cache_mb=cache_mb)
    out = {}
    for epoch in (1, 2):
        sampler = tag_epochs(SimpleCutSampler(cuts, max_cuts=3, shuffle=True, seed=0))
        sampler.set_epoch(epoch)
        for batch_cuts in sampler:
            b = ds[batch_cuts]
            out.update({(epoch, i): b.feats[k, : b.feat_lens[k]]
                        for k, i in enumerate(b.cut_ids)})
    return out, ds


def test_augmented_features_are_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    cuts = CutSet.from_cuts(_wav_cuts(tmp_path))
    tok = Tokenizer.train([str(d) for d in range(10)], TokenizerConfig("char"), tmp_path / "tok")
    plain, _ = _two_epochs(cuts, tok, 0)
    cached, ds = _two_epochs(cuts, tok, 64)
    assert plain.keys() == cached.keys()
    assert all(torch.equal(plain[k], cached[k]) for k in plain)
    # Epoch 2 (and babble in epoch 1) came from memory; augmentation never wrote into it.
    assert ds.audio_cache.hits >= len(cuts)
