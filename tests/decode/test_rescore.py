"""Attention rescoring of the CTC n-best, the ESA ranker's CTC term, and the new modes' plumbing
(CLI listing, runner) on a random-weight tiny CASS-NAT model with an AT decoder."""

from __future__ import annotations

import pytest
import torch

from casnat.cli import main
from casnat.config import save_config
from casnat.decode.cassnat import _ctc_log_prob, cassnat_search
from casnat.decode.ctc import ctc_prefix_beam_search
from casnat.decode.modes import DecodeOptions
from casnat.decode.rescore import at_sequence_log_probs, attention_rescoring
from casnat.decode.runner import decode_batch
from casnat.models.asr import ASRModel
from casnat.nn.masks import lengths_to_mask
from casnat.testing import SYNTH_V, overfit_config, random_log_probs, synthetic_batch, tiny_config


@pytest.fixture(scope="module")
def model_inputs():
    """A random tiny model, its encoder output and *peaky random* CTC posteriors (a random CTC
    head is nearly uniform: its n-best would be all-blank ties)."""
    torch.manual_seed(0)
    model = ASRModel(overfit_config(), SYNTH_V).eval()
    feats, lens, _, _ = synthetic_batch()
    with torch.no_grad():
        enc = model.encode(feats, lens)
    t = enc.out.shape[1]
    lp = random_log_probs(len(lens), t, SYNTH_V, seed=1, peaky=2.0)
    lp[:, :, model.eos_id] = -30.0
    return model, enc.out, enc.lens, lp.log_softmax(-1)


def _rescore(model, enc_out, enc_lens, lp, at_weight, nbest=5):
    mask = lengths_to_mask(enc_lens, enc_out.shape[1])
    return attention_rescoring(
        model.at_decoder, enc_out, mask, lp, nbest=nbest, at_weight=at_weight, blank=model.blank_id
    )


def test_at_weight_zero_is_the_ctc_nbest_best_with_its_timing(model_inputs):
    model, enc_out, enc_lens, lp = model_inputs
    got = _rescore(model, enc_out, enc_lens, lp, 0.0)
    ref = [nb[0] for nb in ctc_prefix_beam_search(lp, enc_lens, beam=5, blank=model.blank_id)]
    assert got == ref  # tokens, score, frames and confidences


def test_batched_at_scores_equal_one_hypothesis_at_a_time(model_inputs):
    model, enc_out, enc_lens, lp = model_inputs
    dec = model.at_decoder
    mask = lengths_to_mask(enc_lens, enc_out.shape[1])
    hyps = [[], [2, 3], [4, 4, 2, 3], [3]]
    utt = torch.tensor([0, 1, 1, 4])
    batched = at_sequence_log_probs(dec, hyps, enc_out, mask, utt)
    for h, u, s in zip(hyps, utt.tolist(), batched.tolist(), strict=True):
        t = int(enc_lens[u])
        with torch.no_grad():
            mean = dec.score(
                torch.tensor([h or [-1]]),
                torch.tensor([len(h)]),
                enc_out[u : u + 1, :t],
                mask[u : u + 1, :t],
            )
        assert s == pytest.approx(float(mean) * (len(h) + 1), abs=1e-4)


def test_at_weight_one_picks_the_at_best_of_the_nbest(model_inputs):
    model, enc_out, enc_lens, lp = model_inputs
    mask = lengths_to_mask(enc_lens, enc_out.shape[1])
    got = _rescore(model, enc_out, enc_lens, lp, 1.0)
    nbests = ctc_prefix_beam_search(lp, enc_lens, beam=5, blank=model.blank_id)
    for u, (hyp, nb) in enumerate(zip(got, nbests, strict=True)):
        att = at_sequence_log_probs(
            model.at_decoder, [h.tokens for h in nb], enc_out, mask, torch.full((len(nb),), u)
        )
        assert hyp.tokens == nb[int(att.argmax())].tokens
        assert hyp.score == pytest.approx(float(att.max()), abs=1e-4)
        assert hyp.token_starts == nb[int(att.argmax())].token_starts  # CTC timing is kept


