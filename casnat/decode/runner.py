"""One entry point for every inference mode, on a batch or over a whole data loader.

Modes: ``ctc_greedy``, ``ctc_prefix_beam``, ``at_beam``, ``cassnat`` (greedy alignment) and
``cassnat_esa`` (K sampled alignments). Every mode returns :class:`Hypothesis` records with token
start/end frames and confidences, so downstream code (scoring, timestamps, the CLI) is
mode-agnostic.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from casnat.config import ModelConfig
from casnat.decode.at_beam import at_beam_search
from casnat.decode.cassnat import cassnat_search
from casnat.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search
from casnat.decode.results import Hypothesis
from casnat.errors import UnsupportedModeError
from casnat.models.asr import ASRModel, has_at_decoder, has_nat_decoder, make_pad_mask

log = logging.getLogger(__name__)

Mode = Literal["ctc_greedy", "ctc_prefix_beam", "at_beam", "cassnat", "cassnat_esa"]
MODES: tuple[str, ...] = ("ctc_greedy", "ctc_prefix_beam", "at_beam", "cassnat", "cassnat_esa")


@dataclass(frozen=True)
class DecodeOptions:
    mode: Mode = "ctc_greedy"
    beam: int = 10  # ctc_prefix_beam and at_beam
    num_samples: int = 16  # cassnat_esa: K
    threshold: float = 0.9  # cassnat_esa: frames with top posterior below this are resampled
    ranker: Literal["auto", "at", "nat"] = "auto"  # cassnat_esa
    seed: int = 0  # cassnat_esa sampling seed: fixed, and frame-indexed so that an utterance's
    # result does not depend on the batch it is decoded in
    max_len_ratio: float = 1.0  # at_beam: max output length = ratio * encoder frames
    # at_beam: finished hypotheses are ranked by sum log-prob / (tokens + 1) ** length_penalty;
    # 0 ranks by the raw sum, which favours ending early (the AT's usual deletion error).
    length_penalty: float = 0.0


def supported_modes(cfg: ModelConfig) -> tuple[str, ...]:
    """The modes a model of this config can decode with, in ``MODES`` order."""
    needs = {"at_beam": has_at_decoder, "cassnat": has_nat_decoder, "cassnat_esa": has_nat_decoder}
    return tuple(m for m in MODES if m not in needs or needs[m](cfg))


def check_mode(model: ASRModel, mode: str) -> None:
    """Fail early, with the reason, when the model lacks the head a mode needs."""
    if mode not in MODES:
        raise UnsupportedModeError(
            f"unknown decoding mode '{mode}' (choose from {', '.join(MODES)})"
        )
    if mode == "at_beam" and model.at_decoder is None:
        raise UnsupportedModeError(
            f"mode 'at_beam' needs an AT decoder; this model (type '{model.cfg.type}') decodes "
            f"with {', '.join(supported_modes(model.cfg))}"
        )
    if mode.startswith("cassnat") and model.nat_decoder is None:
        raise UnsupportedModeError(
            f"mode '{mode}' needs a CASS-NAT decoder; this model (type '{model.cfg.type}') "
            f"decodes with {', '.join(supported_modes(model.cfg))}"
        )


@torch.no_grad()
def decode_batch(
    model: ASRModel, feats: Tensor, feat_lens: Tensor, opts: DecodeOptions
) -> list[Hypothesis]:
    """Best hypothesis per utterance. feats (N, T, F), feat_lens (N,)."""
    enc = model.encode(feats, feat_lens)
    log_probs = model.ctc(enc.out)
    if opts.mode == "ctc_greedy":
        return ctc_greedy_search(log_probs, enc.lens, blank=model.blank_id)
    if opts.mode == "ctc_prefix_beam":
        return [
            nb[0]
            for nb in ctc_prefix_beam_search(
                log_probs, enc.lens, beam=opts.beam, blank=model.blank_id
            )
        ]
    if opts.mode == "at_beam":
        assert model.at_decoder is not None
        mask = make_pad_mask(enc.lens, enc.out.size(1))
        max_len = (enc.lens.float() * opts.max_len_ratio).long().clamp(min=1)
        nbest = at_beam_search(
            model.at_decoder,
            enc.out,
            mask,
            beam=opts.beam,
            sos=model.sos_id,
            eos=model.eos_id,
            max_len=max_len,
            length_penalty=opts.length_penalty,
        )
        return [nb[0] for nb in nbest]
    k = opts.num_samples if opts.mode == "cassnat_esa" else 1
    return cassnat_search(
        model,
        enc.out,
        enc.lens,
        log_probs,
        num_samples=k,
        threshold=opts.threshold,
        ranker=opts.ranker,
        seed=opts.seed,
    )


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
