"""Conformer encoder: conv2d subsampling x4, then Conformer blocks (registered as ``conformer``).

Each block: half-step macaron Swish FFN, relative-position MHSA, convolution module, second
half-step FFN, LayerNorm (Gulati et al., 2020). All sub-modules are pre-norm with residuals.

>>> import torch
>>> from casnat.config import EncoderConfig
>>> enc = ConformerEncoder(EncoderConfig(d_model=16, num_heads=2, ffn_dim=32, num_layers=2))
>>> o = enc(torch.zeros(2, 50, 80), torch.tensor([50, 30]))
>>> o.out.shape, o.lens.tolist()
(torch.Size([2, 11, 16]), [11, 6])
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from casnat.config import EncoderConfig
from casnat.models.encoder import EncoderOutput
from casnat.nn.attention import RelPositionMultiHeadAttention
from casnat.nn.convolution import ConvolutionModule
from casnat.nn.dropout import Dropout
from casnat.nn.feed_forward import FeedForward
from casnat.nn.masks import lengths_to_mask
from casnat.nn.positional import RelPositionalEncoding
from casnat.nn.subsampling import Conv2dSubsampling4


class ConformerBlock(nn.Module):
    """One Conformer block over (N, T, D) frames."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ffn_dim: int,
        conv_kernel: int,
        dropout: float,
        conv_norm: Literal["batch_norm", "layer_norm"] = "batch_norm",
    ) -> None:
        super().__init__()
        self.norm_ff1 = nn.LayerNorm(d_model)
        self.ff1 = FeedForward(d_model, ffn_dim, dropout, "swish")
        self.norm_mha = nn.LayerNorm(d_model)
        self.mha = RelPositionMultiHeadAttention(d_model, num_heads, dropout)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv = ConvolutionModule(d_model, conv_kernel, dropout, conv_norm)
        self.norm_ff2 = nn.LayerNorm(d_model)
        self.ff2 = FeedForward(d_model, ffn_dim, dropout, "swish")
        self.norm_out = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Tensor) -> Tensor:
        """x (N, T, D), pos_emb (1, 2T-1, D), mask (N, T) bool -> (N, T, D)."""
        x = x + 0.5 * self.dropout(self.ff1(self.norm_ff1(x)))
        y = self.norm_mha(x)
        x = x + self.dropout(self.mha(y, y, y, pos_emb, mask[:, None, :]))
        x = x + self.conv(self.norm_conv(x), mask)  # the conv module ends with dropout
        x = x + 0.5 * self.dropout(self.ff2(self.norm_ff2(x)))
        return self.norm_out(x)


class ConformerEncoder(nn.Module):
    """(N, T, F) features + lengths -> ``EncoderOutput`` at a quarter of the frame rate.

    Implements :class:`casnat.models.encoder.Encoder`.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        if cfg.inter_ctc_layer is not None and not 1 <= cfg.inter_ctc_layer <= cfg.num_layers:
            raise ValueError(
                f"encoder.inter_ctc_layer={cfg.inter_ctc_layer} must be in 1..{cfg.num_layers}"
            )
        self.cfg = cfg
        self.subsampling = Conv2dSubsampling4(cfg.input_dim, cfg.d_model, cfg.subsampling_channels)
        self.pos_enc = RelPositionalEncoding(cfg.d_model, cfg.dropout)
        self.layers = nn.ModuleList(
            ConformerBlock(
                cfg.d_model, cfg.num_heads, cfg.ffn_dim, cfg.conv_kernel, cfg.dropout, cfg.conv_norm
            )
            for _ in range(cfg.num_layers)
        )

    @property
    def d_model(self) -> int:
        """Width D of the output frames."""
        return self.cfg.d_model

    @property
    def subsampling_factor(self) -> int:
        """Feature frames per encoder frame (4): the one source of the encoder frame rate."""
        return self.subsampling.factor

    @property
    def min_input_frames(self) -> int:
        """Shortest input, in feature frames, that gives at least one encoder frame (7)."""
        return self.subsampling.min_input_frames

    def forward(self, feats: Tensor, feat_lens: Tensor) -> EncoderOutput:
        """feats (N, T, F) float, feat_lens (N,) int64 -> EncoderOutput (out (N, T', D), ...)."""
        if feats.dim() != 3 or feats.size(-1) != self.cfg.input_dim:
            raise ValueError(
                f"feats: expected (N, T, {self.cfg.input_dim}), got {tuple(feats.shape)}"
            )
        x, lens = self.subsampling(feats, feat_lens)
        mask = lengths_to_mask(lens, x.size(1))
        x, pos_emb = self.pos_enc(x)
        inter = None
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x, pos_emb, mask)
            if i == self.cfg.inter_ctc_layer:
                inter = x
        return EncoderOutput(out=x, lens=lens, inter=inter)


__all__ = ["ConformerBlock", "ConformerEncoder"]
