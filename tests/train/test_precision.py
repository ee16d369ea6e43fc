"""bf16 training on CPU: the precision choice, its fallback, loss parity with fp32, exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from lhotse import CutSet

from casnat.checkpoint import load_checkpoint, step_checkpoints
from casnat.config import ConfigError
from casnat.data.loader import make_train_loader
from casnat.data.tokenizer import Tokenizer
from casnat.models.asr import ASRModel
from casnat.testing import tiny_config
from casnat.train import precision
from casnat.train.precision import ENV_CPU_BF16, resolve_precision
from casnat.train.trainer import train

CPU = torch.device("cpu")
HAS_BF16, WHY = precision.cpu_bf16_support()
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason=f"no native bf16 on this CPU: {WHY}")


def _weights(exp) -> dict[str, torch.Tensor]:
    """The final weights: those of the run's last step checkpoint."""
    return load_checkpoint(step_checkpoints(exp)[-1])["model"]


@pytest.fixture(autouse=True)
def _bf16_pays_off(monkeypatch):
    """These tests are about bf16 training itself, so "auto" must choose it wherever the CPU has
    native bf16, whether or not bf16 GEMM is faster than fp32 on this particular machine."""
    monkeypatch.setattr(precision, "bf16_gemm_speedup", lambda: 2.0)


def test_precision_choice_and_its_reason(monkeypatch):
    monkeypatch.delenv(ENV_CPU_BF16, raising=False)
    assert resolve_precision(CPU, amp=False).name == "fp32"
    assert resolve_precision(CPU, amp_dtype="fp32").dtype is None
    assert resolve_precision(CPU, amp_dtype="bf16").dtype is torch.bfloat16
    with pytest.raises(ConfigError, match="fp16 is for CUDA only"):
        resolve_precision(CPU, amp_dtype="fp16")
    with pytest.raises(ConfigError, match="amp_dtype"):
        resolve_precision(CPU, amp_dtype="half")
    # A CPU without native bf16: fp32, and the reason says so.
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (False, "no bf16 here"))
    p = resolve_precision(CPU)
    assert p.dtype is None and "no bf16 here" in p.describe()
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: (True, "native"))
    monkeypatch.setattr(precision, "bf16_gemm_speedup", lambda: 2.0)
    assert resolve_precision(CPU).dtype is torch.bfloat16
    # Native bf16 that measures slower than fp32 (seen on one Xeon): auto stays fp32 and says
    # why; an explicit bf16 still gets it.
    monkeypatch.setattr(precision, "bf16_gemm_speedup", lambda: 0.6)
    p = resolve_precision(CPU)
    assert p.dtype is None and "0.60x fp32" in p.reason
    assert resolve_precision(CPU, amp_dtype="bf16").dtype is torch.bfloat16
    monkeypatch.setenv(ENV_CPU_BF16, "0")  # the override wins over detection and the config
    for dtype in ("auto", "bf16"):
        p = resolve_precision(CPU, amp_dtype=dtype)
        assert p.dtype is None and f"{ENV_CPU_BF16}=0" in p.reason
    assert not p.grad_scaler  # a GradScaler is only for CUDA


@needs_bf16
def test_bf16_losses_match_fp32_on_a_real_batch_and_gradients_are_finite(tiny_fsdd, tmp_path):
    cfg = tiny_config(tiny_fsdd, "cassnat")
    cuts = CutSet.from_file(cfg.data.train_cuts)
    tok = Tokenizer.train([s.text for c in cuts for s in c.supervisions], cfg.tokenizer, tmp_path)
    loader, _ = make_train_loader(cuts, tok, cfg.data, seed=0)
    batch = next(iter(loader))
    torch.manual_seed(0)
    model = ASRModel(cfg.model, tok.vocab_size, cfg.features.num_mel_bins)
    args = (batch.feats, batch.feat_lens, batch.tokens, batch.token_lens)
    ref = model(*args)
    prec = resolve_precision(CPU)
    assert prec.name == "bf16"
    with prec.autocast():
        got = model(*args)
    assert got.total.dtype == torch.float32  # losses are reduced in fp32
    for part in ("total", "ctc", "inter_ctc", "ce", "at"):
        g, r = float(getattr(got, part)), float(getattr(ref, part))
        assert math.isfinite(g) and abs(g - r) <= 0.05 * abs(r), (part, g, r)
    got.total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32, name  # fp32 master weights
        assert torch.isfinite(p.grad).all(), name


@needs_bf16
def test_bf16_training_resumes_exactly(tiny_fsdd, tmp_path, monkeypatch):
    """Train 5 steps; train 2, stop, resume to 5: the same weights, under bf16 autocast."""
    monkeypatch.delenv(ENV_CPU_BF16, raising=False)
    full, part = tmp_path / "full", tmp_path / "part"
    train(tiny_config(tiny_fsdd, "cassnat", max_steps=5, max_epochs=3), full, device="cpu",
          dump_batch_ids=True)
    train(tiny_config(tiny_fsdd, "cassnat", max_steps=2, max_epochs=3), part, device="cpu")
    train(tiny_config(tiny_fsdd, "cassnat", max_steps=5, max_epochs=3), part, resume=True,
          device="cpu", dump_batch_ids=True)
    assert "precision=bf16" in (full / "train.log").read_text()
    a, b = _weights(full), _weights(part)
    for k in a:
        assert torch.equal(a[k], b[k]), k
        assert a[k].dtype == b[k].dtype  # checkpoints keep the fp32 weights
    assert all(v.dtype != torch.bfloat16 for v in a.values())


def test_fallback_forced_by_env_trains_in_fp32(tiny_fsdd, tmp_path, monkeypatch):
    """CASNAT_CPU_BF16=0: the log names the reason and the run is the amp=False (fp32) run."""
    cfg = tiny_config(tiny_fsdd, "cassnat", max_steps=2, max_epochs=3)
    monkeypatch.setenv(ENV_CPU_BF16, "0")
    train(cfg, tmp_path / "forced", device="cpu", dump_batch_ids=True)
    monkeypatch.delenv(ENV_CPU_BF16)
    train(tiny_config(tiny_fsdd, "cassnat", max_steps=2, max_epochs=3, amp=False),
          tmp_path / "fp32", device="cpu", dump_batch_ids=True)
    log = (tmp_path / "forced" / "train.log").read_text()
    assert sum("precision=" in ln for ln in log.splitlines()) == 1
    assert f"precision=fp32: fp32 on cpu (bf16 disabled by {ENV_CPU_BF16}=0)" in log
    a, b = _weights(tmp_path / "forced"), _weights(tmp_path / "fp32")
    assert all(torch.equal(a[k], b[k]) for k in a)
    if HAS_BF16:  # and it is not what the default (bf16) run computes
        train(cfg, tmp_path / "bf16", device="cpu", dump_batch_ids=True)
        c = _weights(tmp_path / "bf16")
        assert not all(torch.equal(a[k], c[k]) for k in a)
