"""Collapse a frame-level CTC path into tokens and the CASS-NAT segment of each decoder position.

Definition (``docs/method.md``, "segments"): frame t *starts* a token if it is not
blank and differs from frame t-1. With c_t = number of starts strictly before t, decoder position u
(u = 0..U) owns the frames with c_t = u: from the frame after the start of token u-1 up to and
including the start of token u. Position U is end-of-sentence and always owns the last valid frame.
Each segment [lo_u, hi_u] is then widened to [lo_u - left_trigger, hi_u + right_trigger] and ANDed
with the padding mask.

Example (blank = 0, left = right = 1), alignment ``0 5 5 0 7 0`` (T = 6): tokens 5 (frames 1-2) and
7 (frame 4); starts at 1 and 4; position 0 owns 0..1, position 1 owns 2..4, EOS owns 5..5; widened:
0..2, 1..5, 4..5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from casnat.align._checks import as_lengths, check

_FN = "alignment_to_segments"


@dataclass(frozen=True)
class Segments:
    """Tokens of collapsed CTC paths and the frames each decoder position attends to.

    Attributes:
        tokens: ``(B, Umax)`` int64 collapsed token ids, padded with -1.
        token_lens: ``(B,)`` int64 U per utterance.
        trigger_mask: ``(B, Umax + 1, T)`` bool, True where decoder position u may attend frame t
            (position U = EOS); rows past an utterance's U are all False.
        starts: ``(B, Umax)`` int64 first frame of each token's run, -1 padding.
        ends: ``(B, Umax)`` int64 last frame of each token's run, -1 padding.
    """

    tokens: torch.Tensor
    token_lens: torch.Tensor
    trigger_mask: torch.Tensor
    starts: torch.Tensor
    ends: torch.Tensor

    @property
    def seg_lens(self) -> torch.Tensor:
        """``(B,)`` number of decoder positions per utterance: ``token_lens + 1`` (EOS included)."""
        return self.token_lens + 1


@dataclass(frozen=True)
class TokenRuns:
    """The token runs of frame-level CTC paths, flattened in (utterance, frame) order.

    A run is a maximal stretch of frames holding the same non-blank label; it is one output
    token. ``K`` = total runs over the batch; the runs of utterance b are consecutive.

    Attributes:
        utt: ``(K,)`` int64 utterance (row of the path) of each run.
        index: ``(K,)`` int64 position of the run among its utterance's tokens (0, 1, ...).
        tokens: ``(K,)`` int64 label of each run.
        starts: ``(K,)`` int64 first frame of each run.
        ends: ``(K,)`` int64 last frame of each run (inclusive).
        counts: ``(B,)`` int64 runs (tokens) per utterance.
    """

    utt: torch.Tensor
    index: torch.Tensor
    tokens: torch.Tensor
    starts: torch.Tensor
    ends: torch.Tensor
    counts: torch.Tensor


def token_runs(path: torch.Tensor, lens: torch.Tensor, blank: int = 0) -> TokenRuns:
    """Collapse frame-level CTC paths into their token runs (vectorized, any device).

    The one definition of "collapse a CTC path" in casnat, shared by the greedy CTC search (on
    the per-frame argmax) and :func:`alignment_to_segments` (on alignments): frame t *starts* a
    token if it is valid, not blank, not negative (padding) and differs from frame t-1; it *ends*
    one if it is valid, not blank and frame t+1 differs or is past the utterance's end.

    Args:
        path: ``(B, T)`` int64 label per frame; negative values are padding.
        lens: ``(B,)`` int64 valid frames per utterance (on ``path``'s device; not checked:
            public callers check their inputs first).
        blank: the CTC blank id.

    Returns:
        :class:`TokenRuns`.

    >>> r = token_runs(torch.tensor([[0, 5, 5, 0, 7, 0], [3, 3, 3, 0, 0, 0]]),
    ...                torch.tensor([6, 2]))
    >>> r.utt.tolist(), r.tokens.tolist(), r.starts.tolist(), r.ends.tolist()
    ([0, 0, 1], [5, 7, 3], [1, 4, 0], [2, 4, 1])
    >>> r.index.tolist(), r.counts.tolist()
    ([0, 1, 0], [2, 1])
    """
    B, T = path.shape
    frames = torch.arange(T, device=path.device)
    valid = frames[None, :] < lens[:, None]  # (B, T)
    label = (path >= 0) & (path != blank) & valid
    prev = torch.cat([path.new_full((B, 1), -1), path[:, :-1]], dim=1)
    nxt = torch.cat([path[:, 1:], path.new_full((B, 1), -1)], dim=1)
    is_start = label & (path != prev)
    is_end = label & ((path != nxt) | (frames[None, :] == lens[:, None] - 1))
    # nonzero() is row-major, so the k-th start and the k-th end belong to the same run.
    utt, starts = is_start.nonzero(as_tuple=True)
    ends = is_end.nonzero(as_tuple=True)[1]
    counts = is_start.sum(1)
    first = torch.cumsum(counts, 0) - counts  # (B,) index of each utterance's first run
    index = torch.arange(utt.numel(), device=path.device) - first[utt]
    return TokenRuns(utt, index, path[utt, starts], starts, ends, counts)


def alignment_to_segments(
    alignment: torch.Tensor,
    input_lengths: torch.Tensor,
    blank: int = 0,
    left_trigger: int = 1,
    right_trigger: int = 1,
) -> Segments:
    """Collapse frame-level paths and build the CASS-NAT trigger mask (vectorized, any device).

    Args:
        alignment: ``(B, T)`` integer label per frame (from :func:`ctc_viterbi_align`, a greedy
            path or a reshaped :func:`sample_alignments` output); negative values are padding.
        input_lengths: ``(B,)`` integer valid frames per utterance.
        blank: the CTC blank id.
        left_trigger, right_trigger: frames added on each side of every segment (>= 0).

    Returns:
        :class:`Segments` (see there for shapes).

    >>> seg = alignment_to_segments(torch.tensor([[0, 5, 5, 0, 7, 0]]), torch.tensor([6]))
    >>> seg.tokens.tolist(), seg.starts.tolist(), seg.ends.tolist()
    ([[5, 7]], [[1, 4]], [[2, 4]])
    >>> seg.trigger_mask[0].int().tolist()
    [[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]]
    """
    check(
        isinstance(alignment, torch.Tensor),
        _FN,
        f"alignment must be a Tensor, got {type(alignment)}",
    )
    check(
        alignment.dim() == 2,
        _FN,
        f"alignment must be (B, T), got shape {tuple(alignment.shape)} (reshape (B, K, T) "
        "samples to (B * K, T))",
    )
    check(
        not alignment.is_floating_point(),
        _FN,
        f"alignment must be an integer tensor, got {alignment.dtype}",
    )
    check(
        left_trigger >= 0 and right_trigger >= 0,
        _FN,
        f"left_trigger and right_trigger must be >= 0, got {left_trigger}, {right_trigger}",
    )
    B, T = alignment.shape
    dev = alignment.device
    lens = as_lengths(_FN, "input_lengths", input_lengths, B, T, dev)
    ali = alignment.detach().to(torch.int64)
    runs = token_runs(ali, lens, blank)
    token_lens = runs.counts
    Umax = int(token_lens.max()) if B else 0
    tokens = ali.new_full((B, Umax), -1)
    starts = ali.new_full((B, Umax), -1)
    ends = ali.new_full((B, Umax), -1)
    tokens[runs.utt, runs.index] = runs.tokens
    starts[runs.utt, runs.index] = runs.starts
    ends[runs.utt, runs.index] = runs.ends
    frames = torch.arange(T, device=dev)
    valid = frames[None, :] < lens[:, None]  # (B, T)
    # Segment of position u: lo_u = start_{u-1} + 1 (0 for u = 0), hi_u = start_u (T_b - 1 for EOS).
    pos = torch.arange(Umax + 1, device=dev)
    start_ext = torch.cat([starts, starts.new_full((B, 1), -1)], dim=1)  # (B, Umax + 1)
    lo = torch.cat([starts.new_zeros((B, 1)), starts + 1], dim=1)
    is_eos = pos[None, :] == token_lens[:, None]
    hi = torch.where(is_eos, lens[:, None] - 1, start_ext)
    lo = torch.where(is_eos, torch.minimum(lo, (lens[:, None] - 1).clamp(min=0)), lo)
    lo = lo - left_trigger
    hi = hi + right_trigger
    in_seg = (frames[None, None, :] >= lo[:, :, None]) & (frames[None, None, :] <= hi[:, :, None])
    live = pos[None, :] <= token_lens[:, None]  # (B, Umax + 1)
    trigger_mask = in_seg & valid[:, None, :] & live[:, :, None]
    return Segments(tokens, token_lens, trigger_mask, starts, ends)
