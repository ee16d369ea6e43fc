"""casnat.nn: building blocks shared by the encoder and decoders (no data, no IO).

>>> from torch import nn
>>> count_parameters(nn.Linear(4, 3))
15
"""

from __future__ import annotations

from torch import nn

from casnat.nn.attention import (
    BoundedRelPositionAttention,
    MultiHeadAttention,
    RelPositionMultiHeadAttention,
)
from casnat.nn.convolution import ConvolutionModule
from casnat.nn.feed_forward import FeedForward
from casnat.nn.masks import causal_mask, lengths_to_mask
from casnat.nn.positional import PositionalEncoding, RelPositionalEncoding, sinusoidal_encoding
from casnat.nn.subsampling import Conv2dSubsampling4, subsampled_lengths


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "BoundedRelPositionAttention",
    "Conv2dSubsampling4",
    "ConvolutionModule",
    "FeedForward",
    "MultiHeadAttention",
    "PositionalEncoding",
    "RelPositionMultiHeadAttention",
    "RelPositionalEncoding",
    "causal_mask",
    "count_parameters",
    "lengths_to_mask",
    "sinusoidal_encoding",
    "subsampled_lengths",
]
