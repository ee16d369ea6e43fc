"""Alignment test fixtures: every available backend (the shared helpers are in casnat.testing)."""

from __future__ import annotations

import pytest

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
