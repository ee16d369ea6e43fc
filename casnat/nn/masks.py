"""Boolean mask helpers. Convention everywhere in casnat: ``True`` = valid / may attend.

>>> lengths_to_mask(torch.tensor([2, 3]))
tensor([[ True,  True, False],
        [ True,  True,  True]])
"""

from __future__ import annotations

import torch
from torch import Tensor


def lengths_to_mask(lens: Tensor, max_len: int | None = None) -> Tensor:
    """Padding mask from lengths.

    Args:
        lens: (N,) int64 valid lengths.
        max_len: width T of the mask; defaults to ``lens.max()``.

    Returns:
        (N, T) bool, True on the first ``lens[n]`` positions of row n.
    """
    if max_len is None:
        max_len = int(lens.max()) if lens.numel() > 0 else 0
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def causal_mask(length: int, device: torch.device | None = None) -> Tensor:
    """Lower-triangular self-attention mask: query i may attend to keys 0..i.

    Returns:
        (L, L) bool, True where key <= query.
    """
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()
