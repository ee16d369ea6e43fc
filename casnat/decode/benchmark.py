"""Decoding speed and accuracy of several modes, side by side, on one model.

Loads the model once and every utterance's features into memory first (I/O and feature
extraction are not timed; padded batches are built and moved to the device before timing), then
decodes the same utterances with each mode twice: one utterance at a time (b=1, the research
code's setting) and in batches (utterances sorted by length, at most ``batch_size`` utterances
and ``max_duration`` seconds of padded audio per batch). Each setting starts with one untimed
warm-up batch. :meth:`Benchmark.markdown` gives the table ``casnat bench-decode`` prints::

    mode | WER % | RTF b=1 | utt/s b=1 | RTF batched | utt/s batched
         | speed-up vs at_beam (b=1) | speed-up vs at_beam (batched)

RTF = decoding seconds / audio seconds; speed-up vs at_beam = at_beam's decoding time / the
mode's, on the same utterances. WER is from the batched run (the b=1 WER is logged when it
differs). With ``profile``, an extra untimed pass per setting records where the time goes, by
the phases the decoding code marks with :func:`casnat.profiling.phase` (encoder, CTC head, the
CASS-NAT stages, AT decoder steps, ...), plus the rest (search bookkeeping).

The modes come from the registry (:mod:`casnat.decode.modes`); by default those the recipes
decode with. A mode the model has no head for is skipped with a warning; an unknown one is an
error naming the registered modes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from casnat.decode.modes import DecodeOptions, check_mode, get_mode, recipe_default_modes
from casnat.decode.runner import decode_batch
from casnat.decode.scoring import score_wer
from casnat.errors import UserError
from casnat.profiling import PhaseRecorder

if TYPE_CHECKING:
    from casnat.inference import Recognizer

log = logging.getLogger(__name__)

REFERENCE = "at_beam"  # the speed-up columns are relative to this mode
OTHER = "other (search, bookkeeping)"


def default_modes() -> tuple[str, ...]:
    """The registry's recipe-default modes."""
    return tuple(m.name for m in recipe_default_modes())


@dataclass(frozen=True)
class BenchmarkConfig:
    """What to benchmark and how; ``opts`` holds the search options (its ``mode`` is unused)."""

    exp_dir: Path
    cuts: Path
    checkpoint: Path | None = None
    modes: tuple[str, ...] = field(default_factory=default_modes)
    opts: DecodeOptions = field(default_factory=DecodeOptions)
    max_utts: int | None = None
    batch_size: int = 32
    max_duration: float = 200.0  # padded seconds of audio per batch
    device: str = "cpu"
    profile: bool = False


@dataclass(frozen=True)
class Utterance:
    cut_id: str
    text: str
    feats: Tensor  # (T, F)


@dataclass
class Timing:
    """Decoding of all utterances in one setting (b=1 or batched)."""

    hyps: dict[str, str]
    seconds: float
    audio_seconds: float

    @property
    def rtf(self) -> float:
        return self.seconds / max(self.audio_seconds, 1e-9)

    @property
    def utts_per_second(self) -> float:
        return len(self.hyps) / max(self.seconds, 1e-9)


@dataclass
class ModeResult:
    mode: str
    wer: float
    single: Timing
    batched: Timing
    profile: dict[str, dict[str, float]] = field(default_factory=dict)  # setting -> phase -> s


@dataclass
class Benchmark:
    """The outcome of :func:`run_benchmark`: a header line and one result per mode."""

    header: str
    results: list[ModeResult]
    num_utts: int

    def markdown(self) -> str:
        """The header, the speed table and, for profiled modes, one phase table each."""
        text = self.header + markdown_table(self.results)
        profiled = [r for r in self.results if r.profile]
        if profiled:
            text += "\n" + "\n".join(profile_table(r, self.num_utts) for r in profiled)
        return text


