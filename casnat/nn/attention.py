"""Multi-head attention: plain, Transformer-XL relative (encoder) and bounded relative (NAT).

Masks are bool with ``True`` = may attend, shaped ``(N, Lq, Lk)`` or ``(N, 1, Lk)`` (broadcast
over queries). A query whose mask row is all ``False`` gets a zero context vector instead of
NaN, which padded TAE positions rely on.

>>> mha = MultiHeadAttention(16, 4)
>>> x = torch.randn(2, 5, 16)
>>> mha(x, x, x, mask=torch.ones(2, 1, 5, dtype=torch.bool)).shape
torch.Size([2, 5, 16])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from casnat.nn.dropout import Dropout

KV = tuple[Tensor, Tensor]  # projected keys and values, each (N, H, Lk, dk)


def index_kv(kvs: list[KV], index: Tensor) -> list[KV]:
    """Rows ``index`` of each (keys, values) pair: per-utterance projections -> per-row ones."""
    return [(k.index_select(0, index), v.index_select(0, index)) for k, v in kvs]


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with H heads of size ``dk = D / H``."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.dropout = Dropout(dropout)

    def _heads(self, x: Tensor, linear: nn.Linear) -> Tensor:
        """(N, L, D) -> projected and split (N, H, L, dk)."""
        n, length, _ = x.shape
        return linear(x).view(n, length, self.num_heads, self.d_k).transpose(1, 2)

    def _attend(self, scores: Tensor, value: Tensor, mask: Tensor | None) -> Tensor:
        """Softmax over keys, weight the values, merge heads.

        Args:
            scores: (N, H, Lq, Lk) already scaled logits.
            value: (N, H, Lk, dk).
            mask: (N, Lq|1, Lk) bool or None.

        Returns:
            (N, Lq, D).
        """
        if mask is not None:
            keep = mask.unsqueeze(1)  # (N, 1, Lq|1, Lk)
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            # Fully masked rows softmax to uniform; zeroing them yields a zero context.
            attn = torch.softmax(scores, dim=-1).masked_fill(~keep, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(self.dropout(attn).to(value.dtype), value)  # (N, H, Lq, dk)
        n, _, lq, _ = ctx.shape
        return self.linear_out(ctx.transpose(1, 2).reshape(n, lq, self.num_heads * self.d_k))

    def project_kv(self, memory: Tensor) -> KV:
        """Keys and values of ``memory (N, Lk, D)``, each (N, H, Lk, dk), for ``forward(kv=...)``.

        Why: in decoding the same encoder output is attended by many rows (beams, ESA samples)
        and at every AT step; projecting it once per utterance and indexing the result per row
        skips the repeated (Lk x D x D) products, with the same result.
        """
        return self._heads(memory, self.linear_k), self._heads(memory, self.linear_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Tensor | None = None,
        kv: KV | None = None,
    ) -> Tensor:
        """query (N, Lq, D), key/value (N, Lk, D), mask (N, Lq|1, Lk) -> (N, Lq, D).

        ``kv``: precomputed ``project_kv(key)`` rows for these N queries; key/value are then
        not used (pass the memory or anything else)."""
        q = self._heads(query, self.linear_q)
        if kv is None:
            kv = (self._heads(key, self.linear_k), self._heads(value, self.linear_v))
        k, v = kv
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        return self._attend(scores, v, mask)


def rel_shift(x: Tensor) -> Tensor:
    """Turn logits against relative distances into query-key logits.

    Args:
        x: (N, H, T, 2T-1); ``x[..., i, j]`` is query i against distance ``T-1-j``.

    Returns:
        (N, H, T, T) with ``out[..., i, k] = x[..., i, T-1-i+k]`` (distance ``i - k``).
        Done with the pad-and-reshape trick of Transformer-XL: no gather, one copy.
    """
    n, h, t, p = x.shape
    padded = F.pad(x, (1, 0))  # (N, H, T, 2T)
    padded = padded.view(n, h, p + 1, t)[:, :, 1:]  # drop the first row
    return padded.reshape(n, h, t, p)[..., :t]


class RelPositionMultiHeadAttention(MultiHeadAttention):
    """Self-attention with Transformer-XL relative positions (Conformer encoder).

    ``logit(i, k) = (q_i + u) . k_k + (q_i + v) . W_pos p_{i-k}`` where ``u``/``v``
    (``pos_bias_u``/``pos_bias_v``, one per head) are learned global content/position biases.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(d_model, num_heads, dropout)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(num_heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(num_heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(  # type: ignore[override]
        self, query: Tensor, key: Tensor, value: Tensor, pos_emb: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """Self-attention over T frames.

        Args:
            query, key, value: (N, T, D).
            pos_emb: (1, 2T-1, D) embeddings of distances T-1..-(T-1) (``RelPositionalEncoding``).
            mask: (N, T|1, T) bool or None.

        Returns:
            (N, T, D).
        """
        n, t, _ = query.shape
        if pos_emb.size(1) != 2 * t - 1:
            raise ValueError(
                f"pos_emb: expected (1, {2 * t - 1}, D) for T={t}, got {tuple(pos_emb.shape)}"
            )
        q = self.linear_q(query).view(n, t, self.num_heads, self.d_k)  # (N, T, H, dk)
        k = self._heads(key, self.linear_k)
        v = self._heads(value, self.linear_v)
        p = self.linear_pos(pos_emb).view(1, -1, self.num_heads, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)  # (N, H, T, dk)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        content = torch.matmul(q_u, k.transpose(-2, -1))  # (N, H, T, T)
        position = rel_shift(torch.matmul(q_v, p.transpose(-2, -1)))  # (N, H, T, T)
        return self._attend((content + position) / math.sqrt(self.d_k), v, mask)


def relative_position_index(
    length: int, max_distance: int, device: torch.device | None = None
) -> Tensor:
    """Clipped relative distance as an embedding index.

    Returns:
        (L, L) int64, ``clip(k - i, -K, K) + K`` for query i and key k, in ``[0, 2K]``.
    """
    pos = torch.arange(length, device=device)
    return (pos[None, :] - pos[:, None]).clamp(-max_distance, max_distance) + max_distance


class BoundedRelPositionAttention(MultiHeadAttention):
    """Self-attention with learned relative positions clipped at ``max_rel_pos`` (Shaw et al.).

    ``logit(i, k) = q_i . (k_k + a_{clip(k - i)})``: one learned key embedding ``a`` (size dk,
    shared across heads) per distance in ``[-K, K]``; farther keys share the end embeddings. Used
    by the NAT decoder, where only local order matters and sequences are short.
    """

    def __init__(
        self, d_model: int, num_heads: int, max_rel_pos: int, dropout: float = 0.0
    ) -> None:
        super().__init__(d_model, num_heads, dropout)
        if max_rel_pos < 1:
            raise ValueError(f"max_rel_pos must be >= 1, got {max_rel_pos}")
        self.max_rel_pos = max_rel_pos
        self.rel_k = nn.Embedding(2 * max_rel_pos + 1, self.d_k)

    def forward(  # type: ignore[override]
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None
    ) -> Tensor:
        """query, key, value (N, L, D); mask (N, L|1, L) bool or None -> (N, L, D)."""
        q = self._heads(query, self.linear_q)
        k = self._heads(key, self.linear_k)
        v = self._heads(value, self.linear_v)
        n, h, length, _ = q.shape
        content = torch.matmul(q, k.transpose(-2, -1))  # (N, H, L, L)
        rel = torch.matmul(q, self.rel_k.weight.to(q.dtype).t())  # (N, H, L, 2K+1)
        index = relative_position_index(length, self.max_rel_pos, q.device)
        position = rel.gather(-1, index.expand(n, h, length, length))
        return self._attend((content + position) / math.sqrt(self.d_k), v, mask)
