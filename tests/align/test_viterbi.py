"""Tests of casnat.align.ctc_viterbi_align (cpp and numba backends)."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casnat.align import _backend, ctc_viterbi_align
from casnat.testing import collapse, path_score, random_log_probs


def brute_force(
    lp: torch.Tensor, target: list[int], blank: int = 0
) -> tuple[float, list[list[int]]]:
    """Best score (float64) over all length-T label sequences collapsing to ``target``, and the
    list of paths attaining it within 1e-5."""
    T = lp.size(0)
    alphabet = sorted({blank, *target})
    lp64 = lp.double()
    scored = []
    for seq in itertools.product(alphabet, repeat=T):
        if collapse(list(seq), blank) == target:
            scored.append((sum(float(lp64[t, a]) for t, a in enumerate(seq)), list(seq)))
    if not scored:
        return -math.inf, []
    best = max(s for s, _ in scored)
    return best, [p for s, p in scored if s > best - 1e-5]


def _one(lp, target, impl, blank=0):
    ali, sc = ctc_viterbi_align(
        lp[None],
        torch.tensor([lp.size(0)]),
        torch.tensor([target or [-1]])[:, : max(len(target), 1)],
        torch.tensor([len(target)]),
        blank=blank,
        impl=impl,
    )
    return ali[0].tolist(), float(sc[0])


@pytest.mark.parametrize(
    "T,target",
    [
        (4, [1, 2]),
        (5, [1, 1]),
        (3, [1, 1]),
        (5, [2, 1, 2]),
        (4, []),
        (2, [1, 1]),
        (6, [3, 3, 3]),
        (1, [2]),
        (5, [1, 2, 3, 1]),
    ],
)
def test_matches_brute_force(impl, T, target):
    for seed in range(3):
        lp = random_log_probs(1, T, 4, seed)[0]
        best, paths = brute_force(lp, target)
        ali, score = _one(lp, target, impl)
        if best == -math.inf:
            assert score == -math.inf and ali == [-1] * T
            continue
        assert score == pytest.approx(best, abs=1e-4)
        assert ali in paths
        assert collapse(ali) == target
        assert score == float(path_score(lp, ali))  # exact: same float32 accumulation


def test_t_exactly_minimum_and_too_short(impl):
    lp = random_log_probs(3, 5, 6, 0)
    targets = torch.tensor([[1, 1, 2], [1, 2, 3], [4, 4, 4]])
    # minimum frames: 1 1 2 -> 4; 1 2 3 -> 3; 4 4 4 -> 5
    ali, sc = ctc_viterbi_align(
        lp, torch.tensor([4, 3, 4]), targets, torch.tensor([3, 3, 3]), impl=impl
    )
    assert ali[0, :4].tolist() == [1, 0, 1, 2] and ali[0, 4] == -1
    assert ali[1, :3].tolist() == [1, 2, 3] and ali[1, 3:].tolist() == [-1, -1]
    assert sc[2] == -math.inf and ali[2].tolist() == [-1] * 5
    assert torch.isfinite(sc[:2]).all()


def test_zero_length_target_is_all_blank(impl):
    lp = random_log_probs(2, 6, 5, 1)
    ali, sc = ctc_viterbi_align(
        lp, torch.tensor([6, 3]), torch.full((2, 0), -1), torch.tensor([0, 0]), impl=impl
    )
    assert ali[0].tolist() == [0] * 6 and ali[1].tolist() == [0, 0, 0, -1, -1, -1]
    assert sc[0] == path_score(lp[0], [0] * 6)


def test_mixed_batch_with_padding_matches_single(impl):
    B, T, V = 5, 30, 12
    lp = random_log_probs(B, T, V, 2)
    in_lens = torch.tensor([30, 17, 9, 30, 1])
    tg = torch.tensor(
        [[3, 4, 4, 5, 6], [7, 7, 7, -1, -1], [2, 9, 2, 9, -1], [-1] * 5, [8, -1, -1, -1, -1]]
    )
    tg_lens = torch.tensor([5, 3, 4, 0, 1])
    ali, sc = ctc_viterbi_align(lp, in_lens, tg, tg_lens, impl=impl)
    for b in range(B):
        Tb, Ub = int(in_lens[b]), int(tg_lens[b])
        a1, s1 = ctc_viterbi_align(
            lp[b : b + 1, :Tb],
            in_lens[b : b + 1],
            tg[b : b + 1, : max(Ub, 1)],
            tg_lens[b : b + 1],
            impl=impl,
        )
        assert ali[b, :Tb].tolist() == a1[0].tolist() and (ali[b, Tb:] == -1).all()
        assert sc[b] == s1[0]
        assert collapse(ali[b].tolist()) == tg[b, :Ub].tolist()
        assert sc[b] == path_score(lp[b], ali[b, :Tb].tolist())


def test_tie_rule_stay_prev_skip():
    """Uniform log-probs: every path ties, so the rule alone decides the path in every backend."""
    lp = torch.full((1, 6, 4), math.log(0.25))
    tg = torch.tensor([[1, 2]])
    for impl in ["numba"] + (["cpp"] if _backend.HAS_CPP else []):
        ali, _ = ctc_viterbi_align(lp, torch.tensor([6]), tg, torch.tensor([2]), impl=impl)
        # backtracking from the last label keeps "stay" as long as it is finite, so under ties the
        # path enters each label as early as possible and holds it
        assert ali[0].tolist() == [1, 2, 2, 2, 2, 2], impl


@pytest.mark.skipif(not _backend.HAS_CPP, reason="casnat._C not built")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    B=st.integers(1, 4),
    T=st.integers(1, 40),
    V=st.integers(2, 9),
    U=st.integers(0, 12),
    seed=st.integers(0, 2**31 - 1),
    quantize=st.booleans(),
)
def test_cpp_equals_numba(B, T, V, U, seed, quantize):
    g = torch.Generator().manual_seed(seed)
    lp = torch.log_softmax(3 * torch.randn(B, T, V, generator=g), -1)
    if quantize:  # many exact ties
        lp = torch.round(lp)
    in_lens = torch.randint(0, T + 1, (B,), generator=g)
    tg_lens = torch.randint(0, U + 1, (B,), generator=g)
    tg = torch.randint(1, V, (B, U), generator=g)
    a_cpp, s_cpp = ctc_viterbi_align(lp, in_lens, tg, tg_lens, impl="cpp")
    a_nb, s_nb = ctc_viterbi_align(lp, in_lens, tg, tg_lens, impl="numba")
    assert torch.equal(a_cpp, a_nb)
    assert torch.equal(s_cpp, s_nb)


@pytest.mark.skipif(not _backend.HAS_CPP, reason="casnat._C not built")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    B=st.integers(1, 5),
    T=st.integers(1, 150),
    V=st.sampled_from([3, 7, 40, 1500]),
    U=st.sampled_from([0, 1, 2, 15, 16, 31, 32, 63, 64, 100, 127, 128, 140]),
    seed=st.integers(0, 2**31 - 1),
    quantize=st.booleans(),
    repeats=st.booleans(),
)
def test_register_kernel_equals_general_kernel(B, T, V, U, seed, quantize, repeats):
    """The AVX-512 register kernel (U <= 127) must give the general kernel's paths and scores
    bit for bit, ties (quantized log-probs), repeated labels and every vector-count boundary
    (U = 15/16, 31/32, 63/64, 127/128) included. Where the CPU lacks AVX-512 both runs take the
    general kernel and the test holds trivially."""
    g = torch.Generator().manual_seed(seed)
    lp = torch.log_softmax(3 * torch.randn(B, T, V, generator=g), -1)
    if quantize:  # many exact ties
        lp = torch.round(lp)
    in_lens = torch.randint(0, T + 1, (B,), generator=g)
    in_lens[0] = T
    tg_lens = torch.randint(0, U + 1, (B,), generator=g)
    tg_lens[0] = U
    tg = torch.randint(1, V, (B, U), generator=g)
    if repeats and U >= 4:
        tg[:, 1:4] = tg[:, :1]
    a_reg, s_reg = ctc_viterbi_align(lp, in_lens, tg, tg_lens, impl="cpp")
    with mock.patch.dict(os.environ, {"CASNAT_ALIGN_REGISTERS": "0"}):
        a_gen, s_gen = ctc_viterbi_align(lp, in_lens, tg, tg_lens, impl="cpp")
    assert torch.equal(a_reg, a_gen)
    assert torch.equal(s_reg, s_gen)


def test_matches_torchaudio_forced_align(impl):
    F = pytest.importorskip(
        "torchaudio.functional",
        reason="torchaudio not importable here (it needs torch 2.9.x; see tools/bench_align.py)",
    )
    for seed in range(5):
        lp = random_log_probs(1, 40, 10, seed)
        tg = torch.randint(1, 10, (1, 12), generator=torch.Generator().manual_seed(seed))
        ref, ref_scores = F.forced_align(lp, tg.int(), blank=0)
        ali, sc = ctc_viterbi_align(lp, torch.tensor([40]), tg, torch.tensor([12]), impl=impl)
        assert ali[0].tolist() == ref[0].tolist()
        assert float(sc[0]) == pytest.approx(float(ref_scores.sum()), abs=1e-4)


def test_accepts_grad_noncontiguous_half(impl):
    lp = random_log_probs(2, 10, 6, 3).transpose(0, 1).contiguous().transpose(0, 1)
    lp = lp.clone().requires_grad_(True)
    assert not lp.is_contiguous()
    tg, il, tl = (
        torch.tensor([[1, 2], [3, 3]]),
        torch.tensor([10, 8], dtype=torch.int32),
        torch.tensor([2, 2]),
    )
    ali, sc = ctc_viterbi_align(lp, il, tg, tl, impl=impl)
    assert not sc.requires_grad and ali.dtype == torch.int64 and sc.dtype == torch.float32
    ali16, _ = ctc_viterbi_align(lp.half(), il, tg, tl, impl=impl)
    assert ali16.shape == ali.shape


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"log_probs": torch.zeros(3, 4)}, r"log_probs must be \(B, T, V\), got shape \(3, 4\)"),
        ({"targets": torch.zeros(2, 3, dtype=torch.long)}, r"targets must be \(B, U\) with B = 1"),
        ({"input_lengths": torch.tensor([9])}, r"input_lengths must lie in \[0, 5\]"),
        ({"target_lengths": torch.tensor([1, 1])}, r"target_lengths must have shape \(1,\)"),
        ({"targets": torch.tensor([[0, 2]])}, r"targets\[0, 0\] = 0 must be in \[0, V = 4\)"),
        ({"targets": torch.tensor([[1, 7]])}, r"targets\[0, 1\] = 7"),
    ],
)
def test_errors_name_the_argument(kwargs, match, impl):
    """Both backends raise the same ValueError (the C++ kernel checks the values itself)."""
    args = {
        "log_probs": torch.zeros(1, 5, 4),
        "input_lengths": torch.tensor([5]),
        "targets": torch.tensor([[1, 2]]),
        "target_lengths": torch.tensor([2]),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ctc_viterbi_align(**args, impl=impl)


@pytest.mark.skipif(not _backend.HAS_CPP, reason="casnat._C not built")
def test_ops_pass_opcheck():
    """Schema, fake (torch.compile) registration, autograd registration and AOT dispatch."""
    lp = random_log_probs(2, 10, 6, 0)
    lens = torch.tensor([10, 7])
    tg, tl = torch.tensor([[1, 2, 2], [3, 4, -1]]), torch.tensor([3, 2])
    torch.library.opcheck(torch.ops.casnat.ctc_viterbi_align.default, (lp, lens, tg, tl, 0))
    bits = torch.randint(0, 2, (2, 3, 10), dtype=torch.uint8)
    torch.library.opcheck(torch.ops.casnat.sample_alignments.default, (lp, lens, bits, -0.1))


_NO_EXT = """
import importlib, os, sys
sys.modules["casnat._C"] = None  # as if the extension was never built
import torch
from casnat.align import _backend, backend, ctc_viterbi_align
assert backend() == "numba", backend()
one = torch.tensor([1])
ali, sc = ctc_viterbi_align(torch.zeros(1, 3, 4), torch.tensor([3]), 2 * one[None], one)
assert ali.tolist() == [[2, 2, 2]], ali
os.environ["CASNAT_ALIGN_BACKEND"] = "cpp"
try:
    importlib.reload(_backend)
