"""Argument checks at the Python boundary: every error names the argument, its shape and what was
expected, before a kernel (C++, CUDA or numba) sees the data."""

from __future__ import annotations

import torch


def check(cond: bool, fn: str, message: str) -> None:
    """Raise ``ValueError("<fn>: <message>")`` unless ``cond`` (the Python ``TORCH_CHECK``)."""
    if not cond:
        raise ValueError(f"{fn}: {message}")


def as_log_probs(fn: str, log_probs: torch.Tensor) -> torch.Tensor:
    """Detached, contiguous float32 ``(B, T, V)`` view of ``log_probs``.

    Accepts tensors that require grad (the training loop aligns under autograd), half/bfloat16/
    float64 (converted to float32) and non-contiguous tensors (copied).
    """
    check(
        isinstance(log_probs, torch.Tensor),
        fn,
        f"log_probs must be a Tensor, got {type(log_probs)}",
    )
    check(
        log_probs.dim() == 3,
        fn,
        f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}",
    )
    check(
        log_probs.is_floating_point(),
        fn,
        f"log_probs must be a float tensor, got {log_probs.dtype}",
    )
    check(log_probs.size(2) >= 1, fn, f"log_probs needs V >= 1, got shape {tuple(log_probs.shape)}")
    return log_probs.detach().to(torch.float32).contiguous()


def as_lengths(
    fn: str,
    name: str,
    lengths: torch.Tensor,
    batch: int,
    limit: int,
    device: torch.device,
    check_values: bool = True,
) -> torch.Tensor:
    """Contiguous int64 ``(B,)`` lengths on ``device`` with values in ``[0, limit]`` (the values
    are checked unless ``check_values`` is False: the caller's kernel checks them itself)."""
    check(isinstance(lengths, torch.Tensor), fn, f"{name} must be a Tensor, got {type(lengths)}")
    check(
        lengths.dim() == 1 and lengths.size(0) == batch,
        fn,
        f"{name} must have shape ({batch},), got {tuple(lengths.shape)}",
    )
    check(
        not lengths.is_floating_point() and not lengths.is_complex(),
        fn,
        f"{name} must be an integer tensor, got {lengths.dtype}",
    )
    lengths = lengths.detach().to(device=device, dtype=torch.int64).contiguous()
    if batch and check_values:
        lo, hi = int(lengths.min()), int(lengths.max())
        check(
            lo >= 0 and hi <= limit,
            fn,
            f"{name} must lie in [0, {limit}], got min {lo} max {hi}",
        )
    return lengths
