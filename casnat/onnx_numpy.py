"""NumPy twins of casnat's CTC collapse and CASS-NAT segments, for the ONNX decoding path.

Why a second implementation: :class:`casnat.onnx_export.OnnxRecognizer` runs the encoder and
the NAT decoder in onnxruntime, and what lies between the two graphs (greedy CTC path -> token
runs -> trigger mask) is integer bookkeeping that ONNX expresses poorly but NumPy does in a few
vectorized lines; doing it here keeps torch out of the ONNX hot path. The rules are those of
:func:`casnat.align.segments.token_runs` and :func:`casnat.align.segments.alignment_to_segments`
(the one definition, documented there); ``tests/test_onnx_export.py`` checks that both give the
same arrays on random paths.

Shapes: ``log_probs (B, T, V)``, ``lens (B,)``, ``path (B, T)`` (-1 = padding), ``U`` = most
tokens in a row.

>>> import numpy as np
>>> seg = greedy_segments(np.array([[0, 5, 5, 0, 7, 0]]), np.array([6]), 0, 1, 1)
>>> seg.tokens.tolist(), seg.starts.tolist(), seg.ends.tolist()
([[5, 7]], [[1, 4]], [[2, 4]])
>>> seg.trigger_mask[0].astype(int).tolist()
[[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from casnat.decode.results import Hypothesis


@dataclass(frozen=True)
class Runs:
    """Token runs of paths in (utterance, frame) order; see :class:`casnat.align.TokenRuns`."""

    utt: np.ndarray  # (K,) row of each run
    index: np.ndarray  # (K,) position among its row's tokens
    tokens: np.ndarray  # (K,)
    starts: np.ndarray  # (K,) first frame
    ends: np.ndarray  # (K,) last frame (inclusive)
    counts: np.ndarray  # (B,) runs per row


@dataclass(frozen=True)
class NPSegments:
    """:class:`casnat.align.Segments` in NumPy: ``tokens/starts/ends (B, U)`` padded -1,
    ``token_lens (B,)``, ``trigger_mask (B, U+1, T)`` bool."""

    tokens: np.ndarray
    token_lens: np.ndarray
    trigger_mask: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def greedy_path(log_probs: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Per-frame argmax (ties to the lowest id, as ``sample_alignments``' sample 0), -1 past
    each row's length: the path the ``cassnat`` mode decodes."""
    path = log_probs.argmax(-1).astype(np.int64)
    path[np.arange(path.shape[1])[None, :] >= lens[:, None]] = -1
    return path


def token_runs(path: np.ndarray, lens: np.ndarray, blank: int) -> Runs:
    """Collapse paths into token runs: a frame starts a token if valid, not blank, not padding
    and unlike the frame before; it ends one if the next frame differs or is past the end."""
    b, t = path.shape
    frames = np.arange(t)
    valid = frames[None, :] < lens[:, None]
    label = (path >= 0) & (path != blank) & valid
    pad = np.full((b, 1), -1, dtype=path.dtype)
    prev = np.concatenate([pad, path[:, :-1]], axis=1)
    nxt = np.concatenate([path[:, 1:], pad], axis=1)
    is_start = label & (path != prev)
    is_end = label & ((path != nxt) | (frames[None, :] == lens[:, None] - 1))
    utt, starts = np.nonzero(is_start)  # row-major: the k-th start and end are one run
    ends = np.nonzero(is_end)[1]
    counts = is_start.sum(1).astype(np.int64)
    first = np.cumsum(counts) - counts
    index = np.arange(utt.size) - first[utt]
    return Runs(utt, index, path[utt, starts], starts, ends, counts)


