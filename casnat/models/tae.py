"""Token-level acoustic embedding (TAE) extractor.

One source-attention layer + FFN. Query u is the sinusoidal encoding ``PE[u]`` (no learned
token embedding: at inference the tokens are unknown); keys/values are the encoder frames
allowed by row u of the trigger mask, i.e. the segment the CTC alignment assigned to token u
(widened by the trigger frames). ``TAE_u = FFN(MHA(PE_u, H, H, mask_u))``, with residuals.

>>> tae = TAEExtractor(16, 2, 32, 0.0)
>>> mask = torch.zeros(1, 3, 10, dtype=torch.bool); mask[0, 0, :4] = True; mask[0, 1, 3:] = True
>>> out = tae(torch.randn(1, 10, 16), mask)  # row 2 is all False -> zeros
>>> out.shape, bool(out[0, 2].abs().sum() == 0)
(torch.Size([1, 3, 16]), True)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from casnat.nn.attention import KV, MultiHeadAttention
from casnat.nn.dropout import Dropout
from casnat.nn.feed_forward import FeedForward
from casnat.nn.positional import sinusoidal_encoding


class TAEExtractor(nn.Module):
    """(N, T, D) encoder output + (N, U+1, T) trigger mask -> (N, U+1, D) TAEs."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.src_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ffn_dim, dropout, "swish")
        self.norm_out = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, enc_out: Tensor, trigger_mask: Tensor, kv: KV | None = None) -> Tensor:
        """Extract one embedding per decoder position.

        Args:
            enc_out: (N, T, D) encoder output.
            trigger_mask: (N, U+1, T) bool, True = frame belongs to position u's segment (already
                ANDed with the padding mask by the caller).
            kv: ``src_attn.project_kv`` rows for the N queries (then ``enc_out`` may hold one row
                per utterance instead of one per query row: ESA decodes K paths per utterance).

        Returns:
            (N, U+1, D); positions whose mask row has no True (padding) are exactly zero.
        """
        n, positions, t = trigger_mask.shape
        if enc_out.size(1) != t or (kv is None and enc_out.size(0) != n):
            raise ValueError(
                f"trigger_mask {tuple(trigger_mask.shape)} does not match enc_out "
                f"{tuple(enc_out.shape)}: expected (N, U+1, T) with the same N and T"
            )
        pe = sinusoidal_encoding(torch.arange(positions, device=enc_out.device), self.d_model)
        query = pe.to(enc_out.dtype)[None].expand(n, -1, -1)  # (N, U+1, D)
        x = query + self.dropout(self.src_attn(query, enc_out, enc_out, trigger_mask, kv))
        x = x + self.dropout(self.ff(self.norm_ff(x)))
        x = self.norm_out(x)
        return x.masked_fill(~trigger_mask.any(dim=-1, keepdim=True), 0.0)
