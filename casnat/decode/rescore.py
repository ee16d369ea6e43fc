"""Attention rescoring: the CTC prefix beam's n-best, re-ranked by the AT decoder (WeNet's mode).

CTC proposes, the AT decoder judges: the n-best labellings of the CTC prefix beam search are
scored teacher-forced by the AT decoder (each with its eos, all n-best of all utterances in one
batched forward), and each utterance keeps the one with the best

    at_weight · log P_att(y, eos | x)  +  (1 - at_weight) · log P_ctc(y | x).

Both are sums over the hypothesis (not per-token means), so neither favours short outputs over
the other. ``at_weight = 0`` is the CTC prefix beam's best; WeNet's default (ctc_weight 0.5 next
to an attention weight of 1) is ``at_weight = 2/3``. casnat's default, 0.3, was tuned on FSDD dev
(0.1-0.3 beat CTC greedy there, 0.5 did not: this project's CTC head is much stronger than its AT
decoder). Unlike free-running AT decoding, the output can only be a CTC candidate, so the AT's
early eos or loops cannot happen; and the hypothesis
keeps the CTC prefix beam's token timing and confidences.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from casnat.decode.ctc import ctc_prefix_beam_search
from casnat.decode.results import Hypothesis
from casnat.models.at_decoder import ATDecoder, add_sos_eos
from casnat.nn.attention import index_kv
from casnat.nn.masks import lengths_to_mask
from casnat.profiling import phase

__all__ = ["at_sequence_log_probs", "attention_rescoring"]


@torch.no_grad()
def at_sequence_log_probs(
    decoder: ATDecoder,
    hyps: list[list[int]],
    memory: Tensor,
    memory_mask: Tensor,
    hyp_utt: Tensor,
) -> Tensor:
    """Teacher-forced ``log P_att(y, eos | x)`` of each hypothesis, in one batched forward.

    Args:
        hyps: R token sequences (without sos/eos; empty allowed).
        memory: ``(N, T, D)`` encoder output, memory_mask ``(N, T)``.
        hyp_utt: ``(R,)`` utterance of each hypothesis; the source keys/values are projected once
            per utterance and indexed per hypothesis.

    Returns:
        ``(R,)`` float32 sums of token log-probs including the eos.
    """
    device = memory.device
    lens = torch.tensor([len(h) for h in hyps], dtype=torch.long, device=device)
    width = max(1, int(lens.max())) if len(hyps) else 1
    tokens = torch.full((len(hyps), width), -1, dtype=torch.long, device=device)
    for i, h in enumerate(hyps):
        if h:
            tokens[i, : len(h)] = torch.tensor(h, dtype=torch.long, device=device)
    with phase("source keys/values (once per utterance)"):
        mem_kv = index_kv(decoder.memory_kv(memory), hyp_utt)
    ys_in, ys_out = add_sos_eos(tokens, lens, decoder.sos, decoder.eos)
    mask = lengths_to_mask(memory_mask.sum(1).index_select(0, hyp_utt), memory.shape[1])
    with phase("AT rescoring"):
        lp = decoder(ys_in, lens + 1, memory, mask, mem_kv)  # (R, L, V)
    valid = ys_out >= 0
    picked = lp.gather(-1, ys_out.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * valid).sum(1)


@torch.no_grad()
def attention_rescoring(
    decoder: ATDecoder,
    memory: Tensor,
    memory_mask: Tensor,
    ctc_log_probs: Tensor,
    nbest: int = 10,
    at_weight: float = 0.3,
    blank: int = 0,
) -> list[Hypothesis]:
    """Best hypothesis per utterance after AT rescoring of the CTC n-best (module docstring).

    Args:
        decoder: the model's AT decoder.
        memory: ``(N, T, D)`` encoder output; memory_mask ``(N, T)`` bool.
        ctc_log_probs: ``(N, T, V)`` CTC log-posteriors.
        nbest: CTC prefix beam size = hypotheses rescored per utterance.
        at_weight: the AT share of the score, in ``[0, 1]``.

    Returns:
        N hypotheses; ``score`` = the combined score, timing and confidences from the CTC beam.
    """
    if not 0.0 <= at_weight <= 1.0:
        raise ValueError(f"at_weight must be in [0, 1], got {at_weight}")
    lens = memory_mask.sum(1)
    with phase("CTC prefix beam"):
        nbests = ctc_prefix_beam_search(ctc_log_probs, lens, beam=nbest, blank=blank)
    flat = [h for nb in nbests for h in nb]
    utt = torch.tensor([i for i, nb in enumerate(nbests) for _ in nb], device=memory.device)
    ctc_scores = torch.tensor([h.score for h in flat], dtype=torch.float64)  # exact as given
    if at_weight == 0.0:  # the AT has no say: skip its forward (and 0 * -inf = NaN)
        total = ctc_scores
    else:
        att = at_sequence_log_probs(decoder, [h.tokens for h in flat], memory, memory_mask, utt)
        att = att.double().cpu()
        total = att if at_weight == 1.0 else at_weight * att + (1 - at_weight) * ctc_scores
    out: list[Hypothesis] = []
    offset = 0
    for nb in nbests:
        scores = total[offset : offset + len(nb)]
        best = int(scores.argmax())  # ties: the CTC beam's order (first = higher CTC score)
        out.append(dataclasses.replace(nb[best], score=float(scores[best])))
        offset += len(nb)
    return out
