"""Autoregressive (AT) decoder searches: batched beam search and greedy search.

Both drive any object with the ``step`` contract of :class:`casnat.models.at_decoder.ATDecoder`
(structural typing, :class:`StepDecoder`), so the search has no import of the model code and
tests can use a small fake decoder::

    step(ys_prefix (M, l) int64 starting with sos, memory (M, T, D), memory_mask (M, T) bool,
         cache: list[Tensor] | None) -> (log_probs_next (M, V), new_cache: list[Tensor])

A decoder that also has ``memory_kv(memory) -> list of (keys, values)`` (the real one) gets
them once per search, indexed per row, as ``step(..., mem_kv=...)``: the encoder output is then
not re-projected at every step.

Cache tensors are batch-first, so reordering beams after a top-k is one ``index_select(0, idx)``
per tensor; the same index also drops the rows of utterances that have finished, so the batch
shrinks as utterances end.

Scores: a hypothesis' raw score is the sum of its token log-probs including eos; the reported
score is ``raw / (len(tokens) + 1) ** length_penalty`` (0 = raw sum, 1 = mean per token).
Hypothesis ``confidences`` are the per-token probabilities ``exp(log p(token | prefix))``;
AT hypotheses carry no frame timing.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import torch
from torch import Tensor

from casnat.decode.results import Hypothesis
from casnat.nn.attention import index_kv
from casnat.profiling import phase

__all__ = ["ExtensionScorer", "StepDecoder", "at_beam_search", "at_greedy_search"]

logger = logging.getLogger(__name__)

_NEG_INF = float("-inf")


class StepDecoder(Protocol):
    """What the searches need from an AT decoder (see the module docstring for shapes)."""

    def step(
        self, ys_prefix: Tensor, memory: Tensor, memory_mask: Tensor, cache: list[Tensor] | None
    ) -> tuple[Tensor, list[Tensor]]: ...


class ExtensionScorer(Protocol):
    """Optional re-scoring of each beam step (joint CTC/attention decoding plugs in here).

    ``score`` turns the decoder's ``(M, V)`` next-token log-probs of the live rows into the score
    increments the search ranks by (-inf = not a candidate); ``advance`` then follows the
    search's choice: rows ``sel`` of the previous step, each extended by ``tokens``.
    """

    def score(self, ys: Tensor, logp: Tensor) -> Tensor: ...

    def advance(self, sel: Tensor, tokens: Tensor) -> None: ...


def _max_lens(max_len: int | Tensor, n: int) -> list[int]:
    if isinstance(max_len, Tensor):
        if max_len.shape != (n,):
            raise ValueError(f"max_len tensor must have shape ({n},), got {tuple(max_len.shape)}")
        out = [int(x) for x in max_len.tolist()]
    else:
        out = [int(max_len)] * n
    if any(m < 0 for m in out):
        raise ValueError(f"max_len must be >= 0, got {out}")
    return out


def _check_memory(memory: Tensor, memory_mask: Tensor) -> None:
    if memory.dim() != 3:
        raise ValueError(f"memory must be (N, T, D), got shape {tuple(memory.shape)}")
    if memory_mask.shape != memory.shape[:2]:
        raise ValueError(f"memory_mask must be (N, T) = {tuple(memory.shape[:2])}, "
                         f"got {tuple(memory_mask.shape)}")


def _norm(raw: float, num_tokens: int, length_penalty: float) -> float:
    """Length-normalized score; the +1 counts the eos."""
    return raw / float(num_tokens + 1) ** length_penalty if length_penalty else raw


@torch.no_grad()
def at_beam_search(
    decoder: StepDecoder,
    memory: Tensor,
    memory_mask: Tensor,
    beam: int,
    sos: int,
    eos: int,
    max_len: int | Tensor,
    length_penalty: float = 0.0,
    exact_stop: bool = False,
    scorer: ExtensionScorer | None = None,
) -> list[list[Hypothesis]]:
    """Beam search over a step-wise AT decoder, batched over utterances and beams.

    All ``N * beam`` rows are decoded together in one ``decoder.step`` call per output
    position. Per step, each utterance takes the ``beam`` best continuations among its
    ``beam * V`` candidates, excluding eos; an eos candidate whose score ranks within the
    ``beam`` best of all candidates ends a hypothesis, kept in the utterance's finished list.
    An utterance stops when it has ``beam`` finished hypotheses and no live one can still beat
    the worst of them, or when it reaches ``max_len`` tokens, where eos is forced. Without length
    normalization that bound is exact (raw scores only fall as a hypothesis grows). With it, a
    longer hypothesis may still climb, so the exact bound has to assume the longest one
    (``max_len``) and rarely stops early; by default the bound then uses the live hypotheses'
    current length instead (the usual practice, as in fairseq and Hugging Face), and
    ``exact_stop=True`` keeps the exact one.

    Args:
        decoder: object with the ``step`` contract (e.g. ``ATDecoder``).
        memory: ``(N, T, D)`` encoder output.
        memory_mask: ``(N, T)`` bool, True = valid frame.
        beam: beam size (>= 1), also the number of hypotheses returned per utterance.
        sos: start symbol id fed as the first prefix token.
        eos: end symbol id (removed from the returned tokens).
        max_len: maximum number of output tokens (excluding eos), an int or ``(N,)`` tensor.
        length_penalty: exponent of the length normalization (0 = sum of log-probs).
        exact_stop: with ``length_penalty > 0``, stop only when no live hypothesis can win.
        scorer: optional :class:`ExtensionScorer` whose increments replace the decoder's
            log-probs in the scores (confidences stay the decoder's probabilities). The stopping
            bound stays exact only if its increments are <= 0, as log-probs are.

    Returns:
        Per utterance, 1 to ``beam`` hypotheses sorted by score, best first.
    """
    _check_memory(memory, memory_mask)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if length_penalty < 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    n = memory.shape[0]
    device = memory.device
    max_lens = _max_lens(max_len, n)
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    if n == 0:
        return []

    # Live state: rows = active utterances x beam, utterance-major.
    active = list(range(n))  # original utterance index of each active block of rows
    row_utt = torch.arange(n, device=device).repeat_interleave(beam)  # (M,) index into memory
    mask = memory_mask.index_select(0, row_utt)
    memory_kv = getattr(decoder, "memory_kv", None)
    # With projected keys/values per row the decoder never reads ``memory``, so it is not copied
    # per row (nor shrunk below) for such a decoder.
    if memory_kv is None:
        mem_kv = None
    else:
        with phase("source keys/values (once per utterance)"):
            mem_kv = index_kv(memory_kv(memory), row_utt)
    mem = memory.index_select(0, row_utt) if mem_kv is None else memory
    max_len_active = torch.tensor(max_lens, device=device)  # (A,)
    ys = torch.full((n * beam, 1), sos, dtype=torch.long, device=device)  # (M, l)
    tok_lp = torch.zeros((n * beam, 0), device=device)  # (M, l - 1) float32
    # Only the first beam of each utterance is live at the start (all rows are identical).
    scores = torch.full((n, beam), _NEG_INF, device=device)  # (A, beam) float32
    scores[:, 0] = 0.0
    cache: list[Tensor] | None = None

    for step in range(max(max_lens) + 1):
        a = len(active)
        with phase("AT decoder steps"):
            if mem_kv is None:
                logp, cache = decoder.step(ys, mem, mask, cache)  # (A * beam, V)
            else:
                logp, cache = decoder.step(  # type: ignore[call-arg]
                    ys, mem, mask, cache, mem_kv=mem_kv
                )
        logp = att_logp = logp.float()
        if scorer is not None:
            logp = scorer.score(ys, att_logp)
        v = logp.shape[-1]
        forced = max_len_active <= step  # (A,)
        if bool(forced.any()):
            # At max_len only eos may follow.
            eos_only = torch.full_like(logp, _NEG_INF)
            eos_only[:, eos] = logp[:, eos]
            logp = torch.where(forced.repeat_interleave(beam)[:, None], eos_only, logp)
        cand = (scores.reshape(-1, 1) + logp).reshape(a, beam * v)  # (A, beam * V)

        # eos candidates that rank within the beam best of all candidates end a hypothesis.
        kth = cand.topk(beam, dim=1).values[:, -1:]  # (A, 1)
        eos_scores = cand.view(a, beam, v)[:, :, eos].clone()  # (A, beam)
        ends = (eos_scores >= kth) & (eos_scores > _NEG_INF)

        # Live continuations: the beam best non-eos candidates.
        cand.view(a, beam, v)[:, :, eos] = _NEG_INF
        top_scores, top_idx = cand.topk(beam, dim=1)  # (A, beam)
        src_beam = torch.div(top_idx, v, rounding_mode="floor")
        new_tok = top_idx % v

        # One transfer per step for the bookkeeping done in Python.
        end_pos = ends.nonzero().tolist()
        if end_pos:
            rows = torch.tensor([i * beam + b for i, b in end_pos], device=device)
            ended_ys = ys.index_select(0, rows)[:, 1:].tolist()
            ended_lp = tok_lp.index_select(0, rows).exp().tolist()
            ended_sc = eos_scores[ends].tolist()
            for (i, _), toks, confs, sc in zip(end_pos, ended_ys, ended_lp, ended_sc,
                                               strict=True):
                finished[active[i]].append(Hypothesis(
                    tokens=toks, score=_norm(sc, len(toks), length_penalty), confidences=confs))
        best_live = top_scores[:, 0].tolist()

        keep: list[int] = []  # positions in `active` that continue
        for i, u in enumerate(active):
            fin = finished[u]
            fin.sort(key=lambda h: h.score, reverse=True)
            del fin[beam:]
            if max_lens[u] <= step or best_live[i] == _NEG_INF:
                continue
            if len(fin) == beam:
                # Best score a live hypothesis can still reach: raw scores only fall, and the
                # normalizing length is at most max_len + 1 (exact) or, heuristically, the
                # live hypotheses' length now (step + 1 tokens) plus eos.
                n_tok = max_lens[u] if exact_stop else step + 1
                bound = _norm(best_live[i], n_tok, length_penalty)
                if fin[-1].score >= bound:
                    continue
            keep.append(i)
        if not keep:
            break

        # Reorder (and shrink) all row state with one index.
        keep_t = torch.tensor(keep, device=device)
        base = keep_t[:, None] * beam  # (K, 1)
        sel = (base + src_beam.index_select(0, keep_t)).reshape(-1)  # (K * beam,)
        next_tok = new_tok.index_select(0, keep_t).reshape(-1, 1)
        ys = torch.cat([ys.index_select(0, sel), next_tok], dim=1)
        chosen_lp = att_logp.index_select(0, sel).gather(1, next_tok)  # (K * beam, 1)
        tok_lp = torch.cat([tok_lp.index_select(0, sel), chosen_lp], dim=1)
        scores = top_scores.index_select(0, keep_t)
        max_len_active = max_len_active.index_select(0, keep_t)
        cache = [c.index_select(0, sel) for c in cache]
        if scorer is not None:
            scorer.advance(sel, next_tok.reshape(-1))
        if len(keep) < a:
            rows_keep = (base + torch.arange(beam, device=device)).reshape(-1)
            mask = mask.index_select(0, rows_keep)
            if mem_kv is None:
                mem = mem.index_select(0, rows_keep)
            else:
                mem_kv = index_kv(mem_kv, rows_keep)
        active = [active[i] for i in keep]

    for u, fin in enumerate(finished):
        if not fin:  # only if every continuation had probability 0; keep callers' nb[0] safe
            logger.warning("at_beam_search: utterance %d ended without a hypothesis", u)
            fin.append(Hypothesis(tokens=[], score=_NEG_INF))
    return finished


@torch.no_grad()
def at_greedy_search(
    decoder: StepDecoder,
    memory: Tensor,
    memory_mask: Tensor,
    sos: int,
    eos: int,
    max_len: int | Tensor,
) -> list[Hypothesis]:
    """Greedy AT decoding (argmax per step), batched; the reference for :func:`at_beam_search`.

    Rows keep being decoded until every utterance has produced eos or reached ``max_len``
    tokens (eos forced); tokens after eos are ignored. ``score`` = sum of log-probs incl. eos.

    Args:
        decoder: object with the ``step`` contract.
        memory: ``(N, T, D)`` encoder output; memory_mask ``(N, T)`` bool, True = valid.
        sos, eos: start / end symbol ids.
        max_len: maximum tokens excluding eos, an int or ``(N,)`` tensor.

    Returns:
        ``N`` hypotheses (tokens without sos/eos).
    """
    _check_memory(memory, memory_mask)
    n = memory.shape[0]
    device = memory.device
    max_lens_t = torch.tensor(_max_lens(max_len, n), device=device)  # (N,)
    ys = torch.full((n, 1), sos, dtype=torch.long, device=device)
    tok_lp = torch.zeros((n, 0), device=device)  # (N, l - 1) float32
    done = torch.zeros(n, dtype=torch.bool, device=device)
    lengths = torch.zeros(n, dtype=torch.long, device=device)  # tokens before eos
    cache: list[Tensor] | None = None
    for step in range(int(max_lens_t.max()) + 1 if n else 0):
        with phase("AT decoder steps"):
            logp, cache = decoder.step(ys, memory, memory_mask, cache)  # (N, V)
        logp = logp.float()
        forced = max_lens_t <= step
        lp_eos = logp[:, eos]
        best_lp, best = logp.max(dim=1)
        best = torch.where(forced, torch.full_like(best, eos), best)
        best_lp = torch.where(forced, lp_eos, best_lp)
        best_lp = best_lp.masked_fill(done, 0.0)
        ys = torch.cat([ys, best[:, None]], dim=1)
        tok_lp = torch.cat([tok_lp, best_lp[:, None]], dim=1)
        lengths = lengths + (~done & (best != eos)).long()
        done = done | (best == eos)
        if bool(done.all()):
            break
    ys_l, lp_l, len_l = ys[:, 1:].tolist(), tok_lp.tolist(), lengths.tolist()
    hyps = []
    for toks, lps, length in zip(ys_l, lp_l, len_l, strict=True):
        hyps.append(Hypothesis(
            tokens=toks[:length], score=float(sum(lps[: length + 1])),
            confidences=[math.exp(x) for x in lps[:length]]))
    return hyps
