"""CASS-NAT decoder: self-attention blocks over TAEs, then mixed-attention blocks.

Improved CASS-NAT (Interspeech 2021): every block is convolution-augmented like a Conformer
block (half-step macaron Swish FFNs, convolution module with a small kernel) and uses relative
positions clipped at ``max_rel_pos``. Mixed-attention blocks add source attention over the full
encoder output. No causal mask anywhere: all positions are predicted in one pass, and the
output at position u predicts token u (u < U) or eos (u = U).

>>> from casnat.config import NATDecoderConfig
>>> cfg = NATDecoderConfig(num_sa_layers=1, num_mixed_layers=2, num_heads=2, ffn_dim=32)
>>> dec = NATDecoder(cfg, 16, 10)
>>> out = dec(torch.randn(2, 4, 16), torch.ones(2, 4, dtype=torch.bool),
...           torch.randn(2, 9, 16), torch.ones(2, 9, dtype=torch.bool))
>>> out.log_probs.shape, out.inter_log_probs.shape
(torch.Size([2, 4, 10]), torch.Size([2, 4, 10]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from casnat.config import NATDecoderConfig
from casnat.nn.attention import KV, BoundedRelPositionAttention, MultiHeadAttention
from casnat.nn.convolution import ConvolutionModule
from casnat.nn.dropout import Dropout
from casnat.nn.feed_forward import FeedForward


@dataclass
class NATOutput:
    """log_probs (N, U+1, V); inter_log_probs (N, U+1, V) after the first mixed-attention block
    (None when there are fewer than two mixed blocks, where it would equal log_probs)."""

    log_probs: Tensor
    inter_log_probs: Tensor | None = None


class NATBlock(nn.Module):
    """Conv-augmented decoder block over (N, U+1, D) token positions.

    ``x += FFN/2; x += SelfAttn; x += Conv; [x += SrcAttn(enc_out)]; x += FFN/2; LayerNorm``.
    The source-attention sub-layer exists only in mixed-attention blocks.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        conv_kernel: int,
        max_rel_pos: int,
        dropout: float,
        conv_norm: Literal["batch_norm", "layer_norm"],
        source_attention: bool,
    ) -> None:
        super().__init__()
        self.norm_ff1 = nn.LayerNorm(d_model)
        self.ff1 = FeedForward(d_model, ffn_dim, dropout, "swish")
        self.norm_self = nn.LayerNorm(d_model)
        self.self_attn = BoundedRelPositionAttention(d_model, num_heads, max_rel_pos, dropout)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv = ConvolutionModule(d_model, conv_kernel, dropout, conv_norm)
        self.norm_src: nn.LayerNorm | None = None
        self.src_attn: MultiHeadAttention | None = None
        if source_attention:
            self.norm_src = nn.LayerNorm(d_model)
            self.src_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.norm_ff2 = nn.LayerNorm(d_model)
        self.ff2 = FeedForward(d_model, ffn_dim, dropout, "swish")
        self.norm_out = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        enc_out: Tensor | None = None,
        enc_mask: Tensor | None = None,
        kv: KV | None = None,
    ) -> Tensor:
        """x (N, L, D), mask (N, L) bool; enc_out (N, T, D), enc_mask (N, T) bool -> (N, L, D).

        ``kv``: precomputed source-attention keys/values for the N rows (see ``memory_kv``)."""
        x = x + 0.5 * self.dropout(self.ff1(self.norm_ff1(x)))
        y = self.norm_self(x)
        x = x + self.dropout(self.self_attn(y, y, y, mask[:, None, :]))
        x = x + self.conv(self.norm_conv(x), mask)
        if self.src_attn is not None and self.norm_src is not None:
            if enc_out is None or enc_mask is None:
                raise ValueError("mixed-attention block needs enc_out and enc_mask")
            y = self.norm_src(x)
            x = x + self.dropout(self.src_attn(y, enc_out, enc_out, enc_mask[:, None, :], kv))
        x = x + 0.5 * self.dropout(self.ff2(self.norm_ff2(x)))
        return self.norm_out(x)


class NATDecoder(nn.Module):
    """TAEs (N, U+1, D) -> log-probs (N, U+1, V) in one non-autoregressive pass."""

    def __init__(self, cfg: NATDecoderConfig, d_model: int, vocab_size: int) -> None:
        super().__init__()
        if cfg.num_mixed_layers < 1:
            raise ValueError(
                f"nat_decoder.num_mixed_layers must be >= 1, got {cfg.num_mixed_layers}"
            )
        self.cfg = cfg

        def block(source_attention: bool) -> NATBlock:
            return NATBlock(
                d_model, cfg.num_heads, cfg.ffn_dim, cfg.conv_kernel, cfg.max_rel_pos,
                cfg.dropout, cfg.conv_norm, source_attention,
            )

        self.sa_layers = nn.ModuleList(block(False) for _ in range(cfg.num_sa_layers))
        self.mixed_layers = nn.ModuleList(block(True) for _ in range(cfg.num_mixed_layers))
        self.output = nn.Linear(d_model, vocab_size)

    def memory_kv(self, enc_out: Tensor) -> list[KV]:
        """Source-attention keys/values of ``enc_out`` for each mixed block, for ``forward``."""
        return [layer.src_attn.project_kv(enc_out) for layer in self.mixed_layers]

    def _project(self, x: Tensor) -> Tensor:
        return torch.log_softmax(self.output(x).float(), dim=-1)

    def forward(
        self,
        tae: Tensor,
        tae_mask: Tensor,
        enc_out: Tensor,
        enc_mask: Tensor,
        with_inter: bool = True,
        mem_kv: list[KV] | None = None,
    ) -> NATOutput:
        """Decode all positions at once.

        Args:
            tae: (N, U+1, D) from ``TAEExtractor``.
            tae_mask: (N, U+1) bool, True = real position (tokens and eos).
            enc_out: (N, T, D); enc_mask (N, T) bool.
            with_inter: also project the first mixed block's output (the InterCE loss needs it;
                decoding does not, so it skips that vocabulary projection).
            mem_kv: ``memory_kv`` rows for the N rows (ESA: projected once per utterance, then
                indexed per sampled path); ``enc_out`` is then not attended.

        Returns:
            NATOutput(log_probs (N, U+1, V), inter_log_probs (N, U+1, V) | None).
        """
        x = tae
        for layer in self.sa_layers:
            x = layer(x, tae_mask)
        inter = None
        for i, layer in enumerate(self.mixed_layers):
            x = layer(x, tae_mask, enc_out, enc_mask, None if mem_kv is None else mem_kv[i])
            if with_inter and i == 0 and len(self.mixed_layers) > 1:
                inter = self._project(x)
        return NATOutput(log_probs=self._project(x), inter_log_probs=inter)