def greedy_segments(
    path: np.ndarray, lens: np.ndarray, blank: int, left_trigger: int, right_trigger: int
) -> NPSegments:
    """Tokens and trigger mask of paths, exactly as ``alignment_to_segments``: position u owns
    the frames from after token u-1's start to token u's start, eos the rest (at least the
    last frame), each widened by the trigger frames and cut to the valid frames."""
    b, t = path.shape
    runs = token_runs(path, lens, blank)
    counts = runs.counts
    umax = int(counts.max()) if b else 0
    tokens, starts, ends = (np.full((b, umax), -1, dtype=np.int64) for _ in range(3))
    tokens[runs.utt, runs.index] = runs.tokens
    starts[runs.utt, runs.index] = runs.starts
    ends[runs.utt, runs.index] = runs.ends
    frames = np.arange(t)
    valid = frames[None, :] < lens[:, None]
    pos = np.arange(umax + 1)
    start_ext = np.concatenate([starts, np.full((b, 1), -1, dtype=np.int64)], axis=1)
    lo = np.concatenate([np.zeros((b, 1), dtype=np.int64), starts + 1], axis=1)
    is_eos = pos[None, :] == counts[:, None]
    last = (lens - 1)[:, None]
    hi = np.where(is_eos, last, start_ext)
    lo = np.where(is_eos, np.minimum(lo, np.maximum(last, 0)), lo)
    lo, hi = lo - left_trigger, hi + right_trigger
    in_seg = (frames[None, None, :] >= lo[:, :, None]) & (frames[None, None, :] <= hi[:, :, None])
    live = pos[None, :] <= counts[:, None]
    trigger = in_seg & valid[:, None, :] & live[:, :, None]
    return NPSegments(tokens, counts, trigger, starts, ends)


def ctc_greedy_hypotheses(log_probs: np.ndarray, lens: np.ndarray, blank: int) -> list[Hypothesis]:
    """:func:`casnat.decode.ctc.ctc_greedy_search` in NumPy: tokens, run frames, confidences
    (exp of the run's mean best log-prob) and the best path's log-prob."""
    best_lp = log_probs.max(-1)
    best_id = log_probs.argmax(-1).astype(np.int64)
    t = log_probs.shape[1]
    best_lp = np.where(np.arange(t)[None, :] < lens[:, None], best_lp, 0.0)
    runs = token_runs(best_id, lens, blank)
    cum = np.pad(np.cumsum(best_lp, axis=1, dtype=np.float64), ((0, 0), (1, 0)))
    run_sum = cum[runs.utt, runs.ends + 1] - cum[runs.utt, runs.starts]
    conf = np.exp(run_sum / (runs.ends - runs.starts + 1))
    scores = best_lp.sum(1, dtype=np.float64)
    hyps, offset = [], 0
    for i, k in enumerate(runs.counts.tolist()):
        sl = slice(offset, offset + k)
        hyps.append(Hypothesis(
            tokens=runs.tokens[sl].tolist(), score=float(scores[i]),
            token_starts=runs.starts[sl].tolist(), token_ends=runs.ends[sl].tolist(),
            confidences=conf[sl].tolist(),
        ))
        offset += k
    return hyps


def nat_hypotheses(
    nat_log_probs: np.ndarray, seg: NPSegments, blank: int, eos: int
) -> list[Hypothesis]:
    """Hypotheses of the NAT decoder's ``(B, U+1, V)`` log-probs, as the torch ``cassnat`` mode
    builds them: the argmax of each token position, timed by its CTC run, positions whose
    argmax is blank or eos dropped; score = mean log-prob over the tokens and eos."""
    logp = nat_log_probs.max(-1)
    tok = nat_log_probs.argmax(-1)
    hyps = []
    for r, n in enumerate(seg.token_lens.tolist()):
        toks = tok[r, :n].tolist()
        keep = [i for i, x in enumerate(toks) if x not in (blank, eos)]
        score = (float(logp[r, :n].sum(dtype=np.float64)) + float(nat_log_probs[r, n, eos])) / (
            n + 1
        )
        conf = np.exp(logp[r, :n]).tolist()
        hyps.append(Hypothesis(
            tokens=[toks[i] for i in keep], score=score,
            token_starts=[int(seg.starts[r, i]) for i in keep],
            token_ends=[int(seg.ends[r, i]) for i in keep],
            confidences=[conf[i] for i in keep],
        ))
    return hyps


__all__ = [
    "NPSegments",
    "Runs",
    "ctc_greedy_hypotheses",
    "greedy_path",
    "greedy_segments",
    "nat_hypotheses",
    "token_runs",
]
