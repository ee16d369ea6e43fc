"""Dropout whose CPU mask costs a fraction of ``torch.nn.Dropout``'s.

On CPU, ``nn.Dropout`` draws one random float per element (``bernoulli_``), and for casnat's small
models that drawing was ~18% of the encoder's forward + backward time on a 2-core CPU (profiled:
30 ``bernoulli_`` calls, 139 of 789 ms), more than all its attention matmuls. Here the mask comes
from 16 random bits per element instead: one ``random_()`` on an int64 buffer gives four 16-bit
draws per generator call, ~10x cheaper than ``bernoulli_``. ``p`` is resolved to 1/65536 (0.1
becomes 0.100006), far below anything training can tell apart.

The mask is drawn from torch's default CPU generator, so ``torch.manual_seed`` and the
trainer's saved RNG state make it reproducible and keep an exact resume exact. On CUDA (whose
Philox generator is already fast) and in eval mode this is ``torch.nn.functional.dropout``.

>>> d = Dropout(0.5).train()
>>> _ = torch.manual_seed(0)
>>> y = d(torch.ones(10000))
>>> sorted(set(y.tolist()))
[0.0, 2.0]
>>> abs((y == 0).float().mean().item() - 0.5) < 0.02
True
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_LEVELS = 1 << 16


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> Tensor:
    """A bool tensor of ``shape``, each element True with probability ``1 - p`` (to 1/65536)."""
    n = 1
    for s in shape:
        n *= int(s)
    # The full 64-bit range: a bare ``random_()`` on int64 leaves the sign bit 0, which would
    # bias every fourth 16-bit draw.
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    draws = bits.view(torch.int16)[:n].view(shape)  # uniform over [-32768, 32767]
    return draws >= round(p * _LEVELS) - _LEVELS // 2


class _MaskedScale(torch.autograd.Function):
    """y = x * mask * scale, keeping only the bool mask (1 byte per element) for backward."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return x.mul(mask).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        return grad.mul(mask).mul_(ctx.scale), None, None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Functional form of :class:`Dropout`."""
    if not training or p <= 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return nn.functional.dropout(x, p, True)
    return _MaskedScale.apply(x, keep_mask(x.shape, p), 1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Drop-in for ``torch.nn.Dropout(p)`` (no parameters, no state-dict entries)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


__all__ = ["Dropout", "dropout", "keep_mask"]
