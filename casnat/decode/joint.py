"""Joint CTC/attention beam search: the AT beam search with CTC prefix scores in every step.

The AT decoder alone tends to end a hypothesis too early or to loop (it has no notion of how much
audio is left); CTC is monotonic and knows, per frame, what has been said. Scoring every
extension ``c`` of a prefix ``g`` by

    (1 - λ) · log P_att(c | g, x)  +  λ · (log P_ctc(g + c ... | x) - log P_ctc(g ... | x))

and the end of sentence by ``λ · (log P_ctc(g | x) - log P_ctc(g ... | x))`` makes a finished
hypothesis' score ``(1 - λ) · log P_att(g, eos) + λ · log P_ctc(g | x)`` (Watanabe et al. 2017;
ESPnet's default decoding, there with λ = 0.3; casnat's default is 0.7, tuned on FSDD dev where
the CTC head is the stronger one). A prefix that is long or short for the
audio gets a low CTC score, which is what curbs early ends and loops.

As in ESPnet, CTC scores only each row's ``pre_beam`` best attention candidates (``1.5 × beam``
by default, every token when λ = 1 or the vocabulary is that small): the CTC recursion costs
``O(T)`` per candidate, and a token the attention gives no chance would lose anyway.

The search itself is :func:`casnat.decode.at_beam.at_beam_search` (batched over utterances x
beams, KV-cached decoder) with :class:`JointScorer` plugged in; λ = 0 gives its hypotheses
exactly (the pre-beam then never removes a token the beam could keep).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from casnat.align import ctc_viterbi_align
from casnat.align.segments import token_runs
from casnat.decode.at_beam import StepDecoder, at_beam_search
from casnat.decode.ctc_prefix_score import CTCPrefixScorer
from casnat.decode.results import Hypothesis
from casnat.profiling import phase

__all__ = ["JointScorer", "joint_beam_search", "pre_beam_size", "with_ctc_timing"]

_NEG_INF = float("-inf")


def pre_beam_size(beam: int, vocab: int, ctc_weight: float) -> int:
    """Attention candidates per row that get a CTC score: ``ceil(1.5 beam)``, at least ``beam``
    (so λ = 0 loses nothing the beam could take), all ``vocab - 1`` non-eos tokens when λ = 1
    (the attention then has no say in what is pruned)."""
    if ctc_weight >= 1.0:
        return vocab - 1
    return min(vocab - 1, max(beam, math.ceil(1.5 * beam)))


def _mix(att: Tensor, ctc: Tensor, ctc_weight: float) -> Tensor:
    """``(1 - λ) att + λ ctc`` without ``0 · -inf = NaN`` at the ends of the range."""
    if ctc_weight == 0.0:
        return att
    if ctc_weight == 1.0:
        return ctc
    return (1.0 - ctc_weight) * att + ctc_weight * ctc


class JointScorer:
    """The :class:`casnat.decode.at_beam.ExtensionScorer` of joint CTC/attention decoding.

    Args:
        ctc: the CTC prefix scorer over the search's rows (utterance-major, ``beam`` per utt).
        ctc_weight: λ in ``[0, 1]``.
        pre_beam: attention candidates per row that are CTC-scored (see :func:`pre_beam_size`).
        eos: end-of-sentence id (scored by the CTC full-sequence probability).
    """

    def __init__(self, ctc: CTCPrefixScorer, ctc_weight: float, pre_beam: int, eos: int) -> None:
        if not 0.0 <= ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        self.ctc = ctc
        self.ctc_weight = ctc_weight
        self.pre_beam = pre_beam
        self.eos = eos

    def score(self, ys: Tensor, logp: Tensor) -> Tensor:
        m, v = logp.shape
        no_eos = logp.clone()
        no_eos[:, self.eos] = _NEG_INF
        if self.pre_beam >= v - 1:
            ids = torch.arange(v, device=logp.device)
            cand = ids[ids != self.eos].expand(m, v - 1)
        else:
            cand = no_eos.topk(self.pre_beam, dim=1).indices  # (M, K)
        with phase("CTC prefix scores"):
            ctc_ext, ctc_eos = self.ctc.extension_scores(cand)
        out = torch.full_like(logp, _NEG_INF)
        out.scatter_(1, cand, _mix(logp.gather(1, cand), ctc_ext, self.ctc_weight))
        out[:, self.eos] = _mix(logp[:, self.eos], ctc_eos, self.ctc_weight)
        return out

    def advance(self, sel: Tensor, tokens: Tensor) -> None:
        self.ctc.advance(sel, tokens)


@torch.no_grad()
def joint_beam_search(
    decoder: StepDecoder,
    memory: Tensor,
    memory_mask: Tensor,
    ctc_log_probs: Tensor,
    beam: int,
    sos: int,
    eos: int,
    blank: int,
    max_len: int | Tensor,
    ctc_weight: float = 0.7,
    length_penalty: float = 0.0,
    pre_beam: int | None = None,
) -> list[list[Hypothesis]]:
    """Joint CTC/attention beam search, batched over utterances and beams.

    Args:
        decoder: AT decoder with the ``step`` contract (``ATDecoder``).
        memory: ``(N, T, D)`` encoder output; memory_mask ``(N, T)`` bool, True = valid.
        ctc_log_probs: ``(N, T, V)`` CTC log-posteriors over the same frames.
        beam: beam size, also the hypotheses returned per utterance.
        sos, eos, blank: symbol ids.
        max_len: maximum output tokens (excluding eos), int or ``(N,)``.
        ctc_weight: λ, the CTC share of each score (0 = the AT beam search, 1 = CTC only).
        length_penalty: as in :func:`at_beam_search`.
        pre_beam: CTC-scored attention candidates per row (default :func:`pre_beam_size`).

    Returns:
        Per utterance, 1 to ``beam`` hypotheses, best first; ``score`` = the weighted sum above
        (length-normalised as in ``at_beam_search``), ``confidences`` = AT token probabilities.
    """
    if ctc_log_probs.shape[:2] != memory.shape[:2]:
        raise ValueError(
            f"ctc_log_probs must be (N, T, V) with (N, T) = {tuple(memory.shape[:2])}, "
            f"got {tuple(ctc_log_probs.shape)}"
        )
    n = memory.shape[0]
    v = ctc_log_probs.shape[-1]
    lens = memory_mask.sum(1)
    row_utt = torch.arange(n, device=memory.device).repeat_interleave(max(beam, 1))
    ctc = CTCPrefixScorer(ctc_log_probs, lens, row_utt, blank=blank)
    k = pre_beam if pre_beam is not None else pre_beam_size(beam, v, ctc_weight)
    scorer = JointScorer(ctc, ctc_weight, k, eos)
    return at_beam_search(
        decoder,
        memory,
        memory_mask,
        beam=beam,
        sos=sos,
        eos=eos,
        max_len=max_len,
        length_penalty=length_penalty,
        scorer=scorer,
    )


def with_ctc_timing(
    hyps: list[Hypothesis], ctc_log_probs: Tensor, lens: Tensor, blank: int
) -> list[Hypothesis]:
    """``hyps`` (one per utterance) with token frames from a forced CTC alignment of their tokens.

    A label-synchronous search knows no frames; the CTC Viterbi path of the chosen tokens gives
    them (first / last frame of each token's run), as the CTC modes have, so transcripts of this
    mode get timestamps too. A hypothesis CTC cannot align (a blank token, too long for its
    frames) keeps empty timing. Scores and confidences are unchanged.
    """
    rows = [i for i, h in enumerate(hyps) if h.tokens and blank not in h.tokens]
    if not rows:
        return hyps
    device = ctc_log_probs.device
    width = max(len(hyps[i].tokens) for i in rows)
    targets = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, i in enumerate(rows):
        targets[r, : len(hyps[i].tokens)] = torch.tensor(hyps[i].tokens)
    idx = torch.tensor(rows, device=device)
    lens_r = lens.to(device).index_select(0, idx)
    tl = torch.tensor([len(hyps[i].tokens) for i in rows], device=device)
    ali, scores = ctc_viterbi_align(
        ctc_log_probs.index_select(0, idx), lens_r, targets.to(device), tl, blank
    )
    runs = token_runs(ali, lens_r, blank)
    counts = runs.counts.tolist()
    starts, ends, ok = runs.starts.tolist(), runs.ends.tolist(), (scores > _NEG_INF).tolist()
    out = list(hyps)
    offset = 0
    for r, i in enumerate(rows):
        k = counts[r]
        if ok[r] and k == len(hyps[i].tokens):
            out[i] = dataclasses.replace(
                hyps[i],
                token_starts=starts[offset : offset + k],
                token_ends=ends[offset : offset + k],
            )
        offset += k
    return out
