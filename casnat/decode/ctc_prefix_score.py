"""CTC prefix scores for label-synchronous search (joint CTC/attention decoding).

An attention decoder extends a hypothesis one token at a time, while CTC scores whole frame
sequences. The CTC *prefix* probability ``P(g ... | x)`` -- the mass of every labelling that
starts with the prefix ``g`` -- bridges the two: it is what a label-synchronous beam search can
add to each extension (Watanabe et al. 2017, "Hybrid CTC/attention"; ESPnet's
``CTCPrefixScoreTH``). Its ``full`` counterpart ``P(g | x)`` (the labelling exactly, i.e. the
negative CTC loss) scores the end of sentence.

:class:`CTCPrefixScorer` keeps, per search row (utterance x beam), the CTC forward variables
``r[t, row, {nonblank, blank}]`` of the row's prefix: the log-probability that frames ``0..t``
emit exactly the prefix and that frame ``t`` is its last token / a blank. Extending a prefix by
candidate tokens ``c`` is one recursion over frames, vectorised over rows x candidates, so the
Python loop is over frames only (once per output position).

Padded frames (past an utterance's length) get log-prob 0 for blank and -inf for everything
else, which carries every path unchanged into the blank state: the last frame's total is then the
probability at the utterance's own end, and no token can be emitted on padding.

Rows follow the search's reordering with :meth:`CTCPrefixScorer.advance` (one ``index_select``
per tensor, like the decoder's KV cache), which also shrinks the state when utterances finish.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CTCPrefixScorer"]

_NEG_INF = float("-inf")


def _safe_delta(new: Tensor, old: Tensor) -> Tensor:
    """``new - old`` in the log domain, with ``-inf - -inf`` (a dead row) as -inf, not NaN."""
    d = new - old
    return torch.where(torch.isnan(d), torch.full_like(d, _NEG_INF), d)


class CTCPrefixScorer:
    """Batched CTC prefix scorer over search rows (see the module docstring).

    Args:
        log_probs: ``(N, T, V)`` CTC log-posteriors of the utterances.
        lens: ``(N,)`` valid frames per utterance.
        row_utt: ``(M,)`` utterance of each search row (e.g. ``arange(N).repeat_interleave(beam)``).
        blank: CTC blank id (never a candidate token: scored -inf).

    State (all on ``log_probs``' device, float32): ``r (T, M, 2)`` forward variables of each row's
    prefix, ``prefix_score (M,)`` its prefix log-prob (0 for the empty prefix), ``last (M,)`` its
    last token (-1 when empty) and ``length`` (tokens in every row's prefix: the search extends
    all rows in lockstep).
    """

    def __init__(self, log_probs: Tensor, lens: Tensor, row_utt: Tensor, blank: int = 0) -> None:
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (N, T, V), got shape {tuple(log_probs.shape)}")
        n, t, v = log_probs.shape
        if lens.shape != (n,):
            raise ValueError(f"lens must be ({n},), got shape {tuple(lens.shape)}")
        device = log_probs.device
        lens = lens.to(device)
        x = log_probs.float().transpose(0, 1).contiguous()  # (T, N, V)
        pad = torch.arange(t, device=device)[:, None] >= lens[None, :]  # (T, N)
        pad_frame = torch.full((v,), _NEG_INF, device=device)
        pad_frame[blank] = 0.0
        self.x = torch.where(pad[..., None], pad_frame, x)  # (T, N, V) utterance-level
        self.blank = blank
        self.row_utt = row_utt.to(device)
        m = self.row_utt.numel()
        xb = self.x[:, self.row_utt, blank]  # (T, M)
        self.r = torch.stack([torch.full_like(xb, _NEG_INF), xb.cumsum(0)], dim=-1)  # (T, M, 2)
        self.prefix_score = torch.zeros(m, device=device)
        self.last = torch.full((m,), -1, dtype=torch.long, device=device)
        self.length = 0
        self._cand: Tensor | None = None
        self._r_new: Tensor | None = None
        self._psi: Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.x.shape[0]

    def full_scores(self) -> Tensor:
        """``(M,)`` log P(prefix | x): the CTC probability that the prefix is the whole output."""
        return torch.logaddexp(self.r[-1, :, 0], self.r[-1, :, 1])

    def extend(self, cand: Tensor) -> Tensor:
        """Prefix log-probs ``(M, K)`` of each row's prefix extended by each of ``cand (M, K)``.

        The blank as a candidate scores -inf. Remembers the new forward variables so that
        :meth:`advance` can keep the chosen extensions without recomputing them.
        """
        t_max = self.num_frames
        m, k = cand.shape
        if m != self.r.shape[1]:
            raise ValueError(f"cand has {m} rows, the scorer {self.r.shape[1]}")
        xs = self.x[:, self.row_utt[:, None], cand]  # (T, M, K), no (T, M, V) copy
        xb = self.x[:, self.row_utt, self.blank, None]  # (T, M, 1)
        r_sum = torch.logaddexp(self.r[..., 0], self.r[..., 1])  # (T, M)
        # A repeated token needs a blank in between: only the blank-ending paths may precede it.
        same = (cand == self.last[:, None])[None]  # (1, M, K)
        phi = torch.where(same, self.r[..., 1, None], r_sum[..., None])  # (T, M, K)

        r_new = torch.full((t_max, m, k, 2), _NEG_INF, device=cand.device)
        if self.length == 0:
            r_new[0, :, :, 0] = xs[0]
        # A prefix of length l + 1 cannot end before frame l: earlier frames stay -inf.
        start = max(1, self.length)
        for t in range(start, t_max):
            prev = r_new[t - 1]
            r_new[t, :, :, 0] = torch.logaddexp(prev[..., 0], phi[t - 1]) + xs[t]
            r_new[t, :, :, 1] = torch.logaddexp(prev[..., 0], prev[..., 1]) + xb[t]
        # psi = sum over the frame t where the new token is first emitted.
        terms = [r_new[min(start, t_max) - 1, :, :, 0][None]]
        if start < t_max:
            terms.append(phi[start - 1 : t_max - 1] + xs[start:])
        psi = torch.cat(terms, 0).logsumexp(0)  # (M, K)
        psi = psi.masked_fill(cand == self.blank, _NEG_INF)
        self._cand, self._r_new, self._psi = cand, r_new, psi
        return psi

    def advance(self, sel: Tensor, tokens: Tensor) -> None:
        """Keep rows ``sel (M',)`` of the last :meth:`extend`, each extended by ``tokens (M',)``.

        A token outside its row's candidates got no CTC score, so the search gave it -inf: such a
        row is a dead hypothesis the beam carries only when fewer live extensions exist than
        beams (a vocabulary smaller than the beam). Its CTC state becomes -inf as well, so it
        stays dead."""
        if self._cand is None or self._r_new is None or self._psi is None:
            raise RuntimeError("advance() needs a preceding extend()")
        cand = self._cand.index_select(0, sel)  # (M', K)
        hit = cand == tokens.reshape(-1, 1)
        found = hit.any(1)  # (M',)
        k_idx = hit.long().argmax(1)  # (M',); 0 for a dead row, overwritten below
        rows = torch.arange(sel.numel(), device=sel.device)
        r_sel = self._r_new.index_select(1, sel)  # (T, M', K, 2)
        self.r = r_sel[:, rows, k_idx]  # (T, M', 2)
        self.prefix_score = self._psi.index_select(0, sel)[rows, k_idx]
        if not bool(found.all()):
            self.r = self.r.masked_fill(~found[None, :, None], _NEG_INF)
            self.prefix_score = self.prefix_score.masked_fill(~found, _NEG_INF)
        self.last = tokens.reshape(-1).clone()
        self.row_utt = self.row_utt.index_select(0, sel)
        self.length += 1
        self._cand = self._r_new = self._psi = None

    def extension_scores(self, cand: Tensor) -> tuple[Tensor, Tensor]:
        """Score increments of a search step: ``(M, K)`` log P_prefix(g + c) - log P_prefix(g)
        for the candidates and ``(M,)`` log P(g | x) - log P_prefix(g) for ending with eos."""
        psi = self.extend(cand)
        prev = self.prefix_score
        return _safe_delta(psi, prev[:, None]), _safe_delta(self.full_scores(), prev)
