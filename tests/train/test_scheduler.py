import math

import pytest
import torch

from casnat.train.scheduler import cosine_factor, make_scheduler, noam_factor


def test_noam_peaks_at_warmup_then_decays_as_inverse_sqrt():
    f = noam_factor(100)
    assert f(1) == 0.01 and f(50) == 0.5 and f(100) == 1.0
    assert abs(f(400) - 0.5) < 1e-12
    assert f(99) < f(100) > f(101)


def _lrs(sched, opt, n):
    out = []
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_scheduler_sets_peak_lr_at_warmup():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-3)
    lrs = _lrs(make_scheduler(opt, "noam", warmup_steps=10), opt, 20)
    assert abs(max(lrs) - 1e-3) < 1e-12 and lrs.index(max(lrs)) == 8


def test_cosine_warms_up_then_anneals_to_the_floor_at_max_steps():
    f = cosine_factor(warmup_steps=10, max_steps=110, min_ratio=0.1)
    assert f(5) == 0.5 and f(10) == 1.0
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: half the way down
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    vals = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(vals, vals[1:], strict=False))  # never rises after warm-up
    assert f(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_cosine_scheduler_drives_the_optimizer_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2e-3)
    lrs = _lrs(make_scheduler(opt, "cosine", warmup_steps=5, max_steps=25), opt, 30)
    assert max(lrs) == pytest.approx(2e-3) and lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_cosine_needs_an_end():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        make_scheduler(opt, "cosine", warmup_steps=5)
    with pytest.raises(ValueError, match="must exceed"):
        make_scheduler(opt, "cosine", warmup_steps=50, max_steps=20)
    with pytest.raises(ValueError, match="unknown"):
        make_scheduler(opt, "linear", warmup_steps=5)