# data -------------------------------------------------------------------------------------------
def load_utterances(
    cuts_path: Path, rec: Recognizer, max_utts: int | None, min_frames: int = 1
) -> list[Utterance]:
    """Features of the first ``max_utts`` cuts, read (or computed from audio) into memory.

    Cuts shorter than ``min_frames`` feature frames (the encoder's ``min_input_frames``) are
    skipped with a warning: the encoder cannot subsample them.
    """
    from lhotse import CutSet

    if not cuts_path.is_file():
        raise UserError(f"cuts manifest not found: {cuts_path}")
    utts = []
    for cut in CutSet.from_file(cuts_path):
        if max_utts is not None and len(utts) >= max_utts:
            break
        if cut.has_features:
            feats = torch.from_numpy(np.asarray(cut.load_features(), dtype=np.float32))
        else:  # a manifest without features: extract them now, outside the timed part
            feats = rec.features(cut.load_audio()[0], cut.sampling_rate)
        if feats.shape[0] < min_frames:
            log.warning("skipping %s: too short (%d frames, the encoder needs %d)", cut.id,
                        feats.shape[0], min_frames)
            continue
        text = " ".join(s.text for s in cut.supervisions if s.text)
        utts.append(Utterance(cut.id, text, feats))
    if not utts:
        raise UserError(f"no usable utterances in {cuts_path}")
    return utts


def make_batches(utts: list[Utterance], batch_size: int, max_frames: float,
                 device: torch.device) -> list[tuple[list[Utterance], Tensor, Tensor]]:
    """Padded ``(feats (N, T, F), feat_lens (N,))`` batches on ``device``, longest first.

    Sorting by length keeps padding low, as a decoding server that buckets its requests would.
    """
    order = sorted(utts, key=lambda u: -u.feats.shape[0])
    groups: list[list[Utterance]] = []
    for u in order:
        g = groups[-1] if groups else None
        # padded size of the group if u joins it = (len + 1) x its first (longest) utterance
        if g is None or len(g) >= batch_size or (len(g) + 1) * g[0].feats.shape[0] > max_frames:
            groups.append([u])
        else:
            g.append(u)
    out = []
    for g in groups:
        lens = torch.tensor([u.feats.shape[0] for u in g], dtype=torch.int64)
        padded = torch.nn.utils.rnn.pad_sequence([u.feats for u in g], batch_first=True)
        out.append((g, padded.to(device), lens.to(device)))
    return out


# timing -----------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_setting(rec: Recognizer, batches: list, opts: DecodeOptions, frame_shift: float) -> Timing:
    """Decode ``batches`` after one untimed warm-up batch; returns texts and decoding seconds."""
    dev = rec.device
    _, feats, lens = batches[0]
    decode_batch(rec.model, feats, lens, opts)  # warm-up: allocator, numba/JIT, caches
    hyps: dict[str, str] = {}
    seconds, audio = 0.0, 0.0
    for group, feats, lens in batches:
        _sync(dev)
        t0 = time.perf_counter()
        out = decode_batch(rec.model, feats, lens, opts)
        _sync(dev)
        seconds += time.perf_counter() - t0
        audio += sum(u.feats.shape[0] for u in group) * frame_shift
        for u, h in zip(group, out, strict=True):
            hyps[u.cut_id] = rec.tokenizer.decode(h.tokens)
    return Timing(hyps, seconds, audio)


def profile_setting(rec: Recognizer, batches: list, opts: DecodeOptions) -> dict[str, float]:
    """Seconds per recorded phase over ``batches``, plus ``total`` and the rest (``OTHER``).

    The phases are whatever the decoding code marks with ``casnat.profiling.phase``; each
    boundary synchronizes CUDA, which is why this is a separate pass from the timed one.
    """
    total = 0.0
    with PhaseRecorder(sync=lambda: _sync(rec.device)) as recorder:
        for _, feats, lens in batches:
            _sync(rec.device)
            t0 = time.perf_counter()
            decode_batch(rec.model, feats, lens, opts)
            _sync(rec.device)
            total += time.perf_counter() - t0
    phases = {k: v for k, v in recorder.seconds.items() if v > 0}
    phases[OTHER] = max(0.0, total - sum(phases.values()))
    phases["total"] = total
    return phases


# report -----------------------------------------------------------------------------------------
def _fmt_speedup(ref: float | None, x: float) -> str:
    return "-" if ref is None or x <= 0 else f"{ref / x:.1f}x"


def markdown_table(results: list[ModeResult]) -> str:
    ref = next((r for r in results if r.mode == REFERENCE), None)
    lines = [
        "| mode | WER % | RTF b=1 | utt/s b=1 | RTF batched | utt/s batched "
        "| speed-up vs at_beam (b=1) | speed-up vs at_beam (batched) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {100 * r.wer:.2f} | {r.single.rtf:.4f} | {r.single.utts_per_second:.1f} "
            f"| {r.batched.rtf:.4f} | {r.batched.utts_per_second:.1f} "
            f"| {_fmt_speedup(ref.single.seconds if ref else None, r.single.seconds)} "
            f"| {_fmt_speedup(ref.batched.seconds if ref else None, r.batched.seconds)} |"
        )
    return "\n".join(lines) + "\n"


