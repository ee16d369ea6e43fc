"""Batched CTC Viterbi (forced) alignment: the best CTC path of each utterance's reference.

CASS-NAT cuts the encoder output into token segments along this path in every training batch
(see ``docs/method.md``, "From a CTC path to segments"), so it runs as one compiled, batched op
(``torch.ops.casnat.ctc_viterbi_align``: C++/OpenMP on CPU, CUDA on GPU) with a numba fallback.
On CPUs with AVX-512, targets of up to 127 labels take a kernel that keeps every state in vector
registers (several times less work per frame than the general kernel, same paths and scores);
``CASNAT_ALIGN_REGISTERS=0`` switches it off, e.g. to compare the two.

Tie rule (the same in every backend, and the same as ``torchaudio.functional.forced_align``):
when moves score equally, stay (state s) beats previous (s-1) beats skip (s-2), i.e. a move is
taken only if it is strictly better than every smaller move; at the last frame the path ends on the
last label unless the trailing blank is strictly better. Since backtracking prefers "stay", among
equally good paths the one that enters each label earliest and holds it is returned (uniform
log-probs, target [1, 2], T = 6 -> 1 2 2 2 2 2). Scores accumulate in float32, frame by frame, so
``scores[b]`` is the float32 running sum of ``log_probs[b, t, alignment[b, t]]`` over t.
"""

from __future__ import annotations

import torch

from casnat.align import _backend
from casnat.align._checks import as_lengths, as_log_probs, check
from casnat.profiling import phase

_FN = "ctc_viterbi_align"

if _backend.HAS_CPP:

    @torch.library.register_fake("casnat::ctc_viterbi_align")
    def _fake_viterbi(log_probs, input_lengths, targets, target_lengths, blank):
        B, T, _ = log_probs.shape
        return (
            log_probs.new_empty((B, T), dtype=torch.int64),
            log_probs.new_empty((B,), dtype=torch.float32),
        )


def _prepare(
    log_probs: torch.Tensor,
    input_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convert the inputs to what every kernel takes and check them. ``check_values=False``
    leaves the value checks (lengths in range, target ids valid) to the CPU kernel, which makes
    them in one pass over the same memory with the same messages: as about ten small tensor ops
    here they cost ~100 us a call, a quarter of the op's time on a batch of short utterances."""
    log_probs = as_log_probs(_FN, log_probs)
    B, T, V = log_probs.shape
    dev = log_probs.device
    check(isinstance(targets, torch.Tensor), _FN, f"targets must be a Tensor, got {type(targets)}")
    check(
        targets.dim() == 2 and targets.size(0) == B,
        _FN,
        f"targets must be (B, U) with B = {B}, got shape {tuple(targets.shape)}",
    )
    check(
        not targets.is_floating_point(),
        _FN,
        f"targets must be an integer tensor, got {targets.dtype}",
    )
    check(0 <= blank < V, _FN, f"blank must be in [0, V = {V}), got {blank}")
    input_lengths = as_lengths(_FN, "input_lengths", input_lengths, B, T, dev, check_values)
    target_lengths = as_lengths(
        _FN, "target_lengths", target_lengths, B, targets.size(1), dev, check_values
    )
    targets = targets.detach().to(device=dev, dtype=torch.int64).contiguous()
    if check_values and targets.numel():
        valid = torch.arange(targets.size(1), device=dev) < target_lengths[:, None]
        bad = valid & ((targets < 0) | (targets >= V) | (targets == blank))
        if bool(bad.any()):
            b, u = (int(i) for i in bad.nonzero()[0])
            check(
                False,
                _FN,
                f"targets[{b}, {u}] = {int(targets[b, u])} must be in [0, V = {V}) and differ "
                f"from blank = {blank} (targets shape {tuple(targets.shape)})",
            )
    return log_probs, input_lengths, targets, target_lengths


def _call_op(*args):
    """``torch.ops.casnat.ctc_viterbi_align``, its input checks raised as the Python ones are."""
    try:
        return torch.ops.casnat.ctc_viterbi_align(*args)
    except RuntimeError as err:
        msg = str(err).splitlines()[0] if str(err) else ""
        if msg.startswith(f"{_FN}: "):
            raise ValueError(msg) from None
        raise


def _run(log_probs, input_lengths, targets, target_lengths, blank: int, impl: str):
    """Run one implementation (``"cpp"`` or ``"numba"``) on already prepared inputs."""
    if impl == "cpp":
        dev = log_probs.device
        if _backend.has_kernel("ctc_viterbi_align", dev):
            return _call_op(log_probs, input_lengths, targets, target_lengths, blank)
        alignment, scores = _call_op(
            log_probs.cpu(), input_lengths.cpu(), targets.cpu(), target_lengths.cpu(), blank
        )
        return alignment.to(dev), scores.to(dev)
    from casnat.align import _numba

    _numba.sync_threads()
    alignment, scores = _numba.viterbi_batch(
        log_probs.cpu().numpy(),
        input_lengths.cpu().numpy(),
        targets.cpu().numpy(),
        target_lengths.cpu().numpy(),
        blank,
    )
    dev = log_probs.device
    return torch.from_numpy(alignment).to(dev), torch.from_numpy(scores).to(dev)


def ctc_viterbi_align(
    log_probs: torch.Tensor,
    input_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
    *,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forced CTC alignment: the most likely CTC path of each utterance collapsing to its target.

    Args:
        log_probs: ``(B, T, V)`` CTC log-posteriors (log-softmax). May require grad (it is detached)
            and be non-contiguous or half precision (converted to float32).
        input_lengths: ``(B,)`` integer valid frames per utterance, ``<= T``.
        targets: ``(B, U)`` integer references padded with anything (e.g. -1); ids in ``[0, V)``,
            never ``blank``.
        target_lengths: ``(B,)`` integer reference lengths, ``<= U``.
        blank: the CTC blank id.
        impl: ``"cpp"`` or ``"numba"`` to bypass :func:`casnat.align.backend` (tests, benchmarks).

    Returns:
        ``alignment (B, T)`` int64: the label of every frame on the best path (blank included), -1
        on padding frames; ``scores (B,)`` float32: the path's total log-probability, ``-inf`` where
        no path exists (then the alignment row is all -1). A path needs ``U + #repeats`` frames.
        Ties: see the module docstring.

    >>> lp = torch.tensor([[[-0.1, -3.0], [-2.0, -0.2], [-0.3, -1.5]]])
    >>> one = torch.tensor([1])
    >>> ali, score = ctc_viterbi_align(lp, torch.tensor([3]), one[None], one)
    >>> ali.tolist()
    [[0, 1, 0]]
    """
    impl = impl or _backend.BACKEND
    check(impl in ("cpp", "numba"), _FN, f"impl must be 'cpp' or 'numba', got {impl!r}")
    check(impl != "cpp" or _backend.HAS_CPP, _FN, "impl='cpp' but casnat._C is not built")
    cpu_kernel = (
        impl == "cpp" and isinstance(log_probs, torch.Tensor) and log_probs.device.type == "cpu"
    )
    prepared = _prepare(
        log_probs, input_lengths, targets, target_lengths, int(blank), check_values=not cpu_kernel
    )
    with phase("align"):
        return _run(*prepared, int(blank), impl)
