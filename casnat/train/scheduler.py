"""Noam learning-rate schedule, set by its peak LR (clearer than a d_model**-0.5 factor).

lr(step) = peak_lr * min(step / warmup, sqrt(warmup / step)), step counted from 1.

>>> f = noam_factor(warmup_steps=100)
>>> round(f(100), 3), round(f(400), 3)
(1.0, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def noam_factor(warmup_steps: int) -> Callable[[int], float]:
    warmup = max(1, warmup_steps)

    def factor(step: int) -> float:
        s = max(1, step)
        return min(s / warmup, math.sqrt(warmup / s))

    return factor


def make_noam_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR whose factor multiplies each group's initial lr (set that to the peak LR)."""
    f = noam_factor(warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch_step: f(epoch_step + 1))
