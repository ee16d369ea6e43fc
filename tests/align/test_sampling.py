"""Tests of casnat.align.sample_alignments (ESA)."""

from __future__ import annotations

import math

import pytest
import torch

from casnat.align import _backend, sample_alignments
from casnat.testing import random_log_probs


def _probs_to_lp(rows: list[list[float]]) -> torch.Tensor:
    return torch.log(torch.tensor(rows))[None]  # (1, T, V)


def test_distribution_above_and_below_threshold(impl):
    # frames 0, 2: confident (0.95 > 0.9); frames 1, 3: top-1 / top-2 = 1 / 2 and 3 / 0
    lp = _probs_to_lp(
        [
            [0.95, 0.03, 0.02, 0.0],
            [0.1, 0.5, 0.3, 0.1],
            [0.01, 0.01, 0.97, 0.01],
            [0.35, 0.05, 0.2, 0.4],
        ]
    )
    K = 4000
    s = sample_alignments(
        lp,
        torch.tensor([4]),
        num_samples=K,
        threshold=0.9,
        generator=torch.Generator().manual_seed(1),
        impl=impl,
    )[0]
    assert s.shape == (K, 4)
    assert s[0].tolist() == [0, 1, 2, 3]  # sample 0 = argmax path
    assert (s[:, 0] == 0).all() and (s[:, 2] == 2).all()
    for t, top1, top2 in [(1, 1, 2), (3, 3, 0)]:
        assert set(s[1:, t].tolist()) == {top1, top2}
        frac = float((s[1:, t] == top2).float().mean())
        assert abs(frac - 0.5) < 0.04  # ~ 8 sigma for K = 4000 fair coins


def test_threshold_limits_and_padding(impl):
    lp = random_log_probs(2, 6, 5, 0, peaky=0.5)
    lens = torch.tensor([6, 3])
    s_never = sample_alignments(lp, lens, 8, threshold=0.0, impl=impl)
    assert (s_never == s_never[:, :1]).all()  # nothing below a threshold of 0
    s_all = sample_alignments(
        lp, lens, 64, threshold=1.01, generator=torch.Generator().manual_seed(0), impl=impl
    )
    top2 = lp.topk(2, dim=-1).indices
    valid = s_all[0, 1:]
    assert ((valid == top2[0, :, 0]) | (valid == top2[0, :, 1])).all()
    assert (s_all[1, :, 3:] == -1).all() and (s_all[1, :, :3] >= 0).all()
    assert torch.equal(s_all[:, 0], lp.argmax(-1).masked_fill(torch.arange(6) >= lens[:, None], -1))


def test_deterministic_under_seed_and_backends_agree():
    lp = random_log_probs(3, 50, 30, 4, peaky=1.0)
    lens = torch.tensor([50, 20, 35])
    impls = ["numba"] + (["cpp"] if _backend.HAS_CPP else [])
    outs = [
        sample_alignments(lp, lens, 10, 0.9, generator=torch.Generator().manual_seed(7), impl=i)
        for i in impls
        for _ in range(2)
    ]
    for o in outs[1:]:
        assert torch.equal(o, outs[0])
    other = sample_alignments(lp, lens, 10, 0.9, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(other, outs[0])
    torch.manual_seed(3)
    a = sample_alignments(lp, lens, 5)
    torch.manual_seed(3)
    assert torch.equal(a, sample_alignments(lp, lens, 5))


def test_ties_go_to_lower_id(impl):
    lp = _probs_to_lp([[0.25, 0.25, 0.25, 0.25], [0.1, 0.45, 0.45, 0.0]])
    s = sample_alignments(
        lp, torch.tensor([2]), 200, 0.9, generator=torch.Generator().manual_seed(0), impl=impl
    )[0]
    assert s[0].tolist() == [0, 1]
    assert set(s[:, 0].tolist()) == {0, 1} and set(s[:, 1].tolist()) == {1, 2}


def test_single_sample_and_errors():
    lp = random_log_probs(1, 4, 3, 0)
    assert sample_alignments(lp, torch.tensor([4]), 1).shape == (1, 1, 4)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        sample_alignments(lp, torch.tensor([4]), 0)
    with pytest.raises(ValueError, match=r"input_lengths must have shape \(1,\)"):
        sample_alignments(lp, torch.tensor([4, 4]), 2)
    with pytest.raises(ValueError, match="threshold"):
        sample_alignments(lp, torch.tensor([4]), 2, threshold=-math.inf)


def test_seed_gives_each_utterance_the_same_samples_in_any_batch(impl):
    """With ``seed=`` an utterance's samples do not depend on its batch: decoded alone (no
    padding) or at another row of a padded batch, it gets the same paths; a generator does not
    promise that, and a different seed changes them."""
    lp = random_log_probs(3, 40, 6, 11, peaky=0.5)
    lens = torch.tensor([40, 17, 29])
    batch = sample_alignments(lp, lens, 8, 0.99, seed=4, impl=impl)
    for b in range(3):
        n = int(lens[b])
        alone = sample_alignments(lp[b : b + 1, :n], lens[b : b + 1], 8, 0.99, seed=4, impl=impl)
        assert torch.equal(alone[0], batch[b, :, :n])
    rev = sample_alignments(lp.flip(0), lens.flip(0), 8, 0.99, seed=4, impl=impl)
    assert torch.equal(rev.flip(0), batch)
    assert not torch.equal(sample_alignments(lp, lens, 8, 0.99, seed=5, impl=impl), batch)
    assert (batch[:, 1:] != batch[:, :1]).any()  # the samples do differ from the greedy path
    with pytest.raises(ValueError, match="either generator or seed"):
        sample_alignments(lp, lens, 8, 0.99, generator=torch.Generator(), seed=4)
