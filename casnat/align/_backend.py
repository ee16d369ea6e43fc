"""Decide, once, which implementation of the alignment ops is active.

The compiled extension ``casnat._C`` registers the ``torch.ops.casnat`` ops (C++/OpenMP on CPU,
CUDA when built with it). When it is missing (``CASNAT_BUILD_EXT=0``, a failed build) the numba
kernels in :mod:`casnat.align._numba` run instead and return the same results. The environment
variable ``CASNAT_ALIGN_BACKEND=cpp|numba`` forces one; ``cpp`` without the extension is an error.
"""

from __future__ import annotations

import logging
import os

import torch  # noqa: F401  (torch must be loaded before its extension)

logger = logging.getLogger(__name__)

_ENV = "CASNAT_ALIGN_BACKEND"


def _load_cpp() -> tuple[bool, str | None]:
    try:
        from casnat import _C  # noqa: F401
    except ImportError as err:
        return False, str(err)
    return hasattr(torch.ops.casnat, "ctc_viterbi_align"), None


HAS_CPP, _CPP_ERROR = _load_cpp()


def _decide() -> str:
    wanted = os.environ.get(_ENV, "").strip().lower()
    if wanted not in ("", "cpp", "numba"):
        raise ValueError(f"{_ENV} must be 'cpp' or 'numba', got {wanted!r}")
    if wanted == "cpp" and not HAS_CPP:
        raise ImportError(
            f"{_ENV}=cpp but the compiled extension casnat._C did not load ({_CPP_ERROR}); "
            "build it with `pip install --no-build-isolation -e .`"
        )
    if wanted == "numba" or not HAS_CPP:
        if not HAS_CPP:
            logger.info(
                "casnat._C not available (%s); using the numba alignment kernels", _CPP_ERROR
            )
        return "numba"
    return "cpp"


BACKEND: str = _decide()


def has_kernel(op: str, device: torch.device) -> bool:
    """Whether ``casnat::<op>`` has a compiled kernel for ``device`` (e.g. no CUDA kernel in a
    CPU-only build); callers run the CPU kernel and move the result back otherwise."""
    if not HAS_CPP:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device.type)
    return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key(f"casnat::{op}", key)


def backend() -> str:
    """Return the active alignment implementation: ``"cpp"`` or ``"numba"``.

    >>> backend() in ("cpp", "numba")
    True
    """
    return BACKEND