def test_rescoring_batched_equals_per_utterance(model_inputs):
    model, enc_out, enc_lens, lp = model_inputs
    batched = _rescore(model, enc_out, enc_lens, lp, 0.5)
    for i in range(len(enc_lens)):
        t = int(enc_lens[i])
        (one,) = _rescore(
            model, enc_out[i : i + 1, :t], enc_lens[i : i + 1], lp[i : i + 1, :t], 0.5
        )
        assert one.tokens == batched[i].tokens
        assert one.score == pytest.approx(batched[i].score, abs=1e-4)


def test_esa_ctc_term(model_inputs):
    """w = 0 is today's ranking; w = 1 keeps the sample CTC likes best, so never one CTC likes
    less (per token) than the greedy path's hypothesis, which is always among the samples."""
    model, enc_out, enc_lens, lp = model_inputs
    kw = dict(num_samples=6, threshold=1.01, ranker="at", seed=0)
    base = cassnat_search(model, enc_out, enc_lens, lp, **kw)
    assert cassnat_search(model, enc_out, enc_lens, lp, ctc_weight=0.0, **kw) == base
    ctc_best = cassnat_search(model, enc_out, enc_lens, lp, ctc_weight=1.0, **kw)
    greedy = cassnat_search(model, enc_out, enc_lens, lp, num_samples=1)

    def per_token(h, u):
        t = int(enc_lens[u])
        toks = torch.tensor([h.tokens]) if h.tokens else torch.zeros(1, 0, dtype=torch.long)
        s = _ctc_log_prob(
            lp[u : u + 1, :t],
            enc_lens[u : u + 1],
            toks,
            torch.tensor([len(h.tokens)]),
            model.blank_id,
            model.eos_id,
        )
        return float(s) / (len(h.tokens) + 1)

    for u, (c, g) in enumerate(zip(ctc_best, greedy, strict=True)):
        assert per_token(c, u) >= per_token(g, u) - 1e-4


def test_ctc_log_prob_drops_blank_and_eos_positions():
    lp = random_log_probs(1, 9, SYNTH_V, seed=3)
    tokens = torch.tensor([[2, 0, 3, SYNTH_V - 1, -1]])
    got = _ctc_log_prob(lp, torch.tensor([9]), tokens, torch.tensor([4]), 0, SYNTH_V - 1)
    ref = -torch.nn.functional.ctc_loss(
        lp.transpose(0, 1),
        torch.tensor([[2, 3]]),
        torch.tensor([9]),
        torch.tensor([2]),
        reduction="none",
    )
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("mode", ["joint_ctc_at", "attention_rescoring"])
def test_modes_run_through_decode_batch(model_inputs, mode):
    model = model_inputs[0]
    feats, lens, _, _ = synthetic_batch()
    hyps = decode_batch(model, feats[:2], lens[:2], DecodeOptions(mode=mode, beam=2))
    assert len(hyps) == 2 and all(all(0 < c <= 1 for c in h.confidences) for h in hyps)


def test_new_modes_in_list_modes(tmp_path, capsys):
    exp = tmp_path / "exp"
    exp.mkdir()
    save_config(tiny_config(tmp_path, "cassnat"), exp / "config.yaml")
    assert main(["decode", "--exp-dir", str(exp), "--list-modes", "--recipe-defaults"]) == 0
    listed = capsys.readouterr().out.split()
    assert "joint_ctc_at" in listed and "attention_rescoring" in listed
    save_config(tiny_config(tmp_path, "ctc"), exp / "config.yaml")  # no AT decoder: not listed
    assert main(["decode", "--exp-dir", str(exp), "--list-modes"]) == 0
    assert "joint_ctc_at" not in capsys.readouterr().out.split()
