"""casnat.models.cassnat: the one CASS-NAT forward equals the parts composed by hand (what training
and decoding each did before), in the training loss too, and per-utterance keys/values equal
per-path ones."""

from __future__ import annotations

import pytest
import torch

from casnat.align import alignment_to_segments, ctc_viterbi_align, sample_alignments
from casnat.config import ModelConfig
from casnat.models.asr import ASRModel, label_smoothing_loss
from casnat.nn.masks import lengths_to_mask
from casnat.testing import tiny_parts

ENC, AT, NAT = tiny_parts(
    d_model=32, ffn_dim=64, conv_kernel=5, subsampling_channels=8, num_mixed_layers=2
)


def _model_and_batch():
    torch.manual_seed(0)
    cfg = ModelConfig(type="cassnat", encoder=ENC, nat_decoder=NAT)
    model = ASRModel(cfg, vocab_size=8).eval()  # dropout 0 anyway; eval for BatchNorm
    feats = torch.randn(3, 70, 80)
    batch = (feats, torch.tensor([70, 55, 40]), torch.tensor([[2, 3, 3], [4, 5, -1], [6, -1, -1]]),
             torch.tensor([3, 2, 1]))
    return model, batch


def _by_hand(model, enc_out, enc_lens, paths, with_inter=True):
    """alignment -> segments -> TAE -> NAT decoder, composed from the parts."""
    nd = model.cfg.nat_decoder
    segs = alignment_to_segments(paths, enc_lens, blank=0, left_trigger=nd.left_trigger,
                                 right_trigger=nd.right_trigger)
    pos = torch.arange(segs.trigger_mask.size(1)).unsqueeze(0)
    tae_mask = pos <= segs.token_lens.unsqueeze(1)
    tae = model.tae(enc_out, segs.trigger_mask)
    out = model.nat_decoder(tae, tae_mask, enc_out, lengths_to_mask(enc_lens, paths.size(1)),
                            with_inter=with_inter)
    return segs, tae_mask, out


def test_nat_forward_is_the_parts_composed():
    model, (feats, lens, _, _) = _model_and_batch()
    with torch.no_grad():
        enc = model.encode(feats, lens)
        paths = model.ctc(enc.out).argmax(-1)
        for with_inter in (True, False):
            fwd = model.nat_forward(enc.out, enc.lens, paths, with_inter=with_inter)
            segs, tae_mask, out = _by_hand(model, enc.out, enc.lens, paths, with_inter)
            assert torch.equal(fwd.segments.trigger_mask, segs.trigger_mask)
            assert torch.equal(fwd.segments.tokens, segs.tokens)
            assert torch.equal(fwd.tae_mask, tae_mask)
            assert torch.equal(fwd.output.log_probs, out.log_probs)
            assert (fwd.output.inter_log_probs is None) == (not with_inter)
    # the trigger frames come from the config: a wider segment changes the mask
    assert int(fwd.segments.trigger_mask.sum()) > int(
        alignment_to_segments(paths, enc.lens, left_trigger=0, right_trigger=0).trigger_mask.sum()
    )


def test_training_loss_is_the_nat_forward_on_the_viterbi_alignment():
    """The NAT CE of ``forward`` equals the CE of the by-hand path on the Viterbi alignment to
    the reference, bit for bit."""
    model, (feats, lens, tokens, token_lens) = _model_and_batch()
    losses = model(feats, lens, tokens, token_lens)
    with torch.no_grad():
        enc = model.encode(feats, lens)
        lp = model.ctc(enc.out)
        ali, _ = ctc_viterbi_align(lp.float(), enc.lens, tokens.clamp(min=0), token_lens)
        _, _, out = _by_hand(model, enc.out, enc.lens, ali)
    n, u1 = tokens.size(0), out.log_probs.size(1)
    ys = torch.full((n, u1), -1)
    for i, u in enumerate(token_lens.tolist()):
        ys[i, :u] = tokens[i, :u]
        ys[i, u] = model.eos_id
    ls = model.cfg.loss.label_smoothing
    assert torch.equal(losses.ce, label_smoothing_loss(out.log_probs, ys, ls) / n)
    assert torch.equal(losses.inter_ce, label_smoothing_loss(out.inter_log_probs, ys, ls) / n)


def test_per_utterance_source_kv_equals_per_path_encoder_output():
    model, (feats, lens, _, _) = _model_and_batch()
    with torch.no_grad():
        enc = model.encode(feats, lens)
        paths = sample_alignments(model.ctc(enc.out), enc.lens, 4, 1.01, seed=1)  # (B, K, T)
        b, k, t = paths.shape
        utt = torch.arange(b).repeat_interleave(k)
        flat, lens_r = paths.reshape(b * k, t), enc.lens.index_select(0, utt)
        ref = model.nat_forward(enc.out.index_select(0, utt), lens_r, flat)
        got = model.nat_forward(enc.out, lens_r, flat, model.nat_source_kv(enc.out).index(utt))
    assert torch.equal(got.segments.tokens, ref.segments.tokens)
    torch.testing.assert_close(got.output.log_probs, ref.output.log_probs, rtol=1e-4, atol=1e-5)


def test_a_model_without_the_nat_decoder_says_so():
    model = ASRModel(ModelConfig(type="ctc", encoder=ENC), vocab_size=8)
    with pytest.raises(ValueError, match="no CASS-NAT decoder"):
        model.nat_source_kv(torch.zeros(1, 4, 32))
