"""Training on a GPU with AMP: the CUDA path of the trainer (autocast, GradScaler, checkpoints
that load on a CPU). Skips where torch sees no GPU; `tools/gpu_check.sh` runs it on a lent GPU."""

from __future__ import annotations

import math

import pytest
import torch

from casnat.checkpoint import latest_checkpoint, load_checkpoint
from casnat.testing import tiny_config
from casnat.train.trainer import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("amp", [True, False])
def test_cassnat_trains_on_cuda_and_resumes(tiny_fsdd, tmp_path, amp):
    exp = tmp_path / "exp"
    cfg = tiny_config(tiny_fsdd, "cassnat", max_steps=3, max_epochs=5, amp=amp)
    first = train(cfg, exp, device="cuda")
    assert first.steps == 3 and math.isfinite(first.last_valid_loss)
    ck = load_checkpoint(latest_checkpoint(exp), map_location="cpu")
    assert ck["step"] == 3
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    if amp:  # the scaler's state is saved, so a resumed run keeps its loss scale
        assert ck["scaler"]
    resumed = train(
        tiny_config(tiny_fsdd, "cassnat", max_steps=5, max_epochs=5, amp=amp),
        exp,
        resume=True,
        device="cuda",
    )
    assert resumed.steps == 5 and math.isfinite(resumed.last_valid_loss)