def profile_table(r: ModeResult, num_utts: int) -> str:
    """Per phase recorded in either setting: ms per utterance and share of the total."""
    names = [k for k in r.profile.get("batched", {}) if k != "total"]
    names += [k for k in r.profile.get("b=1", {}) if k != "total" and k not in names]
    lines = [f"{r.mode}: time per phase", "",
             "| phase | b=1 ms/utt | b=1 % | batched ms/utt | batched % |",
             "|---|---:|---:|---:|---:|"]
    for name in [*sorted(names, key=lambda n: n == OTHER), "total"]:
        cells = []
        for setting in ("b=1", "batched"):
            p = r.profile.get(setting, {})
            s = p.get(name, 0.0)
            share = 100 * s / max(p.get("total", 0.0), 1e-9)
            cells += [f"{1000 * s / num_utts:.2f}", f"{share:.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# main -------------------------------------------------------------------------------------------
def run_benchmark(cfg: BenchmarkConfig) -> Benchmark:
    """Load the model and the utterances once, then time and score every usable mode."""
    from casnat.inference import load_model

    for mode in cfg.modes:  # a misspelt mode is an error naming the known ones, not a skip
        get_mode(mode)
    rec = load_model(cfg.exp_dir, cfg.checkpoint, cfg.device)
    frame_shift = rec.cfg.features.frame_shift
    utts = load_utterances(cfg.cuts, rec, cfg.max_utts, rec.model.encoder.min_input_frames)
    audio_s = sum(u.feats.shape[0] for u in utts) * frame_shift
    single = make_batches(utts, 1, float("inf"), rec.device)
    batched = make_batches(utts, cfg.batch_size, cfg.max_duration / frame_shift, rec.device)
    modes = []
    for mode in cfg.modes:
        try:
            check_mode(rec.model, mode)
            modes.append(mode)
        except ValueError as e:
            log.warning("skipping mode %s: %s", mode, e)
    refs = {u.cut_id: u.text for u in utts}
    results = []
    for mode in modes:
        opts = dataclasses.replace(cfg.opts, mode=mode)
        t1 = time_setting(rec, single, opts, frame_shift)
        tb = time_setting(rec, batched, opts, frame_shift)
        wer = score_wer(refs, tb.hyps).wer
        wer1 = score_wer(refs, t1.hyps).wer
        if abs(wer1 - wer) > 1e-9:
            log.info("%s: WER b=1 %.2f%% vs batched %.2f%% (padding changes the encoder output "
                     "slightly)", mode, 100 * wer1, 100 * wer)
        res = ModeResult(mode, wer, t1, tb)
        if cfg.profile:
            res.profile = {"b=1": profile_setting(rec, single, opts),
                           "batched": profile_setting(rec, batched, opts)}
        log.info("%s: WER %.2f%% RTF b=1 %.4f batched %.4f", mode, 100 * wer, t1.rtf, tb.rtf)
        results.append(res)
    threads = torch.get_num_threads() if rec.device.type == "cpu" else "-"
    o = cfg.opts
    header = (
        f"Decoding benchmark: {cfg.exp_dir} ({cfg.checkpoint or 'default checkpoint'}), "
        f"{len(utts)} utterances ({audio_s:.1f} s of audio) of {cfg.cuts.name}; device "
        f"{rec.device}, threads: {threads}; beam {o.beam} (length penalty "
        f"{o.length_penalty:g}), ESA K={o.num_samples}; batched = "
        f"<= {cfg.batch_size} utts and <= {cfg.max_duration:g} s padded audio per batch, "
        f"{len(batched)} batches; features preloaded, one warm-up batch per setting.\n\n"
    )
    return Benchmark(header, results, len(utts))


__all__ = [
    "Benchmark",
    "BenchmarkConfig",
    "ModeResult",
    "Timing",
    "Utterance",
    "default_modes",
    "load_utterances",
    "make_batches",
    "markdown_table",
    "profile_table",
    "run_benchmark",
]
