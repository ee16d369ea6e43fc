"""Error-based alignment sampling (ESA): K plausible CTC paths per utterance for CASS-NAT inference.

Sample 0 is the argmax (greedy CTC) path. In samples 1..K-1 every frame whose top posterior is below
``threshold`` takes its top-1 or top-2 label with probability 1/2 each; confident frames keep the
argmax. Labels are ranked by (log-prob descending, id ascending), so ties go to the lower id.

The coin flips are drawn with torch (optionally from a ``torch.Generator``) and handed to the
kernel, so the C++, CUDA and numba backends return the same samples for the same seed.

With ``seed=`` instead of a generator the flips are indexed by frame: the flips of frame t depend
only on the seed and t, the same for every utterance. An utterance then gets the same samples
whatever batch it is decoded in, with whatever padding, so ESA output does not change with the
batch size (a generator's stream is consumed in (B, K-1, T) order, so there it does).
"""

from __future__ import annotations

import math

import torch

from casnat.align import _backend
from casnat.align._checks import as_lengths, as_log_probs, check

_FN = "sample_alignments"

if _backend.HAS_CPP:

    @torch.library.register_fake("casnat::sample_alignments")
    def _fake_sample(log_probs, input_lengths, rand_bits, log_threshold):
        B, T, _ = log_probs.shape
        return log_probs.new_empty((B, rand_bits.shape[1] + 1, T), dtype=torch.int64)


def sample_alignments(
    log_probs: torch.Tensor,
    input_lengths: torch.Tensor,
    num_samples: int = 16,
    threshold: float = 0.9,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Draw ``num_samples`` frame-level CTC paths per utterance (ESA).

    Args:
        log_probs: ``(B, T, V)`` CTC log-posteriors (detached and cast to float32 inside).
        input_lengths: ``(B,)`` integer valid frames per utterance.
        num_samples: K >= 1; sample 0 is the argmax path.
        threshold: a frame is re-sampled when ``exp(max_v log_probs[b, t, v]) < threshold``.
        generator: source of the coin flips (CPU or the device's generator); ``None`` uses the
            global torch RNG.
        seed: draw batch-independent, frame-indexed flips from this seed instead (see the module
            docstring); excludes ``generator``.
        impl: ``"cpp"`` or ``"numba"`` to bypass :func:`casnat.align.backend`.

    Returns:
        ``(B, K, T)`` int64 label per frame (blank included), -1 on padding frames. Collapse a
        sample with :func:`casnat.align.alignment_to_segments` after ``reshape(B * K, T)``.

    >>> lp = torch.log(torch.tensor([[[0.95, 0.05], [0.6, 0.4]]]))
    >>> gen = torch.Generator().manual_seed(0)
    >>> s = sample_alignments(lp, torch.tensor([2]), num_samples=3, generator=gen)
    >>> s.shape, s[0, :, 0].tolist()
    (torch.Size([1, 3, 2]), [0, 0, 0])
    """
    impl = impl or _backend.BACKEND
    check(impl in ("cpp", "numba"), _FN, f"impl must be 'cpp' or 'numba', got {impl!r}")
    check(impl != "cpp" or _backend.HAS_CPP, _FN, "impl='cpp' but casnat._C is not built")
    check(int(num_samples) >= 1, _FN, f"num_samples must be >= 1, got {num_samples}")
    check(
        isinstance(threshold, (int, float)) and threshold >= 0,
        _FN,
        f"threshold must be a number >= 0, got {threshold!r}",
    )
    log_probs = as_log_probs(_FN, log_probs)
    B, T, _ = log_probs.shape
    dev = log_probs.device
    input_lengths = as_lengths(_FN, "input_lengths", input_lengths, B, T, dev)
    check(seed is None or generator is None, _FN, "give either generator or seed, not both")
    k1 = int(num_samples) - 1
    if seed is not None:
        # (T, K-1) row-major: frame t's flips are the same stream positions for any T.
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        frame_bits = torch.randint(0, 2, (T, k1), generator=g, dtype=torch.uint8)
        rand_bits = frame_bits.T.unsqueeze(0).expand(B, k1, T).contiguous().to(dev)
    else:
        rng_device = generator.device if generator is not None else dev
        rand_bits = torch.randint(
            0, 2, (B, k1, T), generator=generator, dtype=torch.uint8, device=rng_device
        ).to(dev)
    log_threshold = math.log(threshold) if threshold > 0 else -math.inf
    if impl == "cpp":
        if _backend.has_kernel("sample_alignments", dev):
            return torch.ops.casnat.sample_alignments(
                log_probs, input_lengths, rand_bits, log_threshold
            )
        out = torch.ops.casnat.sample_alignments(
            log_probs.cpu(), input_lengths.cpu(), rand_bits.cpu(), log_threshold
        )
        return out.to(dev)
    from casnat.align import _numba

    _numba.sync_threads()
    out = _numba.sample_batch(
        log_probs.cpu().numpy(), input_lengths.cpu().numpy(), rand_bits.cpu().numpy(), log_threshold
    )
    return torch.from_numpy(out).to(dev)
