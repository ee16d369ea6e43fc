"""numba kernels of the alignment ops: the fallback when ``casnat._C`` is not built.

They compute the same recursion as ``csrc/cpu/ctc_align_cpu.cpp`` with the same float32 operations
(one max over the allowed moves, then one addition per state and frame), the same tie rule and the
same band of states, so both backends return identical tensors (tests/align check it bit for bit).
The C++ kernel is laid out for speed (blank and label states in separate arrays, vectorized loops,
prefetching); these are written for clarity.
Inputs are NumPy arrays (CPU); the wrappers in :mod:`casnat.align.viterbi` and
:mod:`casnat.align.sampling` convert and validate.
"""

from __future__ import annotations

import numba
import numpy as np

_NEG_INF = np.float32(-np.inf)


@numba.njit(cache=True, nogil=True)
def _viterbi_one(lp, T, tgt, U, blank, path):  # pragma: no cover - compiled
    """Best path of one utterance; lp (T', V) float32, tgt (U',) int64; writes path[:T]."""
    repeats = 0
    for u in range(1, U):
        if tgt[u] == tgt[u - 1]:
            repeats += 1
    if T < U + repeats or T == 0:
        for t in range(T):
            path[t] = -1
        if T == 0 and U == 0:
            return np.float32(0.0)
        return _NEG_INF
    S = 2 * U + 1
    label = np.empty(S, np.int64)
    skip_ok = np.zeros(S, np.bool_)
    for s in range(S):
        if s % 2 == 1:
            label[s] = tgt[s // 2]
            skip_ok[s] = s >= 3 and tgt[s // 2] != tgt[s // 2 - 1]
        else:
            label[s] = blank
    prev = np.full(S, _NEG_INF, np.float32)
    cur = np.full(S, _NEG_INF, np.float32)
    bp = np.empty((T, S), np.uint8)
    prev[0] = lp[0, blank]
    if S > 1:
        prev[1] = lp[0, label[1]]
    for t in range(1, T):
        lo = max(0, S - 2 - 2 * (T - 1 - t))
        hi = min(S - 1, 2 * t + 1)
        for s in range(lo, hi + 1):
            best = prev[s]
            k = 0
            if s >= 1 and prev[s - 1] > best:
                best = prev[s - 1]
                k = 1
            if s >= 2 and skip_ok[s] and prev[s - 2] > best:
                best = prev[s - 2]
                k = 2
            cur[s] = best + lp[t, label[s]]
            bp[t, s] = k
        prev, cur = cur, prev
    if S == 1:
        s = 0
    elif prev[S - 1] > prev[S - 2]:
        s = S - 1
    else:
        s = S - 2
    score = prev[s]
    if not score > _NEG_INF:
        for t in range(T):
            path[t] = -1
        return _NEG_INF
    for t in range(T - 1, 0, -1):
        path[t] = label[s]
        s -= bp[t, s]
    path[0] = label[s]
    return score


@numba.njit(cache=True, parallel=True)
def viterbi_batch(log_probs, input_lengths, targets, target_lengths, blank):  # pragma: no cover
    """log_probs (B, T, V) float32 -> (alignment (B, T) int64 with -1 padding, scores (B,) f32)."""
    B, T, _ = log_probs.shape
    alignment = np.full((B, T), -1, np.int64)
    scores = np.empty(B, np.float32)
    for b in numba.prange(B):
        scores[b] = _viterbi_one(
            log_probs[b], input_lengths[b], targets[b], target_lengths[b], blank, alignment[b]
        )
    return alignment, scores


@numba.njit(cache=True, parallel=True)
def sample_batch(log_probs, input_lengths, rand_bits, log_threshold):  # pragma: no cover
    """log_probs (B, T, V) f32, rand_bits (B, K-1, T) uint8 -> samples (B, K, T) int64."""
    B, T, V = log_probs.shape
    K1 = rand_bits.shape[1]
    out = np.full((B, K1 + 1, T), -1, np.int64)
    for bt in numba.prange(B * T):
        b = bt // T
        t = bt % T
        if t >= input_lengths[b]:
            continue
        row = log_probs[b, t]
        i1 = 0
        m1 = row[0]
        i2 = -1
        m2 = _NEG_INF
        for v in range(1, V):
            x = row[v]
            if x > m1:
                m2 = m1
                i2 = i1
                m1 = x
                i1 = v
            elif x > m2 or i2 < 0:
                m2 = x
                i2 = v
        if i2 < 0:
            i2 = i1
        out[b, 0, t] = i1
        uncertain = np.float64(m1) < log_threshold
        for k in range(1, K1 + 1):
            if uncertain and (rand_bits[b, k - 1, t] & 1) == 1:
                out[b, k, t] = i2
            else:
                out[b, k, t] = i1
    return out


def sync_threads() -> None:
    """Use as many numba threads as torch (``torch.set_num_threads``), within numba's pool size."""
    import torch

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
