"""Position-wise feed-forward network (the macaron halves of Conformer blocks use Swish).

>>> import torch
>>> FeedForward(8, 32)(torch.zeros(2, 5, 8)).shape
torch.Size([2, 5, 8])
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from casnat.nn.dropout import Dropout

_ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


class FeedForward(nn.Module):
    """``Linear(D, F) -> activation -> dropout -> Linear(F, D)``.

    Normalisation, residual and output dropout belong to the block that uses it, so the same
    module serves pre-norm transformer layers and half-step macaron FFNs.
    """

    def __init__(
        self,
        d_model: int,
        ffn_dim: int,
        dropout: float = 0.0,
        activation: Literal["swish", "relu", "gelu"] = "swish",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        self.w1 = nn.Linear(d_model, ffn_dim)
        self.act = _ACTIVATIONS[activation]()
        self.dropout = Dropout(dropout)
        self.w2 = nn.Linear(ffn_dim, d_model)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, L, D) -> (N, L, D)."""
        return self.w2(self.dropout(self.act(self.w1(x))))

