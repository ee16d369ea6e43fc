"""Learning-rate schedules, set by their peak LR (clearer than a d_model**-0.5 factor).

noam:   lr(step) = peak_lr * min(step / warmup, sqrt(warmup / step)), step counted from 1.
cosine: linear warm-up to peak_lr, then a half cosine down to peak_lr * min_ratio at max_steps
        (held there after). Made for fixed budgets: training ends at a small LR.

>>> f = noam_factor(warmup_steps=100)
>>> round(f(100), 3), round(f(400), 3)
(1.0, 0.5)
>>> g = cosine_factor(warmup_steps=100, max_steps=300)
>>> round(g(50), 3), round(g(100), 3), round(g(200), 3), round(g(300), 3), round(g(900), 3)
(0.5, 1.0, 0.5, 0.0, 0.0)
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


def cosine_factor(
    warmup_steps: int, max_steps: int, min_ratio: float = 0.0,
    end: Callable[[], int] | None = None,
) -> Callable[[int], float]:
    """``end``: where the cosine ends, read at every step (default ``max_steps``). The trainer
    moves it earlier, once, when ``train.max_minutes`` will stop the run before ``max_steps``."""
    warmup = max(1, warmup_steps)
    if max_steps <= warmup:
        raise ValueError(f"cosine schedule: max_steps ({max_steps}) must exceed warmup_steps "
                         f"({warmup_steps})")

    def factor(step: int) -> float:
        s = max(1, step)
        if s <= warmup:
            return s / warmup
        last = max(warmup + 1, end()) if end is not None else max_steps
        frac = min(1.0, (s - warmup) / (last - warmup))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * frac))

    return factor


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    warmup_steps: int,
    max_steps: int | None = None,
    min_ratio: float = 0.0,
    end: Callable[[], int] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR whose factor multiplies each group's initial lr (set that to the peak LR).
    ``end`` (cosine only): see :func:`cosine_factor`."""
    if kind == "noam":
        f = noam_factor(warmup_steps)
    elif kind == "cosine":
        if not max_steps:
            raise ValueError("train.lr_schedule 'cosine' needs train.max_steps (where it ends)")
        f = cosine_factor(warmup_steps, max_steps, min_ratio, end)
    else:
        raise ValueError(f"unknown train.lr_schedule '{kind}' (noam or cosine)")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch_step: f(epoch_step + 1))
