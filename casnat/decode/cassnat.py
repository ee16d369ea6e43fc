"""CASS-NAT inference: greedy-alignment decoding and error-based sampled alignments (ESA).

Both modes are one batched pass: the alignment(s) cut the encoder output into segments, the TAE
extractor turns each segment into one embedding, and the NAT decoder emits every token at once.
ESA draws K alignments per utterance (sample 0 = the greedy path), decodes all B*K of them in one
batch, and keeps per utterance the hypothesis the ranker likes best: the AT decoder's teacher-forced
mean log-probability when the model has one, else the NAT's own mean log-probability.

The segments -> TAE -> NAT decoder path itself is the model's (:meth:`ASRModel.nat_forward`, the
same forward training uses); this module samples the paths, ranks and collects hypotheses.
Phases for :class:`casnat.profiling.PhaseRecorder`: "alignment sampling", "AT ranker (ESA)" and
the AT ranker's "source keys/values (once per utterance)" here; "segments / trigger mask", "TAE
extractor", "NAT decoder" and the NAT's "source keys/values (once per utterance)" in
:mod:`casnat.models.cassnat`. They do not nest, so their times add up.

Shapes: ``enc_out (B, T, D)``, ``enc_lens (B,)``, ``ctc_log_probs (B, T, V)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from casnat.align import sample_alignments
from casnat.decode.results import Hypothesis
from casnat.models.asr import ASRModel
from casnat.nn.attention import index_kv
from casnat.nn.masks import lengths_to_mask
from casnat.profiling import phase


@dataclass(frozen=True)
class NATResult:
    """Per (utterance, sample) row: argmax tokens, their log-probs and the segment frames."""

    tokens: Tensor  # (R, U) padded -1
    token_lens: Tensor  # (R,)
    token_logp: Tensor  # (R, U) log-prob of each argmax token
    eos_logp: Tensor  # (R,) log-prob of eos at the end-of-sentence position
    starts: Tensor  # (R, U) first frame of each token's CTC run
    ends: Tensor  # (R, U) last frame


def nat_decode_paths(
    model: ASRModel,
    enc_out: Tensor,
    enc_lens: Tensor,
    paths: Tensor,
    enc_index: Tensor | None = None,
) -> NATResult:
    """Decode frame-level CTC paths ``paths (R, T)``; ``enc_lens (R,)``.

    ``enc_out`` is ``(R, T, D)`` aligned with the rows, or, with ``enc_index (R,)``, one row per
    utterance ``(B, T, D)`` and ``enc_index`` the utterance of each path: the source-attention
    keys/values are then projected once per utterance instead of once per path.
    """
    source = None if enc_index is None else model.nat_source_kv(enc_out).index(enc_index)
    fwd = model.nat_forward(enc_out, enc_lens, paths, source, with_inter=False)
    segs, out = fwd.segments, fwd.output
    r = paths.size(0)
    u1 = segs.trigger_mask.size(1)
    pos = torch.arange(u1, device=enc_out.device).unsqueeze(0)
    logp, tok = out.log_probs.max(dim=-1)  # (R, U+1)
    eos_logp = out.log_probs[torch.arange(r, device=enc_out.device), segs.token_lens, model.eos_id]
    u = u1 - 1
    valid = pos[:, :u] < segs.token_lens.unsqueeze(1)
    tokens = torch.where(valid, tok[:, :u], torch.full_like(tok[:, :u], -1))
    return NATResult(
        tokens=tokens,
        token_lens=segs.token_lens,
        token_logp=torch.where(valid, logp[:, :u], torch.zeros_like(logp[:, :u])),
        eos_logp=eos_logp,
        starts=segs.starts[:, :u] if segs.starts.numel() else segs.starts,
        ends=segs.ends[:, :u] if segs.ends.numel() else segs.ends,
    )


def _unique_rows(keys: Tensor) -> tuple[Tensor, Tensor]:
    """First index of each distinct row of ``keys (R, L)`` and, per row, its distinct row's slot.

    ESA samples repeat: every frame above the threshold keeps its argmax, so once a model is
    confident most of the K paths per utterance coincide. Identical paths give identical NAT
    outputs and identical hypotheses give identical ranker scores, so each is computed once.
    """
    _, inverse = torch.unique(keys, dim=0, return_inverse=True)
    n = int(inverse.max()) + 1 if inverse.numel() else 0
    rows = torch.arange(keys.size(0), device=keys.device)
    first = torch.full((n,), keys.size(0), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inverse, rows, reduce="amin")
    return first, inverse


CPU_ESA_MAX_FRAMES = 8192  # sampled paths x frames per ESA group on CPU (tuned on synth_en, fsdd)


@torch.no_grad()
def cassnat_search(
    model: ASRModel,
    enc_out: Tensor,
    enc_lens: Tensor,
    ctc_log_probs: Tensor,
    num_samples: int = 1,
    threshold: float = 0.9,
    ranker: Literal["auto", "at", "nat"] = "auto",
    generator: torch.Generator | None = None,
    dedup: bool = True,
    seed: int | None = None,
    max_frames: int | None | Literal["auto"] = "auto",
    ctc_weight: float = 0.0,
) -> list[Hypothesis]:
    """Best hypothesis per utterance. ``num_samples=1`` is greedy-alignment CASS-NAT; >1 is ESA.

    With ``dedup`` (the default) ESA decodes each distinct sampled path once and ranks each
    distinct hypothesis once; the result is the same as without it (ties go to the lowest sample
    index either way, so sample 0, the greedy path, wins a tie).

    ``generator`` or ``seed`` drive the ESA coin flips (see :func:`sample_alignments`; with
    ``seed`` an utterance's result does not depend on the batch it is in).

    The decoder and ranker run on groups of consecutive utterances whose sampled paths x
    frames (each group cut to its own longest utterance) stay within ``max_frames``, one
    utterance at least (``None``: the whole batch at once). Why: one batch of B*K paths builds
    attention tensors far beyond the CPU caches; on synth_en (B = 32, K = 16, ~80 encoder
    frames) that made ESA's decoder ~1.7x slower per utterance than groups of a few utterances.
    A budget in frames rather than paths keeps short clips in large groups. The encoder and the
    sampling stay batched. Results do not depend on the grouping. ``"auto"`` is 8192 on CPU and
    ``None`` elsewhere: a GPU wants the one large batch.

    ``ctc_weight`` w > 0 ranks ESA's hypotheses by ``(1 - w) · ranker + w · log P_ctc(y | x) /
    (len + 1)``: the CTC forward score of the hypothesis' tokens, per token like the rankers' mean
    log-probs. The ranker judges the tokens, CTC whether they fit the audio's frames.
    """
    if max_frames == "auto":
        max_frames = CPU_ESA_MAX_FRAMES if enc_out.device.type == "cpu" else None
    k = num_samples
    with phase("alignment sampling"):
        paths = sample_alignments(
            ctc_log_probs, enc_lens, num_samples=k, threshold=threshold, generator=generator,
            seed=seed,
        )  # (B, K, T)
    hyps: list[Hypothesis] = []
    for i, j in _groups(enc_lens.tolist(), k, max_frames):
        lens = enc_lens[i:j]
        t = max(1, int(lens.max()))  # this group's longest utterance (>= 1 frame)
        hyps += _search_group(model, enc_out[i:j, :t], lens, paths[i:j, :, :t], ranker, dedup,
                              ctc_log_probs[i:j, :t], ctc_weight)
    return hyps


def _groups(lens: list[int], k: int, max_frames: int | None) -> list[tuple[int, int]]:
    """Consecutive ``[i, j)`` utterance ranges with ``(j - i) * k * max(lens[i:j]) <=
    max_frames`` (a single utterance may exceed it)."""
    if max_frames is None:
        return [(0, len(lens))] if lens else []
    out: list[tuple[int, int]] = []
    i, longest = 0, 0
    for j, n in enumerate(lens):
        longest_j = max(longest, n, 1)
        if j > i and (j + 1 - i) * k * longest_j > max_frames:
            out.append((i, j))
            i, longest_j = j, max(n, 1)
        longest = longest_j
    if i < len(lens):
        out.append((i, len(lens)))
    return out


def _search_group(
    model: ASRModel,
    enc_out: Tensor,
    enc_lens: Tensor,
    paths: Tensor,
    ranker: Literal["auto", "at", "nat"],
    dedup: bool,
    ctc_log_probs: Tensor,
    ctc_weight: float = 0.0,
) -> list[Hypothesis]:
    """:func:`cassnat_search` on ``paths (B, K, T)`` already sampled for these utterances."""
    b, k, t = paths.shape
    flat = paths.reshape(b * k, t)
    utt = torch.arange(b, device=enc_out.device).repeat_interleave(k)  # (B*K,) utterance of a row
    every = torch.arange(b * k, device=enc_out.device)
    # Decoded rows: the distinct (utterance, path) pairs; ``inv`` maps each sample to its row.
    first, inv = _unique_rows(torch.cat([utt[:, None], flat], 1)) if k > 1 and dedup else (
        every, every
    )
    rows_utt = utt.index_select(0, first)
    lens_r = enc_lens.index_select(0, rows_utt)
    res = nat_decode_paths(
        model, enc_out, lens_r, flat.index_select(0, first), None if k == 1 else rows_utt
    )
    n_tok = res.token_lens.clamp(min=0)
    use_at = k > 1 and (ranker == "at" or (ranker == "auto" and model.at_decoder is not None))
    if use_at:
        if model.at_decoder is None:
            raise ValueError("ranker='at' but the model has no AT decoder")
        # Scored rows: the distinct (utterance, token sequence) pairs.
        key = torch.cat([rows_utt[:, None], n_tok[:, None], res.tokens], 1)
        rows = torch.arange(key.size(0), device=key.device)
        h_first, h_inv = _unique_rows(key) if dedup else (rows, rows)
        h_utt = rows_utt.index_select(0, h_first)
        with phase("source keys/values (once per utterance)"):
            mem_kv = model.at_decoder.memory_kv(enc_out)
        with phase("AT ranker (ESA)"):
            h_scores = model.at_decoder.score(
                res.tokens.index_select(0, h_first), n_tok.index_select(0, h_first),
                enc_out, lengths_to_mask(lens_r.index_select(0, h_first), t),
                mem_kv=index_kv(mem_kv, h_utt),
            )
        row_scores = h_scores.index_select(0, h_inv)
    else:
        row_scores = (res.token_logp.sum(1) + res.eos_logp) / (n_tok + 1)
    if k > 1 and ctc_weight > 0.0:
        with phase("CTC ranker (ESA)"):
            ctc = _ctc_log_prob(ctc_log_probs.index_select(0, rows_utt), lens_r, res.tokens, n_tok,
                                model.blank_id, model.eos_id)
        row_scores = (1.0 - ctc_weight) * row_scores + ctc_weight * ctc / (n_tok + 1)
    scores = row_scores.index_select(0, inv)  # (B*K,) per sample
    best = scores.view(b, k).argmax(dim=1)
    chosen = inv.index_select(0, torch.arange(b, device=enc_out.device) * k + best)
    return [
        _to_hypothesis(res, int(r), float(row_scores[r]), model) for r in chosen.tolist()
    ]


def _ctc_log_prob(
    log_probs: Tensor, lens: Tensor, tokens: Tensor, token_lens: Tensor, blank: int, eos: int
) -> Tensor:
    """``(R,)`` log P_ctc(y | x) of each row's hypothesis y: -CTC loss, -inf where impossible.

    y is what :func:`_to_hypothesis` returns: the row's tokens without blank / eos (a position
    whose argmax is one of them carries no token, and CTC cannot score a blank label)."""
    pos = torch.arange(tokens.size(1), device=tokens.device)[None]
    keep = (pos < token_lens[:, None]) & (tokens != blank) & (tokens != eos)
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices  # kept ones first
    targets = tokens.gather(1, order).clamp(min=0)
    nll = torch.nn.functional.ctc_loss(
        log_probs.float().transpose(0, 1), targets, lens, keep.sum(1), blank=blank,
        reduction="none", zero_infinity=False,
    )
    return -nll


def _to_hypothesis(res: NATResult, row: int, score: float, model: ASRModel) -> Hypothesis:
    n = int(res.token_lens[row])
    toks = res.tokens[row, :n].tolist()
    conf = res.token_logp[row, :n].exp().tolist()
    starts = res.starts[row, :n].tolist()
    ends = res.ends[row, :n].tolist()
    # A position whose argmax is blank or eos carries no token (rare once trained): drop it.
    keep = [i for i, x in enumerate(toks) if x not in (model.blank_id, model.eos_id)]
    return Hypothesis(
        tokens=[toks[i] for i in keep],
        score=score,
        token_starts=[starts[i] for i in keep],
        token_ends=[ends[i] for i in keep],
        confidences=[conf[i] for i in keep],
    )
