"""CTC output head and loss (blank = 0).

>>> head = CTCHead(16, 10)
>>> lp = head(torch.randn(2, 12, 16))
>>> loss = head.loss(lp, torch.tensor([12, 8]), torch.tensor([[3, 4, 5], [6, -1, -1]]),
...                  torch.tensor([3, 1]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CTCHead(nn.Module):
    """Linear projection to the vocabulary + log-softmax; ``loss`` is CTC with blank 0."""

    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.proj = nn.Linear(d_model, vocab_size)

    def forward(self, enc_out: Tensor) -> Tensor:
        """enc_out (N, T, D) -> log-probs (N, T, V), float32 also under autocast."""
        return torch.log_softmax(self.proj(enc_out).float(), dim=-1)

    @staticmethod
    def loss(log_probs: Tensor, enc_lens: Tensor, tokens: Tensor, token_lens: Tensor) -> Tensor:
        """Sum of per-utterance CTC losses divided by the batch size N.

        Args:
            log_probs: (N, T, V) from ``forward``.
            enc_lens: (N,) valid frames.
            tokens: (N, U) int64 padded with -1.
            token_lens: (N,).

        Returns:
            scalar. Infeasible utterances (more tokens than frames) contribute 0
            (``zero_infinity``) instead of poisoning the batch.
        """
        targets = tokens.clamp(min=0)  # entries past token_lens are ignored by ctc_loss
        total = F.ctc_loss(
            log_probs.float().transpose(0, 1),  # (T, N, V)
            targets,
            enc_lens,
            token_lens,
            blank=0,
            reduction="sum",
            zero_infinity=True,
        )
        return total / log_probs.size(0)
