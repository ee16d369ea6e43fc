import torch

from casnat.train.scheduler import make_noam_scheduler, noam_factor


def test_noam_peaks_at_warmup_then_decays_as_inverse_sqrt():
    f = noam_factor(100)
    assert f(1) == 0.01 and f(50) == 0.5 and f(100) == 1.0
    assert abs(f(400) - 0.5) < 1e-12
    assert f(99) < f(100) > f(101)


def test_scheduler_sets_peak_lr_at_warmup():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-3)
    sched = make_noam_scheduler(opt, warmup_steps=10)
    lrs = []
    for _ in range(20):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert abs(max(lrs) - 1e-3) < 1e-12 and lrs.index(max(lrs)) == 8
