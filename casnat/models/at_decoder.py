"""Autoregressive transformer decoder: the AT baseline and the ESA ranker.

Pre-norm layers (causal self-attention, source attention over the encoder output, ReLU FFN),
token embedding + sinusoidal positions, final LayerNorm, linear + log-softmax. Training uses
teacher forcing (``forward``); beam search calls ``step`` with a batch-first cache; ESA ranks
hypotheses with ``score``. ``sos == eos == V - 1``.

>>> from casnat.config import ATDecoderConfig
>>> dec = ATDecoder(ATDecoderConfig(num_layers=1, num_heads=2, ffn_dim=32), 16, 10)
>>> tokens, token_lens = torch.tensor([[2, 3], [4, -1]]), torch.tensor([2, 1])
>>> ys_in, ys_out = ATDecoder.add_sos_eos(tokens, token_lens, 9, 9)
>>> ys_in.tolist(), ys_out.tolist()
([[9, 2, 3], [9, 4, 9]], [[2, 3, 9], [4, 9, -1]])
>>> memory, memory_mask = torch.randn(2, 7, 16), torch.ones(2, 7, dtype=torch.bool)
>>> dec(ys_in, token_lens + 1, memory, memory_mask).shape
torch.Size([2, 3, 10])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from casnat.config import ATDecoderConfig
from casnat.nn.attention import KV, MultiHeadAttention
from casnat.nn.dropout import Dropout
from casnat.nn.feed_forward import FeedForward
from casnat.nn.masks import causal_mask, lengths_to_mask
from casnat.nn.positional import PositionalEncoding


def add_sos_eos(
    tokens: Tensor, token_lens: Tensor, sos: int, eos: int
) -> tuple[Tensor, Tensor]:
    """Teacher-forcing input and target from padded tokens.

    Args:
        tokens: (N, U) int64, padded with anything past ``token_lens`` (usually -1).
        token_lens: (N,).

    Returns:
        ys_in: (N, U+1) ``[sos, y_1..y_Un]`` then ``eos`` as padding (a valid id, so it embeds).
        ys_out: (N, U+1) ``[y_1..y_Un, eos]`` then -1 as padding (ignore index).
        Row n has ``token_lens[n] + 1`` valid positions in both.
    """
    n, u = tokens.shape
    valid = lengths_to_mask(token_lens, u)  # (N, U)
    ys_in = tokens.new_full((n, u + 1), eos)
    ys_in[:, 0] = sos
    ys_in[:, 1:] = torch.where(valid, tokens, torch.full_like(tokens, eos))
    ys_out = tokens.new_full((n, u + 1), -1)
    ys_out[:, :u] = torch.where(valid, tokens, torch.full_like(tokens, -1))
    ys_out[torch.arange(n, device=tokens.device), token_lens] = eos
    return ys_in, ys_out


class ATDecoderLayer(nn.Module):
    """Pre-norm transformer decoder layer, optionally computing only the newest position."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.norm_src = nn.LayerNorm(d_model)
        self.src_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ffn_dim, dropout, "relu")
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        self_mask: Tensor | None,
        memory: Tensor,
        memory_mask: Tensor,
        cache: Tensor | None = None,
        mem_kv: KV | None = None,
    ) -> Tensor:
        """One layer.

        Args:
            x: (N, L, D) layer input for all positions so far.
            self_mask: (N|1, L, L) bool causal/padding mask, or None (attend to all).
            memory: (N, T, D); memory_mask (N, 1, T) bool.
            cache: (N, L-1, D) this layer's outputs for the first L-1 positions; when given only
                the last position is computed.
            mem_kv: this layer's ``src_attn.project_kv(memory)`` rows, computed once per search
                instead of at every step.

        Returns:
            (N, L, D) outputs for all L positions.
        """
        y = self.norm_self(x)
        if cache is None:
            q, residual = y, x
        else:
            q, residual = y[:, -1:], x[:, -1:]
            self_mask = None if self_mask is None else self_mask[:, -1:]
        h = residual + self.dropout(self.self_attn(q, y, y, self_mask))
        h = h + self.dropout(self.src_attn(self.norm_src(h), memory, memory, memory_mask, mem_kv))
        h = h + self.dropout(self.ff(self.norm_ff(h)))
        return h if cache is None else torch.cat([cache, h], dim=1)


