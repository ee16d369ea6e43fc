"""CUDA kernels of the alignment ops give exactly the CPU kernel's paths, scores and samples.

Runs only where torch sees a GPU and casnat._C was built with its CUDA kernels; elsewhere every test
skips with the reason (``bash tools/gpu_check.sh OUT`` runs them on a GPU machine).
"""

from __future__ import annotations

import pytest
import torch

from casnat.align import _backend, alignment_to_segments, ctc_viterbi_align, sample_alignments
from casnat.testing import collapse, random_log_probs

CUDA = torch.device("cuda")

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(
        torch.cuda.is_available() and not _backend.has_kernel("ctc_viterbi_align", CUDA),
        reason="casnat._C was built without its CUDA kernels",
    ),
]


def _random_batch(B: int, T: int, U: int, V: int, seed: int):
    """Mixed input and target lengths (some rows too short for their target, some U = 0) and
    targets drawn from few labels, so repeated labels are common."""
    g = torch.Generator().manual_seed(seed)
    lp = random_log_probs(B, T, V, seed)
    in_len = torch.randint(max(1, T // 2), T + 1, (B,), generator=g)
    in_len[0] = T
    tg_len = torch.randint(0, U + 1, (B,), generator=g)
    tg_len[0] = U
    hi = min(V, 4) if seed % 2 else V
    targets = torch.randint(1, hi, (B, max(U, 1)), generator=g)
    targets[torch.arange(max(U, 1))[None] >= tg_len[:, None]] = -1
    return lp, in_len, targets, tg_len


def _both(lp, in_len, targets, tg_len):
    cpu = ctc_viterbi_align(lp, in_len, targets, tg_len, impl="cpp")
    gpu = ctc_viterbi_align(lp.to(CUDA), in_len.to(CUDA), targets.to(CUDA), tg_len.to(CUDA))
    assert gpu[0].device.type == "cuda" and gpu[1].device.type == "cuda"
    return cpu, (gpu[0].cpu(), gpu[1].cpu())


@pytest.mark.parametrize(
    "B,T,U,V,seed",
    [
        (16, 50, 10, 30, 0),
        (16, 50, 10, 30, 1),  # few labels: many repeats
        (8, 63, 20, 500, 2),
        (8, 65, 20, 500, 3),
        (8, 129, 20, 500, 4),
        (4, 400, 300, 5000, 5),  # S = 601: several states per thread
        (4, 300, 150, 40, 6),
        (3, 7, 0, 5, 7),  # U = 0
    ],
)
def test_viterbi_cuda_equals_cpu(B, T, U, V, seed):
    (a_cpu, s_cpu), (a_gpu, s_gpu) = _both(*_random_batch(B, T, U, V, seed))
    assert torch.equal(a_gpu, a_cpu)
    torch.testing.assert_close(s_gpu, s_cpu, rtol=0, atol=1e-4)


def test_viterbi_cuda_edge_rows():
    """T exactly the minimum (U + repeats), one frame too short (-inf), T = 1, U = 0, padding."""
    lp = random_log_probs(5, 6, 7, seed=11)
    targets = torch.tensor(
        [[1, 1, 2, 2], [1, 1, 2, 2], [3, -1, -1, -1], [-1, -1, -1, -1], [4, 5, -1, -1]]
    )
    tg_len = torch.tensor([4, 4, 1, 0, 2])
    in_len = torch.tensor([6, 5, 1, 3, 4])
    (a_cpu, s_cpu), (a_gpu, s_gpu) = _both(lp, in_len, targets, tg_len)
    assert torch.equal(a_gpu, a_cpu)
    assert s_gpu[0] > -torch.inf and s_gpu[1] == -torch.inf
    assert (a_gpu[1] == -1).all()
    assert collapse(a_gpu[0].tolist()) == [1, 1, 2, 2]
    assert a_gpu[3, :3].tolist() == [0, 0, 0] and (a_gpu[3, 3:] == -1).all()
    torch.testing.assert_close(s_gpu, s_cpu, rtol=0, atol=1e-5)


def test_viterbi_cuda_breaks_ties_like_cpu():
    """Uniform log-probs make every path tie: the documented tie rule decides, on every device."""
    lp = torch.full((3, 140, 6), -torch.log(torch.tensor(6.0)).item())
    targets = torch.tensor([[1, 2, 0], [3, 3, 4], [5, 0, 0]])
    targets[0, 2] = -1
    targets[2, 1:] = -1
    tg_len = torch.tensor([2, 3, 1])
    in_len = torch.tensor([140, 100, 6])
    (a_cpu, _), (a_gpu, _) = _both(lp, in_len, targets, tg_len)
    assert torch.equal(a_gpu, a_cpu)
    assert a_gpu[0, :3].tolist() == [1, 2, 2]  # enter each label as early as possible, then hold


def test_viterbi_cuda_long_target():
    """U = 1600: 3201 states, many per thread of the block."""
    (a_cpu, s_cpu), (a_gpu, s_gpu) = _both(*_random_batch(2, 1700, 1600, 50, 13))
    assert torch.equal(a_gpu, a_cpu)
    torch.testing.assert_close(s_gpu, s_cpu, rtol=0, atol=1e-3)


def test_viterbi_cuda_is_repeatable():
    lp, il, tg, tl = (x.to(CUDA) for x in _random_batch(8, 200, 40, 100, 17))
    a1, s1 = ctc_viterbi_align(lp, il, tg, tl)
    a2, s2 = ctc_viterbi_align(lp, il, tg, tl)
    assert torch.equal(a1, a2) and torch.equal(s1, s2)


@pytest.mark.parametrize("V", [1, 2, 33, 5000])
def test_sampling_cuda_equals_cpu(V):
    """Same generator seed, same samples; ties among the top labels go to the lower id."""
    lp = random_log_probs(6, 90, V, seed=V, peaky=0.5)
    lp[:, :10] = -torch.log(torch.tensor(float(V))).item()  # uniform rows: top-2 tie
    in_len = torch.tensor([90, 1, 45, 90, 0, 60])
    cpu = sample_alignments(
        lp, in_len, 9, 0.9, generator=torch.Generator().manual_seed(4), impl="cpp"
    )
    gpu = sample_alignments(
        lp.to(CUDA), in_len.to(CUDA), 9, 0.9, generator=torch.Generator().manual_seed(4)
    )
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
    assert torch.equal(
        gpu[:, 0].cpu(), torch.where(torch.arange(90)[None] < in_len[:, None], lp.argmax(-1), -1)
    )


def test_segments_on_cuda_match_cpu():
    lp, il, tg, tl = _random_batch(6, 120, 15, 40, 21)
    ali, _ = ctc_viterbi_align(lp, il, tg, tl, impl="cpp")
    cpu = alignment_to_segments(ali, il)
    gpu = alignment_to_segments(ali.to(CUDA), il.to(CUDA))
    for name in ("tokens", "token_lens", "trigger_mask", "starts", "ends"):
        a, b = getattr(cpu, name), getattr(gpu, name)
        assert b.device.type == "cuda", name
        assert torch.equal(a, b.cpu()), name
