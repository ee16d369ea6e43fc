"""Shared helpers for the alignment tests: which implementations exist and random CTC inputs."""

from __future__ import annotations

import pytest
import torch

from casnat.align import _backend

IMPLS = ["numba"] + (["cpp", "cpp-general"] if _backend.HAS_CPP else [])


@pytest.fixture(params=IMPLS)
def impl(request, monkeypatch) -> str:
    """Every available backend, so each test runs against cpp and numba alike.

    ``cpp-general`` is the C++ op with its AVX-512 register kernel (U <= 127) switched off by
    ``CASNAT_ALIGN_REGISTERS=0``, so both C++ Viterbi kernels are tested on a machine that has
    AVX-512 (elsewhere both params run the general kernel)."""
    if request.param == "cpp-general":
        monkeypatch.setenv("CASNAT_ALIGN_REGISTERS", "0")
        return "cpp"
    return request.param


def random_log_probs(B: int, T: int, V: int, seed: int, peaky: float = 3.0) -> torch.Tensor:
    """``(B, T, V)`` float32 log-softmax of scaled Gaussian logits, peakier for larger ``peaky``."""
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(peaky * torch.randn(B, T, V, generator=g), dim=-1)


def collapse(path: list[int], blank: int = 0) -> list[int]:
    """CTC collapse: merge repeats, then drop blanks (-1 padding frames are dropped too)."""
    out, prev = [], None
    for a in path:
        if a != prev and a != blank and a >= 0:
            out.append(a)
        prev = a
    return out


def path_score(lp: torch.Tensor, path: list[int]) -> torch.Tensor:
    """float32 running sum of ``lp[t, path[t]]`` in frame order (the kernels' summation order)."""
    acc = torch.tensor(0.0, dtype=torch.float32)
    for t, a in enumerate(path):
        acc = acc + lp[t, a]
    return acc
