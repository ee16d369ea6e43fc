"""Sinusoidal position encodings: absolute (AT decoder, TAE queries) and relative (Conformer).

The sinusoid of Vaswani et al.: ``pe[p, 2i] = sin(p / 10000^(2i/D))``,
``pe[p, 2i+1] = cos(p / 10000^(2i/D))``. It is computed on the fly for the positions needed,
so no length limit and no device/dtype bookkeeping.

>>> sinusoidal_encoding(torch.arange(5), 8).shape
torch.Size([5, 8])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from casnat.nn.dropout import Dropout


def sinusoidal_encoding(positions: Tensor, d_model: int) -> Tensor:
    """Sinusoidal embedding of (possibly negative) positions.

    Args:
        positions: (L,) integer or float positions.
        d_model: embedding size D.

    Returns:
        (L, D) float32 on the device of ``positions``.
    """
    pos = positions.to(torch.float32)[:, None]
    idx = torch.arange(0, d_model, 2, device=positions.device, dtype=torch.float32)
    angles = pos * torch.exp(-math.log(10000.0) * idx / d_model)[None, :]  # (L, ceil(D/2))
    pe = torch.empty(positions.numel(), d_model, device=positions.device)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe


class PositionalEncoding(nn.Module):
    """Absolute encoding: ``dropout(x * sqrt(D) + PE[0..L-1])``.

    The ``sqrt(D)`` scale lifts the token embeddings to a scale comparable to the encoding,
    as in the original transformer; ``scale=False`` adds the encoding unscaled.
    """

    def __init__(self, d_model: int, dropout: float = 0.0, scale: bool = True) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model) if scale else 1.0
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, L, D) -> (N, L, D)."""
        pe = sinusoidal_encoding(torch.arange(x.size(1), device=x.device), self.d_model)
        return self.dropout(x * self.xscale + pe.to(x.dtype)[None])


class RelPositionalEncoding(nn.Module):
    """Relative encoding for Transformer-XL style attention (Conformer encoder).

    Returns the scaled input and the embeddings of the relative distances ``T-1, ..., -(T-1)``
    (query minus key, descending), which ``RelPositionMultiHeadAttention`` consumes.
    Because the embedding of a distance does not depend on T, an utterance's output is the same
    whether it is batched with longer ones or not.
    """

    def __init__(self, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, T, D) -> (x' (N, T, D), pos_emb (1, 2T-1, D))."""
        t = x.size(1)
        rel = torch.arange(t - 1, -t, -1, device=x.device)
        pos_emb = sinusoidal_encoding(rel, self.d_model).to(x.dtype)[None]
        return self.dropout(x * self.xscale), self.dropout(pos_emb)