except ImportError as err:
    assert "casnat._C" in str(err)
else:
    raise AssertionError("CASNAT_ALIGN_BACKEND=cpp without the extension must fail")
print("ok")
"""


def test_numba_fallback_without_extension():
    env = {k: v for k, v in os.environ.items() if k != "CASNAT_ALIGN_BACKEND"}
    out = subprocess.run([sys.executable, "-c", _NO_EXT], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(not _backend.HAS_CPP, reason="casnat._C not built")
def test_env_var_forces_numba(monkeypatch):
    import importlib

    monkeypatch.setenv("CASNAT_ALIGN_BACKEND", "numba")
    try:
        assert importlib.reload(_backend).backend() == "numba"
    finally:
        monkeypatch.delenv("CASNAT_ALIGN_BACKEND")
        importlib.reload(_backend)


@pytest.mark.skipif(not _backend.HAS_CPP, reason="casnat._C not built")
def test_cpp_equals_numba_large_vocab_long_targets():
    """V > 1024 takes the per-label prefetch path of the C++ kernel; U = 60 spans many vectors."""
    g = torch.Generator().manual_seed(11)
    lp = torch.log_softmax(2 * torch.randn(3, 150, 2000, generator=g), -1)
    tg = torch.randint(1, 2000, (3, 60), generator=g)
    tg[0, 10:14] = 7  # repeats
    il, tl = torch.tensor([150, 121, 90]), torch.tensor([60, 45, 60])
    a_cpp, s_cpp = ctc_viterbi_align(lp, il, tg, tl, impl="cpp")
    a_nb, s_nb = ctc_viterbi_align(lp, il, tg, tl, impl="numba")
    assert torch.equal(a_cpp, a_nb) and torch.equal(s_cpp, s_nb)
    assert torch.isfinite(s_cpp).all()
    for b in range(3):
        assert s_cpp[b] == path_score(lp[b], a_cpp[b, : int(il[b])].tolist())
