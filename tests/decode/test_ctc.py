"""Tests for casnat.decode.ctc: greedy vs prefix beam vs brute force on tiny cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from casnat.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search


def _collapse(path: tuple[int, ...], blank: int = 0) -> tuple[int, ...]:
    out = []
    prev = None
    for c in path:
        if c != blank and c != prev:
            out.append(c)
        prev = c
    return tuple(out)


def _runs(path: tuple[int, ...], blank: int = 0) -> tuple[list[int], list[int]]:
    """First/last frame of each token's run in a frame path."""
    starts, ends = [], []
    for t, c in enumerate(path):
        if c == blank:
            continue
        if t == 0 or path[t - 1] != c:
            starts.append(t)
            ends.append(t)
        else:
            ends[-1] = t
    return starts, ends


def _brute_force(lp: torch.Tensor) -> dict[tuple[int, ...], tuple[float, tuple[int, ...]]]:
    """labelling -> (log-prob summed over paths, best single path) for lp (T, V)."""
    t_len, v = lp.shape
    table: dict[tuple[int, ...], tuple[float, float, tuple[int, ...]]] = {}
    for path in itertools.product(range(v), repeat=t_len):
        score = float(sum(lp[t, c] for t, c in enumerate(path)))
        lab = _collapse(path)
        tot, best, best_path = table.get(lab, (-math.inf, -math.inf, ()))
        tot = float(torch.logaddexp(torch.tensor(tot), torch.tensor(score)))
        if score > best:
            best, best_path = score, path
        table[lab] = (tot, best, best_path)
    return {k: (tot, p) for k, (tot, _, p) in table.items()}


def _peaky(n: int, t: int, v: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, t, v, generator=g) * 6.0
    lens = torch.randint(t // 2, t + 1, (n,), generator=g)
    lens[0] = t
    return logits.log_softmax(-1), lens


def test_greedy_collapse_and_timing() -> None:
    # frames: a a _ a b b _  (a=1, b=2)
    ids = [1, 1, 0, 1, 2, 2, 0]
    probs = torch.full((1, len(ids), 3), 0.1)
    for t, c in enumerate(ids):
        probs[0, t, c] = 0.8
    lp = probs.log()
    hyp = ctc_greedy_search(lp, torch.tensor([len(ids)]))[0]
    assert hyp.tokens == [1, 1, 2]
    assert hyp.token_starts == [0, 3, 4] and hyp.token_ends == [1, 3, 5]
    assert hyp.confidences == pytest.approx([0.8, 0.8, 0.8])
    assert hyp.score == pytest.approx(7 * math.log(0.8), abs=1e-5)


def test_greedy_respects_lengths_and_batch() -> None:
    lp, lens = _peaky(4, 12, 6, seed=0)
    batched = ctc_greedy_search(lp, lens)
    for i in range(4):
        single = ctc_greedy_search(lp[i : i + 1, : lens[i]], lens[i : i + 1])[0]
        assert batched[i].tokens == single.tokens
        assert batched[i].token_starts == single.token_starts
        assert batched[i].token_ends == single.token_ends
        assert batched[i].score == pytest.approx(single.score, abs=1e-5)
        assert all(e < lens[i] for e in batched[i].token_ends)
        path = tuple(lp[i, : lens[i]].argmax(-1).tolist())
        assert tuple(batched[i].tokens) == _collapse(path)
        assert (batched[i].token_starts, batched[i].token_ends) == _runs(path)


def test_empty_inputs() -> None:
    assert ctc_greedy_search(torch.zeros(2, 0, 3), torch.tensor([0, 0]))[0].tokens == []
    lp = torch.zeros(1, 3, 3).log_softmax(-1)
    assert ctc_greedy_search(lp, torch.tensor([0]))[0].tokens == []
    assert ctc_prefix_beam_search(lp, torch.tensor([0]), beam=3)[0][0].tokens == []
    impossible = torch.full((1, 2, 3), float("-inf"))
    nbest = ctc_prefix_beam_search(impossible, torch.tensor([2]), beam=3)[0]
    assert len(nbest) == 1 and nbest[0].score == float("-inf")


def test_beam1_equals_greedy() -> None:
    lp, lens = _peaky(3, 15, 5, seed=1)
    greedy = ctc_greedy_search(lp, lens)
    beam = ctc_prefix_beam_search(lp, lens, beam=1)
    for g, b in zip(greedy, beam, strict=True):
        assert len(b) == 1
        assert b[0].tokens == g.tokens
        assert b[0].token_starts == g.token_starts and b[0].token_ends == g.token_ends
        assert b[0].confidences == pytest.approx(g.confidences, rel=1e-5)
        assert b[0].score == pytest.approx(g.score, abs=1e-4)


def test_prefix_beam_beats_greedy_path() -> None:
    # Best path is "_ _" (0.36), but labelling "a" has paths aa, a_, _a = 0.64.
    lp = torch.tensor([[[0.6, 0.4], [0.6, 0.4]]]).log()
    assert ctc_greedy_search(lp, torch.tensor([2]))[0].tokens == []
    nbest = ctc_prefix_beam_search(lp, torch.tensor([2]), beam=2)[0]
    assert nbest[0].tokens == [1]
    assert nbest[0].score == pytest.approx(math.log(0.64), abs=1e-6)
    assert nbest[1].tokens == [] and nbest[1].score == pytest.approx(math.log(0.36), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_beam_matches_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    t_len, v = 5, 3
    lp = (torch.randn(1, t_len, v, generator=g) * 1.5).log_softmax(-1)
    exact = _brute_force(lp[0])
    ranked = sorted(exact.items(), key=lambda kv: kv[1][0], reverse=True)
    nbest = ctc_prefix_beam_search(lp, torch.tensor([t_len]), beam=len(exact), token_topk=v)[0]
    assert len(nbest) == len(exact)
    scores = [h.score for h in nbest]
    assert scores == sorted(scores, reverse=True)
    for h, (lab, (tot, best_path)) in zip(nbest, ranked, strict=True):
        assert tuple(h.tokens) == lab
        assert h.score == pytest.approx(tot, abs=1e-5)
        # Timing follows the best single path of the labelling.
        assert (h.token_starts, h.token_ends) == _runs(best_path)


def test_prefix_beam_batched_equals_single() -> None:
    lp, lens = _peaky(3, 10, 5, seed=3)
    lp = (lp / 3).log_softmax(-1)  # less peaky: beams differ
    batched = ctc_prefix_beam_search(lp, lens, beam=4)
    for i in range(3):
        single = ctc_prefix_beam_search(lp[i : i + 1, : lens[i]], lens[i : i + 1], beam=4)[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in single]
        assert [h.score for h in batched[i]] == pytest.approx([h.score for h in single])
