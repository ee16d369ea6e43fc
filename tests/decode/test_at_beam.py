"""Tests for casnat.decode.at_beam with a small fake decoder implementing the ``step`` contract.

The fake decoder is a tiny recurrent net whose cache holds two batch-first tensors (hidden states
and running embedding sums, one row per prefix position); a ``cache=None`` call recomputes every
position, so comparing cached beam search with uncached brute-force scoring checks that the
search reorders the cache correctly.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from casnat.decode.at_beam import at_beam_search, at_greedy_search


class FakeDecoder:
    def __init__(self, vocab: int, d_model: int = 8, seed: int = 0, scale: float = 2.0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.randn(vocab, d_model, generator=g)
        self.w = torch.randn(d_model, d_model, generator=g) / d_model**0.5
        self.out = torch.randn(d_model, vocab, generator=g) * scale
        self.d = d_model

    def _next(self, h: Tensor, s: Tensor, tok: Tensor) -> tuple[Tensor, Tensor]:
        e = self.emb[tok]  # (N, D)
        return torch.tanh(h @ self.w + e), s + e

    def step(
        self, ys_prefix: Tensor, memory: Tensor, memory_mask: Tensor, cache: list[Tensor] | None
    ) -> tuple[Tensor, list[Tensor]]:
        n, l = ys_prefix.shape
        m = memory_mask.to(memory.dtype)[..., None]
        ctx = (memory * m).sum(1) / m.sum(1).clamp_min(1.0)  # (N, D)
        if cache is None:
            h = torch.zeros(n, self.d)
            s = torch.zeros(n, self.d)
            hs, ss = [], []
            for i in range(l):
                h, s = self._next(h, s, ys_prefix[:, i])
                hs.append(h)
                ss.append(s)
            new_cache = [torch.stack(hs, 1), torch.stack(ss, 1)]
        else:
            assert all(c.shape[:2] == (n, l - 1) for c in cache), "cache must cover l-1 positions"
            h, s = self._next(cache[0][:, -1], cache[1][:, -1], ys_prefix[:, -1])
            new_cache = [torch.cat([cache[0], h[:, None]], 1), torch.cat([cache[1], s[:, None]], 1)]
        logits = (h + ctx + 0.3 * torch.tanh(s)) @ self.out
        return logits.log_softmax(-1), new_cache


V, SOS, EOS = 4, 3, 3


def _memory(n: int, t: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    mem = torch.randn(n, t, 8, generator=g)
    lens = torch.randint(1, t + 1, (n,), generator=g)
    mask = torch.arange(t)[None] < lens[:, None]
    return mem, mask


def _teacher_forced(dec: FakeDecoder, mem: Tensor, mask: Tensor, tokens: list[int],
                    max_len: int) -> tuple[float, list[float]]:
    """Sum log-prob of tokens + eos, and per-token log-probs (uncached)."""
    ys = [SOS]
    lps = []
    for tok in tokens + [EOS]:
        lp, _ = dec.step(torch.tensor([ys]), mem, mask, None)
        lps.append(float(lp[0, tok]))
        ys.append(tok)
    return sum(lps), lps[:-1]


def _brute_force(dec: FakeDecoder, mem: Tensor, mask: Tensor, max_len: int,
                 length_penalty: float = 0.0) -> list[tuple[float, list[int]]]:
    out = []
    for length in range(max_len + 1):
        for seq in itertools.product(range(V - 1), repeat=length):
            raw, _ = _teacher_forced(dec, mem, mask, list(seq), max_len)
            out.append((raw / (length + 1) ** length_penalty, list(seq)))
    return sorted(out, key=lambda x: x[0], reverse=True)


def test_beam1_equals_greedy() -> None:
    dec = FakeDecoder(V, seed=1)
    mem, mask = _memory(5, 6, seed=1)
    greedy = at_greedy_search(dec, mem, mask, SOS, EOS, max_len=6)
    beam = at_beam_search(dec, mem, mask, beam=1, sos=SOS, eos=EOS, max_len=6)
    for g, b in zip(greedy, beam, strict=True):
        assert b[0].tokens == g.tokens
        assert b[0].score == pytest.approx(g.score, abs=1e-5)
        assert b[0].confidences == pytest.approx(g.confidences, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_not_worse_than_greedy(seed: int) -> None:
    dec = FakeDecoder(V, seed=seed, scale=1.0)
    mem, mask = _memory(4, 5, seed=seed)
    greedy = at_greedy_search(dec, mem, mask, SOS, EOS, max_len=8)
    beam = at_beam_search(dec, mem, mask, beam=4, sos=SOS, eos=EOS, max_len=8)
    for g, b in zip(greedy, beam, strict=True):
        assert b[0].score >= g.score - 1e-5
        scores = [h.score for h in b]
        assert scores == sorted(scores, reverse=True) and len(b) == 4


def test_batched_equals_per_utterance() -> None:
    dec = FakeDecoder(V, seed=4, scale=1.0)
    mem, mask = _memory(4, 7, seed=4)
    max_len = torch.tensor([2, 6, 4, 1])
    batched = at_beam_search(dec, mem, mask, beam=3, sos=SOS, eos=EOS, max_len=max_len)
    for i in range(4):
        t = int(mask[i].sum())
        single = at_beam_search(dec, mem[i : i + 1, :t], mask[i : i + 1, :t], beam=3, sos=SOS,
                                eos=EOS, max_len=int(max_len[i]))[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in single]
        assert [h.score for h in batched[i]] == pytest.approx([h.score for h in single],
                                                              abs=1e-5)
        assert all(len(h.tokens) <= int(max_len[i]) for h in batched[i])


def test_hypotheses_exclude_eos_and_scores_are_exact() -> None:
    dec = FakeDecoder(V, seed=5)
    mem, mask = _memory(2, 5, seed=5)
    nbest = at_beam_search(dec, mem, mask, beam=3, sos=SOS, eos=EOS, max_len=5)
    for i, hyps in enumerate(nbest):
        for h in hyps:
            assert EOS not in h.tokens and SOS not in h.tokens
            raw, lps = _teacher_forced(dec, mem[i : i + 1], mask[i : i + 1], h.tokens, 5)
            assert h.score == pytest.approx(raw, abs=1e-5)
            assert h.confidences == pytest.approx([math.exp(x) for x in lps], abs=1e-5)
            assert h.token_starts == [] and h.token_ends == []


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_large_beam_matches_brute_force(length_penalty: float) -> None:
    dec = FakeDecoder(V, seed=6, scale=1.0)
    mem, mask = _memory(1, 4, seed=6)
    exact = _brute_force(dec, mem, mask, max_len=3, length_penalty=length_penalty)  # 40 seqs
    nbest = at_beam_search(dec, mem, mask, beam=len(exact), sos=SOS, eos=EOS, max_len=3,
                           length_penalty=length_penalty, exact_stop=True)[0]
    assert [h.tokens for h in nbest] == [seq for _, seq in exact]
    assert [h.score for h in nbest] == pytest.approx([s for s, _ in exact], abs=1e-5)
    # A modest beam still finds the best sequence here.
    top = at_beam_search(dec, mem, mask, beam=4, sos=SOS, eos=EOS, max_len=3,
                         length_penalty=length_penalty, exact_stop=True)[0][0]
    assert top.tokens == exact[0][1]


def test_length_normalized_search_stops_before_max_len_by_default() -> None:
    """With length normalization the exact stopping bound must assume max_len tokens, so it keeps
    stepping long after the beam has finished; the default bound (current length) stops soon."""

    class EndsAfterThree(FakeDecoder):
        """eos becomes likely once three tokens are out, as a trained AT's would."""

        calls = 0

        def step(self, ys_prefix, memory, memory_mask, cache):
            type(self).calls += 1
            logp, new_cache = super().step(ys_prefix, memory, memory_mask, cache)
            if ys_prefix.shape[1] > 3:
                logp = logp.clone()
                logp[:, EOS] += 12.0
                logp = logp.log_softmax(-1)
            return logp, new_cache

    steps = {}
    for exact in (True, False):
        EndsAfterThree.calls = 0
        dec = EndsAfterThree(V, seed=6, scale=1.0)
        mem, mask = _memory(1, 4, seed=6)
        at_beam_search(dec, mem, mask, beam=2, sos=SOS, eos=EOS, max_len=30,
                       length_penalty=1.0, exact_stop=exact)
        steps[exact] = EndsAfterThree.calls
    assert steps[False] <= 6 < steps[True]


def test_max_len_zero_forces_eos() -> None:
    dec = FakeDecoder(V, seed=7)
    mem, mask = _memory(2, 3, seed=7)
    nbest = at_beam_search(dec, mem, mask, beam=2, sos=SOS, eos=EOS, max_len=0)
    assert [[h.tokens for h in hyps] for hyps in nbest] == [[[]], [[]]]
    greedy = at_greedy_search(dec, mem, mask, SOS, EOS, max_len=0)
    assert [h.tokens for h in greedy] == [[], []]
