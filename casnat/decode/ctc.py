"""CTC searches: batched greedy (best path) and prefix beam search, with token timing.

Shapes: ``log_probs (N, T, V)`` log-softmax CTC posteriors over encoder frames, ``lens (N,)``
valid frames per utterance. Both searches work on CPU and GPU tensors; the greedy search stays on
the tensors' device until one final transfer, the prefix beam search takes the per-frame top-k
on the device and runs its (inherently sequential) prefix bookkeeping in Python.

Confidence of a token = ``exp(mean log-prob of the token's frames)``, i.e. the geometric mean of
the posteriors of the frames in the token's run (blank frames around it are not counted). The
geometric mean rewards a token that is confidently emitted on every frame of its run, and is
identical for the greedy search and a beam-1 prefix search.

>>> import torch
>>> lp = torch.log(torch.tensor([[[0.1, 0.9, 0.0], [0.1, 0.9, 0.0], [0.8, 0.1, 0.1],
...                               [0.2, 0.0, 0.8]]]).clamp_min(1e-9))
>>> hyp = ctc_greedy_search(lp, torch.tensor([4]))[0]
>>> hyp.tokens, hyp.token_starts, hyp.token_ends
([1, 2], [0, 3], [1, 3])
>>> [h.tokens for h in ctc_prefix_beam_search(lp, torch.tensor([4]), beam=2)[0]]
[[1, 2], [1]]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from casnat.align.segments import token_runs
from casnat.decode.results import Hypothesis

__all__ = ["ctc_greedy_search", "ctc_prefix_beam_search"]

_NEG_INF = float("-inf")


def _check_inputs(log_probs: Tensor, lens: Tensor) -> None:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (N, T, V), got shape {tuple(log_probs.shape)}")
    if lens.dim() != 1 or lens.shape[0] != log_probs.shape[0]:
        raise ValueError(
            f"lens must be (N,) with N = {log_probs.shape[0]}, got shape {tuple(lens.shape)}"
        )
    if lens.numel() and int(lens.max()) > log_probs.shape[1]:
        raise ValueError(f"lens max {int(lens.max())} exceeds T = {log_probs.shape[1]}")


def ctc_greedy_search(log_probs: Tensor, lens: Tensor, blank: int = 0) -> list[Hypothesis]:
    """Best-path CTC decoding: per-frame argmax, merge repeats, drop blanks.

    Fully batched on tensors: the run boundaries of every token of every utterance come from
    :func:`casnat.align.segments.token_runs` (the collapse rule the CASS-NAT segments use too),
    and per-token mean log-probs from a cumulative sum, so the only Python loop is the final
    split into per-utterance records.

    Args:
        log_probs: ``(N, T, V)`` CTC log-posteriors.
        lens: ``(N,)`` number of valid frames per utterance.
        blank: id of the CTC blank.

    Returns:
        ``N`` hypotheses. ``score`` = log-prob of the best path (sum over valid frames of the
        max log-prob); ``token_starts``/``token_ends`` = first/last frame of each token's run
        in the path; ``confidences`` = exp(mean log-prob over the run's frames).
    """
    _check_inputs(log_probs, lens)
    n, t_max, _ = log_probs.shape
    if t_max == 0:
        return [Hypothesis(tokens=[], score=0.0) for _ in range(n)]
    lens = lens.to(log_probs.device)
    best_lp, best_id = log_probs.max(dim=-1)  # (N, T) each
    valid = torch.arange(t_max, device=log_probs.device)[None, :] < lens[:, None]  # (N, T)
    best_lp = best_lp.masked_fill(~valid, 0.0)
    scores = best_lp.sum(dim=1)  # (N,)

    # The token runs of the argmax path (the one collapse rule shared with the CASS-NAT segments).
    runs = token_runs(best_id, lens, blank)
    start_frames, end_frames, rows = runs.starts, runs.ends, runs.utt

    # Mean log-prob of each run via a cumulative sum with a leading zero column.
    cum = torch.nn.functional.pad(best_lp.cumsum(dim=1), (1, 0))  # (N, T + 1)
    run_sum = cum[rows, end_frames + 1] - cum[rows, start_frames]
    run_len = (end_frames - start_frames + 1).to(run_sum.dtype)
    conf = torch.exp(run_sum / run_len)  # (K,)

    counts = runs.counts.tolist()
    ids_l, starts_l, ends_l = runs.tokens.tolist(), start_frames.tolist(), end_frames.tolist()
    conf_l, scores_l = conf.tolist(), scores.tolist()
    hyps: list[Hypothesis] = []
    offset = 0
    for i in range(n):
        k = counts[i]
        sl = slice(offset, offset + k)
        hyps.append(
            Hypothesis(tokens=ids_l[sl], score=scores_l[i], token_starts=starts_l[sl],
                       token_ends=ends_l[sl], confidences=conf_l[sl])
        )
        offset += k
    return hyps


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


# Timing of the best single path of a prefix, as a persistent linked list (one node per token,
# newest first) so extending a prefix or its last token's run is O(1):
# (start_frame, end_frame, sum of the run's frame log-probs, parent node or None).
_Node = tuple[int, int, float, "_Node | None"]


class _PrefixState:
    """Probabilities of one prefix at the current frame, split by the last frame's symbol.

    ``pb``/``pnb``: log-prob (sum over paths) that the paths end in blank / in the prefix's last
    token. ``vb``/``vnb``: log-prob of the single best such path, whose token timing is
    ``node_b``/``node_nb``.
    """

    __slots__ = ("pb", "pnb", "vb", "vnb", "node_b", "node_nb")

    def __init__(self) -> None:
        self.pb = self.pnb = self.vb = self.vnb = _NEG_INF
        self.node_b: _Node | None = None
        self.node_nb: _Node | None = None

    def total(self) -> float:
        return _logaddexp(self.pb, self.pnb)

    def add_b(self, lp: float, vlp: float, node: _Node | None) -> None:
        self.pb = _logaddexp(self.pb, lp)
        if vlp > self.vb:
            self.vb, self.node_b = vlp, node

    def add_nb(self, lp: float, vlp: float, node: _Node | None) -> None:
        self.pnb = _logaddexp(self.pnb, lp)
        if vlp > self.vnb:
            self.vnb, self.node_nb = vlp, node


def _to_hypothesis(prefix: tuple[int, ...], state: _PrefixState) -> Hypothesis:
    node = state.node_b if state.vb >= state.vnb else state.node_nb
    starts: list[int] = []
    ends: list[int] = []
    confs: list[float] = []
    while node is not None:
        s, e, lp_sum, node = node
        starts.append(s)
        ends.append(e)
        confs.append(math.exp(lp_sum / (e - s + 1)))
    starts.reverse()
    ends.reverse()
    confs.reverse()
    return Hypothesis(tokens=list(prefix), score=state.total(), token_starts=starts,
                      token_ends=ends, confidences=confs)


def _prefix_beam_one(
    top_lp: list[list[float]], top_id: list[list[int]], beam: int, blank: int
) -> list[Hypothesis]:
    """Prefix beam search for one utterance given its per-frame top-k ``(T, k)`` lists."""
    root = _PrefixState()
    root.pb = root.vb = 0.0
    beams: dict[tuple[int, ...], _PrefixState] = {(): root}
    for t, (lps, ids) in enumerate(zip(top_lp, top_id, strict=True)):
        nxt: dict[tuple[int, ...], _PrefixState] = {}
        for prefix, st in beams.items():
            p_all = st.total()
            best_v, best_node = (st.vb, st.node_b) if st.vb >= st.vnb else (st.vnb, st.node_nb)
            last = prefix[-1] if prefix else None
            for lp, c in zip(lps, ids, strict=True):
                if c == blank:
                    ns = nxt.get(prefix) or nxt.setdefault(prefix, _PrefixState())
                    ns.add_b(p_all + lp, best_v + lp, best_node)
                elif c == last:
                    # Repeat without blank in between: stays in the same prefix, extending the
                    # run of the last token ...
                    ns = nxt.get(prefix) or nxt.setdefault(prefix, _PrefixState())
                    if st.node_nb is not None:
                        s, _, lp_sum, parent = st.node_nb
                        ns.add_nb(st.pnb + lp, st.vnb + lp, (s, t, lp_sum + lp, parent))
                    # ... while after a blank it emits the token again.
                    new = prefix + (c,)
                    ns2 = nxt.get(new) or nxt.setdefault(new, _PrefixState())
                    ns2.add_nb(st.pb + lp, st.vb + lp, (t, t, lp, st.node_b))
                else:
                    new = prefix + (c,)
                    ns = nxt.get(new) or nxt.setdefault(new, _PrefixState())
                    ns.add_nb(p_all + lp, best_v + lp, (t, t, lp, best_node))
        ranked = sorted(nxt.items(), key=lambda kv: kv[1].total(), reverse=True)
        beams = dict(ranked[:beam])
    ranked = sorted(beams.items(), key=lambda kv: kv[1].total(), reverse=True)
    hyps = [_to_hypothesis(p, s) for p, s in ranked if s.total() > _NEG_INF]
    # Every path had probability 0 (-inf log-probs): still return one (empty) hypothesis.
    return hyps or [Hypothesis(tokens=[], score=_NEG_INF)]


def ctc_prefix_beam_search(
    log_probs: Tensor,
    lens: Tensor,
    beam: int = 10,
    blank: int = 0,
    token_topk: int | None = None,
) -> list[list[Hypothesis]]:
    """CTC prefix beam search: n-best labellings, each scored over all of its paths.

    Unlike the greedy search, which takes the single most probable frame path, this keeps
    ``beam`` output prefixes and, for each, the log-probability of all paths that collapse to
    it, split into paths ending in blank (``pb``) and in the last token (``pnb``), so that
    "a a" merges while "a <b> a" repeats the token. Each frame considers only its ``token_topk``
    most probable symbols (pruning for speed; ``token_topk = V`` is exact up to the beam).

    Token timing follows the most probable single path among those of the prefix (a Viterbi
    path within the beam): ``token_starts``/``token_ends`` = first/last frame of each token's
    run in that path, ``confidences`` = exp(mean log-prob over the run). With ``beam = 1`` and
    ``token_topk = 1`` the result equals :func:`ctc_greedy_search` exactly.

    Args:
        log_probs: ``(N, T, V)`` CTC log-posteriors.
        lens: ``(N,)`` valid frames per utterance.
        beam: number of prefixes kept per frame, and of hypotheses returned.
        blank: id of the CTC blank.
        token_topk: symbols considered per frame; default ``beam`` (capped at ``V``).

    Returns:
        Per utterance, 1 to ``beam`` hypotheses sorted by ``score`` (labelling log-prob),
        best first.
    """
    _check_inputs(log_probs, lens)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    n, _, v = log_probs.shape
    k = min(token_topk if token_topk is not None else beam, v)
    if k < 1:
        raise ValueError(f"token_topk must be >= 1, got {token_topk}")
    top_lp, top_id = log_probs.topk(k, dim=-1)  # (N, T, k) each, on the input's device
    top_lp_l, top_id_l = top_lp.tolist(), top_id.tolist()
    lens_l = lens.tolist()
    return [
        _prefix_beam_one(top_lp_l[i][: lens_l[i]], top_id_l[i][: lens_l[i]], beam, blank)
        for i in range(n)
    ]