class ATDecoder(nn.Module):
    """Transformer decoder over tokens attending to ``memory`` (N, T, D)."""

    add_sos_eos = staticmethod(add_sos_eos)

    def __init__(self, cfg: ATDecoderConfig, d_model: int, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.sos = self.eos = vocab_size - 1
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos_enc = PositionalEncoding(d_model, cfg.dropout)
        self.layers = nn.ModuleList(
            ATDecoderLayer(d_model, cfg.num_heads, cfg.ffn_dim, cfg.dropout)
            for _ in range(cfg.num_layers)
        )
        self.norm_out = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, vocab_size)

    def _embed(self, ys: Tensor) -> Tensor:
        """(N, L) ids (negative = padding) -> (N, L, D) embeddings with positions."""
        return self.pos_enc(self.embed(ys.masked_fill(ys < 0, self.eos)))

    def memory_kv(self, memory: Tensor) -> list[KV]:
        """Per-layer source-attention keys/values of ``memory`` (N, T, D), for ``step``/``score``
        (index rows with ``casnat.nn.attention.index_kv``)."""
        return [layer.src_attn.project_kv(memory) for layer in self.layers]

    def forward(
        self,
        ys_in: Tensor,
        ys_in_lens: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        mem_kv: list[KV] | None = None,
    ) -> Tensor:
        """Teacher-forced log-probabilities.

        Args:
            ys_in: (N, L) starting with sos; positions past ``ys_in_lens`` may hold any id.
            ys_in_lens: (N,).
            memory: (N, T, D) encoder output; memory_mask (N, T) bool, True = valid.

        Returns:
            (N, L, V) log-probs; position l predicts the token after ``ys_in[:, :l+1]``.
        """
        length = ys_in.size(1)
        ys = ys_in.masked_fill(~lengths_to_mask(ys_in_lens, length), self.eos)
        x = self._embed(ys)
        self_mask = causal_mask(length, ys.device)[None]  # (1, L, L)
        mem_mask = memory_mask[:, None, :]
        for i, layer in enumerate(self.layers):
            x = layer(x, self_mask, memory, mem_mask, None, None if mem_kv is None else mem_kv[i])
        return torch.log_softmax(self.output(self.norm_out(x)).float(), dim=-1)

    def step(
        self,
        ys_prefix: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        cache: list[Tensor] | None,
        mem_kv: list[KV] | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Log-probs of the next token given a prefix, reusing the previous call's work.

        Args:
            ys_prefix: (N, l) all tokens so far, starting with sos.
            memory: (N, T, D); memory_mask (N, T) bool.
            cache: per-layer outputs (N, l-1, D) from the previous call, or None (first call or
                recomputation from scratch). Batch-first: reorder beams with ``index_select(0, i)``.
            mem_kv: ``memory_kv(memory)`` rows (optional; saves re-projecting memory each step).

        Returns:
            (log-probs (N, V) for position l, new cache: one (N, l, D) tensor per layer).
        """
        x = self._embed(ys_prefix)
        mem_mask = memory_mask[:, None, :]
        self_mask = causal_mask(ys_prefix.size(1), ys_prefix.device)[None]
        new_cache: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            x = layer(
                x, self_mask, memory, mem_mask, None if cache is None else cache[i],
                None if mem_kv is None else mem_kv[i],
            )
            new_cache.append(x)
        logits = self.output(self.norm_out(x[:, -1]))
        return torch.log_softmax(logits.float(), dim=-1), new_cache

    def score(
        self,
        hyps: Tensor,
        hyp_lens: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        mem_kv: list[KV] | None = None,
    ) -> Tensor:
        """Teacher-forced mean log-prob of each hypothesis over its tokens and eos (ESA ranker).

        Args:
            hyps: (N, L) int64 padded with -1; hyp_lens (N,).
            memory: (N, T, D); memory_mask (N, T) bool.

        Returns:
            (N,) ``sum_{k<=len} log p(y_k | y_<k) / (len + 1)`` with ``y_{len+1} = eos``.
        """
        ys_in, ys_out = add_sos_eos(hyps, hyp_lens, self.sos, self.eos)
        log_probs = self.forward(ys_in, hyp_lens + 1, memory, memory_mask, mem_kv)
        valid = ys_out >= 0
        picked = log_probs.gather(-1, ys_out.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (picked * valid).sum(dim=1) / valid.sum(dim=1)
