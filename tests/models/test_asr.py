"""ASRModel: which heads exist per model type, loss parts, and the NAT loss on Viterbi segments."""

from __future__ import annotations

import math

import pytest
import torch

from casnat.config import ModelConfig
from casnat.models.asr import ASRModel, label_smoothing_loss
from casnat.testing import tiny_parts

ENC, AT, NAT = tiny_parts(
    d_model=32, ffn_dim=64, conv_kernel=5, subsampling_channels=8, num_mixed_layers=2
)


def _batch():
    torch.manual_seed(0)
    feats = torch.randn(3, 60, 80)
    feat_lens = torch.tensor([60, 50, 40])
    tokens = torch.tensor([[2, 3, 3], [4, 5, -1], [6, -1, -1]])
    return feats, feat_lens, tokens, torch.tensor([3, 2, 1])


@pytest.mark.parametrize(
    "cfg,has_at,has_nat",
    [
        (ModelConfig(type="ctc", encoder=ENC), False, False),
        (ModelConfig(type="at", encoder=ENC, at_decoder=AT), True, False),
        (ModelConfig(type="cassnat", encoder=ENC, nat_decoder=NAT), False, True),
        (ModelConfig(type="cassnat", encoder=ENC, nat_decoder=NAT, at_decoder=AT), True, True),
    ],
)
def test_heads_follow_config_and_losses_are_finite(cfg, has_at, has_nat):
    model = ASRModel(cfg, vocab_size=8)
    assert (model.at_decoder is not None) == has_at and (model.nat_decoder is not None) == has_nat
    losses = model(*_batch())
    assert torch.isfinite(losses.total) and losses.num_utts == 3 and losses.num_tokens == 6
    assert (float(losses.at) > 0) == has_at and (float(losses.ce) > 0) == has_nat
    assert float(losses.inter_ctc) > 0
    losses.total.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_missing_decoder_section_is_an_error():
    with pytest.raises(ValueError, match="nat_decoder"):
        ASRModel(ModelConfig(type="cassnat", encoder=ENC), vocab_size=8)
    with pytest.raises(ValueError, match="at_decoder"):
        ASRModel(ModelConfig(type="at", encoder=ENC), vocab_size=8)


def test_unalignable_utterance_is_excluded_from_nat_loss():
    model = ASRModel(ModelConfig(type="cassnat", encoder=ENC, nat_decoder=NAT), vocab_size=8)
    feats = torch.randn(2, 30, 80)  # 30 frames -> 6 encoder frames
    tokens = torch.tensor([[2, 3, 4, 5, 6, 7, 2, 3], [2, -1, -1, -1, -1, -1, -1, -1]])
    losses = model(feats, torch.tensor([30, 30]), tokens, torch.tensor([8, 1]))
    assert losses.num_unaligned == 1 and torch.isfinite(losses.total)


def test_cmvn_is_applied_and_saved_with_the_model():
    model = ASRModel(ModelConfig(type="ctc", encoder=ENC), vocab_size=8)
    model.set_cmvn(torch.full((80,), 2.0), torch.full((80,), 4.0))
    state = model.state_dict()
    assert torch.equal(state["cmvn_mean"], torch.full((80,), 2.0))
    torch.testing.assert_close(state["cmvn_istd"], torch.full((80,), 0.25))


def test_label_smoothing_loss_matches_definition():
    logp = torch.log_softmax(torch.randn(1, 2, 5), dim=-1)
    targets = torch.tensor([[1, -1]])
    got = label_smoothing_loss(logp, targets, 0.1)
    want = 0.9 * -logp[0, 0, 1] + 0.1 * -logp[0, 0].mean()
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_losses_and_gradients_stay_finite_under_autocast(dtype):
    """The trainer's AMP wraps this forward in autocast (CUDA); CPU autocast runs the same dtype
    rules here, so masks, the Viterbi alignment on reduced-precision posteriors and the losses are
    exercised without a GPU."""
    cfg = ModelConfig(type="cassnat", encoder=ENC, nat_decoder=NAT, at_decoder=AT)
    torch.manual_seed(0)
    model = ASRModel(cfg, vocab_size=8)
    batch = _batch()
    ref = model(*batch)
    with torch.autocast("cpu", dtype=dtype):
        losses = model(*batch)
    for part in ("total", "ctc", "inter_ctc", "ce", "inter_ce", "at"):
        got, want = float(getattr(losses, part).detach()), float(getattr(ref, part).detach())
        assert math.isfinite(got), part
        assert abs(got - want) <= 0.05 * abs(want) + 0.05, (part, got, want)
    losses.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
