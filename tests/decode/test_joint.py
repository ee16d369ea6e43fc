"""Joint CTC/attention beam search and its CTC prefix scorer.

The scorer is checked against torch's CTC loss (full-sequence scores) and against the identity
that ties prefix and full scores, ``P(g ... ) = P(g) + sum_c P(g c ...)``; the search against
its two ends: λ = 0 is the AT beam search, λ = 1 finds CTC's best labelling.
"""

from __future__ import annotations

import pytest
import torch

from casnat.config import ATDecoderConfig
from casnat.decode.at_beam import at_beam_search
from casnat.decode.ctc import ctc_prefix_beam_search
from casnat.decode.ctc_prefix_score import CTCPrefixScorer
from casnat.decode.joint import joint_beam_search
from casnat.decode.modes import DecodeOptions
from casnat.errors import UserError
from casnat.models.at_decoder import ATDecoder
from casnat.nn.masks import lengths_to_mask
from casnat.testing import random_log_probs

V = 7  # 0 blank, 1..5 tokens, 6 sos/eos
BLANK, EOS = 0, V - 1


def _ctc_inputs(n: int, t: int, seed: int, peaky: float = 1.0):
    lp = random_log_probs(n, t, V, seed, peaky=peaky)
    lp[:, :, EOS] = -30.0  # the CTC head never emits sos/eos once trained
    lp = lp.log_softmax(-1)
    g = torch.Generator().manual_seed(seed + 1)
    lens = torch.randint(max(1, t // 2), t + 1, (n,), generator=g)
    lens[0] = t
    return lp, lens


def _decoder(seed: int = 0, d: int = 16) -> ATDecoder:
    torch.manual_seed(seed)
    dec = ATDecoder(ATDecoderConfig(num_layers=1, num_heads=2, ffn_dim=32, dropout=0.0), d, V)
    return dec.eval()


def _memory(n: int, t: int, lens: torch.Tensor, seed: int, d: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, d, generator=g), lengths_to_mask(lens, t)


def test_full_scores_equal_minus_ctc_loss_and_prefix_identity():
    n, t = 4, 11
    lp, lens = _ctc_inputs(n, t, seed=3)
    g = torch.Generator().manual_seed(5)
    targets = torch.randint(1, EOS, (n, 4), generator=g)
    targets[1, 1] = targets[1, 0]  # a repeat needs a blank in between
    scorer = CTCPrefixScorer(lp, lens, torch.arange(n), blank=BLANK)
    cand = torch.arange(0, EOS).expand(n, EOS)  # blank included: it must score -inf
    for step in range(targets.shape[1]):
        psi = scorer.extend(cand)
        assert torch.isneginf(psi[:, BLANK]).all()
        # Every labelling that starts with g either is g or continues with some token c.
        rhs = torch.logaddexp(scorer.full_scores(), psi[:, 1:].logsumexp(1))
        torch.testing.assert_close(scorer.prefix_score, rhs, atol=1e-4, rtol=1e-4)
        assert (psi <= scorer.prefix_score[:, None] + 1e-5).all()  # prefix scores only fall
        scorer.advance(torch.arange(n), targets[:, step])
        ref = -torch.nn.functional.ctc_loss(
            lp.transpose(0, 1),
            targets[:, : step + 1],
            lens,
            torch.full((n,), step + 1),
            blank=BLANK,
            reduction="none",
        )
        torch.testing.assert_close(scorer.full_scores(), ref, atol=1e-4, rtol=1e-4)


def test_advance_follows_reordered_rows():
    """Rows picked in another order (and fewer of them) keep their own prefixes' scores."""
    lp, lens = _ctc_inputs(2, 8, seed=1)
    row_utt = torch.tensor([0, 0, 1, 1])
    scorer = CTCPrefixScorer(lp, lens, row_utt, blank=BLANK)
    scorer.extend(torch.tensor([[1, 2], [1, 2], [3, 4], [3, 4]]))
    scorer.advance(torch.tensor([2, 0, 1]), torch.tensor([4, 2, 1]))
    ref = -torch.nn.functional.ctc_loss(
        lp[[1, 0, 0]].transpose(0, 1),
        torch.tensor([[4], [2], [1]]),
        lens[[1, 0, 0]],
        torch.ones(3, dtype=torch.long),
        blank=BLANK,
        reduction="none",
    )
    torch.testing.assert_close(scorer.full_scores(), ref, atol=1e-4, rtol=1e-4)
    # A token outside a row's candidates (a dead hypothesis the beam carries when the
    # vocabulary is smaller than the beam) leaves that row dead (-inf), the others untouched.
    scorer.extend(torch.tensor([[1], [2], [3]]))
    scorer.advance(torch.tensor([0, 1]), torch.tensor([5, 2]))
    full = scorer.full_scores()
    assert full[0] == float("-inf") and torch.isfinite(full[1])


def test_joint_search_with_a_beam_wider_than_the_vocabulary():
    """Beam 10 over 8 tokens: the beam holds dead rows from the first step (this raised)."""
    from casnat.config import ModelConfig
    from casnat.decode.runner import DecodeOptions, decode_batch
    from casnat.models.asr import ASRModel
    from casnat.testing import tiny_parts

    enc, at, nat = tiny_parts(d_model=32, ffn_dim=64, conv_kernel=5, subsampling_channels=8)
    torch.manual_seed(0)
    cfg = ModelConfig(type="cassnat", encoder=enc, nat_decoder=nat, at_decoder=at)
    model = ASRModel(cfg, vocab_size=8).eval()
    feats, lens = torch.randn(2, 60, 80), torch.tensor([60, 40])
    with torch.no_grad():
        hyps = decode_batch(model, feats, lens, DecodeOptions(mode="joint_ctc_at", beam=10))
    assert len(hyps) == 2 and all(isinstance(t, int) for h in hyps for t in h.tokens)


def _search(dec, mem, mask, lp, lens, beam, ctc_weight, **kw):
    return joint_beam_search(
        dec,
        mem,
        mask,
        lp,
        beam=beam,
        sos=EOS,
        eos=EOS,
        blank=BLANK,
        max_len=lens,
        ctc_weight=ctc_weight,
        **kw,
    )


@pytest.mark.parametrize("beam", [1, 3])
def test_ctc_weight_zero_is_at_beam(beam):
    n, t = 3, 9
    lp, lens = _ctc_inputs(n, t, seed=0)
    mem, mask = _memory(n, t, lens, seed=0)
    dec = _decoder()
    # a small pre-beam (= beam): still nothing the beam could keep is lost
    joint = _search(dec, mem, mask, lp, lens, beam, 0.0, pre_beam=beam)
    at = at_beam_search(dec, mem, mask, beam=beam, sos=EOS, eos=EOS, max_len=lens)
    assert [[h.tokens for h in nb] for nb in joint] == [[h.tokens for h in nb] for nb in at]
    for nb_j, nb_a in zip(joint, at, strict=True):
        for hj, ha in zip(nb_j, nb_a, strict=True):
            assert hj.score == pytest.approx(ha.score, abs=1e-5)
            assert hj.confidences == pytest.approx(ha.confidences, abs=1e-6)


def test_ctc_weight_one_finds_the_ctc_prefix_beams_best():
    n, t = 4, 12
    lp, lens = _ctc_inputs(n, t, seed=2, peaky=4.0)
    mem, mask = _memory(n, t, lens, seed=2)
    joint = _search(_decoder(), mem, mask, lp, lens, 6, 1.0)
    ctc = ctc_prefix_beam_search(lp, lens, beam=16, blank=BLANK, token_topk=V)
    for i, (nb_j, nb_c) in enumerate(zip(joint, ctc, strict=True)):
        best = nb_j[0].tokens
        assert best == nb_c[0].tokens
        # With λ = 1 a finished hypothesis scores its exact CTC labelling log-prob (the prefix
        # beam's own score can be a little lower: paths through pruned prefixes are lost).
        ref = -torch.nn.functional.ctc_loss(
            lp[i : i + 1].transpose(0, 1),
            torch.tensor([best]),
            lens[i : i + 1],
            torch.tensor([len(best)]),
            blank=BLANK,
            reduction="sum",
        )
        assert nb_j[0].score == pytest.approx(float(ref), abs=1e-4)
        assert nb_j[0].score >= nb_c[0].score - 1e-5


def test_batched_equals_one_utterance_at_a_time():
    n, t = 3, 10
    lp, lens = _ctc_inputs(n, t, seed=4, peaky=2.0)
    mem, mask = _memory(n, t, lens, seed=4)
    dec = _decoder(1)
    batched = _search(dec, mem, mask, lp, lens, 3, 0.3)
    for i in range(n):
        ti = int(lens[i])
        (one,) = _search(
            dec,
            mem[i : i + 1, :ti],
            mask[i : i + 1, :ti],
            lp[i : i + 1, :ti],
            lens[i : i + 1],
            3,
            0.3,
        )
        assert [h.tokens for h in one] == [h.tokens for h in batched[i]]
        assert [h.score for h in one] == pytest.approx([h.score for h in batched[i]], abs=1e-4)


def test_weights_outside_unit_interval_are_a_named_error():
    with pytest.raises(UserError, match="--ctc-weight"):
        DecodeOptions(mode="joint_ctc_at", ctc_weight=1.5)
    with pytest.raises(UserError, match="--at-weight"):
        DecodeOptions(mode="attention_rescoring", at_weight=-0.1)


def test_ctc_timing_of_joint_hypotheses_follows_the_forced_alignment():
    from casnat.decode.joint import with_ctc_timing
    from casnat.decode.results import Hypothesis

    path = [0, 2, 2, 0, 3, 0, 0, 3, 0]  # tokens 2 (frames 1-2), 3 (4), 3 (7)
    lp = torch.full((2, 9, V), -8.0)
    lp[0, torch.arange(9), torch.tensor(path)] = 0.0
    lp[1, :, BLANK] = 0.0
    lp = lp.log_softmax(-1)
    hyps = [
        Hypothesis([2, 3, 3], -1.0, confidences=[0.5, 0.6, 0.7]),
        Hypothesis([1] * 10, -2.0),
    ]  # 10 tokens do not fit 9 frames: no timing
    got = with_ctc_timing(hyps, lp, torch.tensor([9, 9]), BLANK)
    assert (got[0].token_starts, got[0].token_ends) == ([1, 4, 7], [2, 4, 7])
    assert got[0].confidences == hyps[0].confidences and got[0].score == hyps[0].score
    assert got[1] == hyps[1]
