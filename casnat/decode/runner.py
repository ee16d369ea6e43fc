"""One entry point for every inference mode, on a batch or over a whole data loader.

The modes themselves (``ctc_greedy``, ``ctc_prefix_beam``, ``at_beam``, ``cassnat``,
``cassnat_esa``, and any registered later) live in :mod:`casnat.decode.modes`; this module runs
the encoder and the CTC head once and hands their outputs to the mode's search. Every mode
returns :class:`Hypothesis` records with token start/end frames and confidences, so downstream
code (scoring, timestamps, the CLI) is mode-agnostic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from casnat.decode.modes import (
    MODES,
    DecodeOptions,
    check_mode,
    get_mode,
    supported_modes,
)
from casnat.decode.results import Hypothesis
from casnat.models.asr import ASRModel
from casnat.profiling import phase

log = logging.getLogger(__name__)

__all__ = [
    "MODES",
    "DecodeOptions",
    "DecodeRun",
    "check_mode",
    "decode_batch",
    "decode_loader",
    "supported_modes",
]


@torch.no_grad()
def decode_batch(
    model: ASRModel, feats: Tensor, feat_lens: Tensor, opts: DecodeOptions
) -> list[Hypothesis]:
    """Best hypothesis per utterance. feats (N, T, F), feat_lens (N,).

    An unknown mode, or one the model has no head for, is an ``UnsupportedModeError``.
    """
    check_mode(model, opts.mode)
    search = get_mode(opts.mode).search
    with phase("encoder"), _autocast(feats.device, opts.dtype):
        enc = model.encode(feats, feat_lens)
    out = enc.out.float()  # the heads and searches run in fp32 whatever the encoder ran in
    with phase("CTC head"):
        log_probs = model.ctc(out)
    return search(model, out, enc.lens, log_probs, opts)


def _autocast(device: torch.device, dtype: str) -> torch.autocast:
    """bf16 autocast on ``device`` for ``dtype == "bf16"``, else a disabled one."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")


@dataclass
class DecodeRun:
    """Outputs of decoding a loader: texts by utterance id plus timing for RTF."""

    hyps: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    details: dict[str, Hypothesis] = field(default_factory=dict)
    audio_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def rtf(self) -> float:
        return self.decode_seconds / max(self.audio_seconds, 1e-9)

    @property
    def utts_per_second(self) -> float:
        return len(self.hyps) / max(self.decode_seconds, 1e-9)


@torch.no_grad()
def decode_loader(
    model: ASRModel,
    tokenizer,
    loader,
    opts: DecodeOptions,
    device: torch.device,
    frame_shift: float = 0.01,
) -> DecodeRun:
    """Decode every batch of ``loader`` (yields casnat.data Batch objects)."""
    check_mode(model, opts.mode)
    model.eval()
    run = DecodeRun()
    for batch in loader:
        feats, feat_lens = batch.feats.to(device), batch.feat_lens.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        hyps = decode_batch(model, feats, feat_lens, opts)
        if device.type == "cuda":
            torch.cuda.synchronize()
        run.decode_seconds += time.perf_counter() - t0
        run.audio_seconds += float(batch.feat_lens.sum()) * frame_shift
        for cut_id, ref, hyp in zip(batch.cut_ids, batch.texts, hyps, strict=True):
            run.hyps[cut_id] = tokenizer.decode(hyp.tokens)
            run.refs[cut_id] = ref
            run.details[cut_id] = hyp
    return run
