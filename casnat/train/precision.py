"""Which floating-point precision a training run computes in, decided once, with the reason.

On this project's 2-core CPUs training is compute-bound, and a CPU with native bf16 (AVX512-BF16
or AMX) runs bf16 matmuls ~5x faster than fp32 ones; on CUDA the tensor cores do the same. So with
``train.amp: true`` (the default) the forward runs under :func:`torch.autocast`:

- CUDA: bf16 where the GPU supports it, else fp16 with a GradScaler (as casnat always did);
- CPU: bf16 where the CPU has native bf16 instructions, else fp32 (emulated bf16 is slower than
  fp32), with the reason in the log line.

Autocast keeps the parameters, gradients and optimizer state in fp32 (master weights), so the
checkpoint format does not change with the precision. The models take ``.float()`` before every
log-softmax (CPU autocast would leave it in bf16), and CPU autocast runs ``ctc_loss`` and
``nll_loss`` in fp32 itself; the Viterbi alignment op gets fp32 log-probs.

``train.amp_dtype`` forces a choice (``bf16``, ``fp16`` on CUDA only, ``fp32``); the environment
variable ``CASNAT_CPU_BF16=0`` forces fp32 on CPU (e.g. to compare against an fp32 run).

>>> p = resolve_precision(torch.device("cpu"), amp=False)
>>> p.name, p.reason
('fp32', 'train.amp is false')
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from casnat.config import ConfigError

log = logging.getLogger(__name__)

ENV_CPU_BF16 = "CASNAT_CPU_BF16"
_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}


@dataclass(frozen=True)
class Precision:
    """The autocast dtype for one device (``None`` = plain fp32) and why it was chosen."""

    device_type: str
    dtype: torch.dtype | None
    reason: str

    @property
    def name(self) -> str:
        return _NAMES[self.dtype]

    @property
    def grad_scaler(self) -> bool:
        """Whether a GradScaler is enabled: on CUDA whenever autocast is (as before bf16 on CPU);
        it is a no-op cost for bf16 and needed for fp16."""
        return self.device_type == "cuda" and self.dtype is not None

    def autocast(self) -> AbstractContextManager:
        """``torch.autocast`` in this precision, or a no-op context for fp32."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def describe(self) -> str:
        """One line for train.log: ``precision=bf16 autocast on cpu (...)``."""
        what = "fp32" if self.dtype is None else f"{self.name} autocast"
        scaler = " + GradScaler" if self.grad_scaler else ""
        return f"precision={self.name}: {what}{scaler} on {self.device_type} ({self.reason})"


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU runs bf16 natively through oneDNN, and a reason either way."""
    if not torch.backends.mkldnn.is_available():
        return False, "torch was built without oneDNN (mkldnn)"
    checks = []
    if hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported"):
        checks.append(bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()))
    if hasattr(torch.cpu, "_is_avx512_bf16_supported"):
        # oneDNN also reports "supported" for plain AVX512 (emulated, slower than fp32), so the
        # native instruction is what decides.
        native = torch.cpu._is_avx512_bf16_supported()
        amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        checks.append(bool(native or amx))
    if not checks:
        return False, "this torch cannot tell whether the CPU has bf16 instructions"
    if all(checks):
        return True, "the CPU has native bf16 (AVX512-BF16/AMX)"
    return False, "the CPU lacks native bf16 instructions (AVX512-BF16/AMX)"


def resolve_precision(device: torch.device, amp: bool = True, amp_dtype: str = "auto") -> Precision:
    """The precision a run on ``device`` uses for ``train.amp`` / ``train.amp_dtype``.

    Raises ConfigError for a dtype the device cannot autocast to (fp16 on CPU).
    """
    kind = device.type
    if amp_dtype not in ("auto", "bf16", "fp16", "fp32"):
        raise ConfigError(f"train.amp_dtype: expected auto, bf16, fp16 or fp32, got {amp_dtype!r}")
    if not amp:
        return Precision(kind, None, "train.amp is false")
    if amp_dtype == "fp32":
        return Precision(kind, None, "train.amp_dtype is fp32")
    if kind == "cuda":
        if amp_dtype == "bf16" or (amp_dtype == "auto" and torch.cuda.is_bf16_supported()):
            return Precision(kind, torch.bfloat16, f"train.amp_dtype={amp_dtype}")
        return Precision(kind, torch.float16, f"train.amp_dtype={amp_dtype}")
    if kind != "cpu":
        return Precision(kind, None, f"no autocast policy for device type {kind!r}")
    if amp_dtype == "fp16":
        raise ConfigError("train.amp_dtype: fp16 is for CUDA only; on CPU use bf16, fp32 or auto")
    if os.environ.get(ENV_CPU_BF16, "").strip() == "0":
        return Precision(kind, None, f"bf16 disabled by {ENV_CPU_BF16}=0")
    if amp_dtype == "bf16":
        return Precision(kind, torch.bfloat16, "train.amp_dtype is bf16")
    ok, why = cpu_bf16_support()
    if not ok:
        return Precision(kind, None, why)
    # The instruction set is not the whole story: on some CPUs that report AVX512-BF16 oneDNN's
    # bf16 GEMM is slower than fp32 (measured here on one machine: 142 vs 231 GFLOP/s), and
    # autocast would then only cost speed. "auto" takes bf16 where it measures faster.
    ratio = bf16_gemm_speedup()
    if ratio < MIN_BF16_SPEEDUP:
        return Precision(kind, None, f"{why}, but bf16 GEMM measured {ratio:.2f}x fp32 here "
                                     f"(auto needs >= {MIN_BF16_SPEEDUP}x; train.amp_dtype: bf16 "
                                     "forces it)")
    return Precision(kind, torch.bfloat16, f"{why}; bf16 GEMM measured {ratio:.2f}x fp32")


#: What bf16 GEMM must gain over fp32 for ``amp_dtype: auto`` to take it on CPU.
MIN_BF16_SPEEDUP = 1.2
_SPEEDUP: float | None = None


def bf16_gemm_speedup(size: tuple[int, int, int] = (1024, 576, 1024), reps: int = 4) -> float:
    """fp32 / bf16 time of a model-sized matmul (an FFN layer of 1024 frames) on this CPU with
    the current threads, measured once per process (~0.1 s)."""
    global _SPEEDUP
    if _SPEEDUP is None:
        import time

        m, k, n = size
        times = {}
        for dt in (torch.float32, torch.bfloat16):
            a, b = torch.randn(m, k, dtype=dt), torch.randn(k, n, dtype=dt)
            a @ b  # warm-up: oneDNN builds its kernel
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                a @ b
                a @ b
                best = min(best, time.perf_counter() - t0)
            times[dt] = best
        _SPEEDUP = times[torch.float32] / times[torch.bfloat16]
    return _SPEEDUP


__all__ = [
    "ENV_CPU_BF16",
    "MIN_BF16_SPEEDUP",
    "Precision",
    "bf16_gemm_speedup",
    "cpu_bf16_support",
    "resolve_precision",
]
