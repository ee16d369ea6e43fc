"""Decoding speed and accuracy of every inference mode, side by side, on one model (issue 4).

Loads the model once and every utterance's features into memory first (I/O and feature
extraction are not timed; padded batches are built and moved to the device before timing),
then decodes the same utterances with each mode twice: one utterance at a time (b=1, the
research code's setting) and in batches (utterances sorted by length, at most --batch-size
utterances and --max-duration seconds per batch). Each setting starts with one untimed
warm-up batch. Prints a Markdown table (``--out`` also writes it, atomically, e.g. for
RESULTS.md):

    mode | WER % | RTF b=1 | utt/s b=1 | RTF batched | utt/s batched
         | speed-up vs at_beam (b=1) | speed-up vs at_beam (batched)

RTF = decoding seconds / audio seconds; speed-up vs at_beam = at_beam's decoding time / the
mode's, on the same utterances. WER is from the batched run (the b=1 WER is logged when it
differs). ``--profile`` adds, per mode, where the time goes: encoder, CTC head, alignment
sampling, segments, TAE, NAT decoder, AT decoder steps / ranker, and the rest (search
bookkeeping), from timers around those calls in an extra, untimed pass.

    python tools/bench_decode.py --exp-dir egs/fsdd/exp/cassnat \\
        --cuts egs/fsdd/data/fbank/cuts_test.jsonl.gz --num-threads 1 --max-utts 200 \\
        --out bench.md [--profile] [--device cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import casnat.decode.cassnat as cassnat_mod
from casnat.decode.runner import DecodeOptions, check_mode, decode_batch
from casnat.decode.scoring import score_wer
from casnat.errors import UserError
from casnat.inference import Recognizer, load_model

log = logging.getLogger("bench_decode")

DEFAULT_MODES = ("ctc_greedy", "at_beam", "cassnat", "cassnat_esa")
REFERENCE = "at_beam"


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


# data -----------------------------------------------------------------------------------------
def load_utterances(cuts_path: Path, rec: Recognizer, max_utts: int | None) -> list[Utterance]:
    """Features of the first ``max_utts`` cuts, read (or computed from audio) into memory."""
    from lhotse import CutSet

    if not cuts_path.is_file():
        raise FileNotFoundError(f"cuts manifest not found: {cuts_path}")
    utts = []
    for cut in CutSet.from_file(cuts_path):
        if max_utts is not None and len(utts) >= max_utts:
            break
        if cut.has_features:
            feats = torch.from_numpy(np.asarray(cut.load_features(), dtype=np.float32))
        else:  # a manifest without features: extract them now, outside the timed part
            feats = rec.features(cut.load_audio()[0], cut.sampling_rate)
        if feats.shape[0] < 7:  # the x4 subsampling needs 7 frames
            log.warning("skipping %s: too short (%d frames)", cut.id, feats.shape[0])
            continue
        text = " ".join(s.text for s in cut.supervisions if s.text)
        utts.append(Utterance(cut.id, text, feats))
    if not utts:
        raise ValueError(f"no usable utterances in {cuts_path}")
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


# timing ---------------------------------------------------------------------------------------
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


class PhaseTimer:
    """Wall time spent inside the model's parts and the alignment ops while active.

    Wraps ``model.encode``, the CTC head, ``sample_alignments`` / ``alignment_to_segments``
    (as called by casnat.decode.cassnat), the TAE extractor, the NAT decoder, and the AT
    decoder's ``step`` (beam search) and ``score`` (ESA ranker). Each boundary synchronizes
    CUDA, so use it in a separate pass from the timed one.
    """

    def __init__(self, rec: Recognizer) -> None:
        self.rec = rec
        self.seconds: dict[str, float] = defaultdict(float)

    def _wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            _sync(self.rec.device)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _sync(self.rec.device)
                self.seconds[name] += time.perf_counter() - t0

        return timed

    @contextlib.contextmanager
    def active(self) -> Iterator[PhaseTimer]:
        m = self.rec.model
        targets: list[tuple[object, str, str]] = [
            (m, "encode", "encoder"),
            (m.ctc, "forward", "CTC head"),
            (cassnat_mod, "sample_alignments", "alignment sampling"),
            (cassnat_mod, "alignment_to_segments", "segments / trigger mask"),
        ]
        kv = "source keys/values (once per utterance)"
        if m.tae is not None:
            targets += [(m.tae, "forward", "TAE extractor"), (m.tae.src_attn, "project_kv", kv)]
        if m.nat_decoder is not None:
            targets += [(m.nat_decoder, "forward", "NAT decoder"),
                        (m.nat_decoder, "memory_kv", kv)]
        if m.at_decoder is not None:
            targets += [(m.at_decoder, "step", "AT decoder steps"),
                        (m.at_decoder, "score", "AT ranker (ESA)"),
                        (m.at_decoder, "memory_kv", kv)]
        saved = []
        for obj, attr, name in targets:
            saved.append((obj, attr, obj.__dict__.get(attr)))
            setattr(obj, attr, self._wrap(name, getattr(obj, attr)))
        try:
            yield self
        finally:
            for obj, attr, old in saved:
                if old is None:
                    delattr(obj, attr)  # drop the instance wrapper; the class method shows again
                else:
                    setattr(obj, attr, old)


def profile_setting(rec: Recognizer, batches: list, opts: DecodeOptions) -> dict[str, float]:
    """Seconds per phase over ``batches`` (plus ``total`` and ``other`` = search bookkeeping)."""
    timer = PhaseTimer(rec)
    total = 0.0
    with timer.active():
        for _, feats, lens in batches:
            _sync(rec.device)
            t0 = time.perf_counter()
            decode_batch(rec.model, feats, lens, opts)
            _sync(rec.device)
            total += time.perf_counter() - t0
    phases = {k: v for k, v in timer.seconds.items() if v > 0}
    phases["other (search, bookkeeping)"] = max(0.0, total - sum(phases.values()))
    phases["total"] = total
    return phases


# report ---------------------------------------------------------------------------------------
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
    names = [k for k in r.profile.get("batched", {}) if k != "total"]
    names += [k for k in r.profile.get("b=1", {}) if k != "total" and k not in names]
    lines = [f"{r.mode}: time per phase", "",
             "| phase | b=1 ms/utt | b=1 % | batched ms/utt | batched % |",
             "|---|---:|---:|---:|---:|"]
    for name in [*sorted(names, key=lambda n: n.startswith("other")), "total"]:
        cells = []
        for setting in ("b=1", "batched"):
            p = r.profile.get(setting, {})
            s = p.get(name, 0.0)
            share = 100 * s / max(p.get("total", 0.0), 1e-9)
            cells += [f"{1000 * s / num_utts:.2f}", f"{share:.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# main -----------------------------------------------------------------------------------------
def run_benchmark(args: argparse.Namespace) -> tuple[str, list[ModeResult]]:
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    rec = load_model(args.exp_dir, args.checkpoint, args.device)
    frame_shift = rec.cfg.features.frame_shift
    utts = load_utterances(args.cuts, rec, args.max_utts)
    audio_s = sum(u.feats.shape[0] for u in utts) * frame_shift
    max_frames = args.max_duration / frame_shift
    single = make_batches(utts, 1, float("inf"), rec.device)
    batched = make_batches(utts, args.batch_size, max_frames, rec.device)
    modes = []
    for mode in args.modes:
        try:
            check_mode(rec.model, mode)
            modes.append(mode)
        except ValueError as e:
            log.warning("skipping mode %s: %s", mode, e)
    results = []
    for mode in modes:
        opts = DecodeOptions(mode=mode, beam=args.beam, num_samples=args.num_samples,
                             length_penalty=args.length_penalty)
        t1 = time_setting(rec, single, opts, frame_shift)
        tb = time_setting(rec, batched, opts, frame_shift)
        refs = {u.cut_id: u.text for u in utts}
        wer = score_wer(refs, tb.hyps).wer
        wer1 = score_wer(refs, t1.hyps).wer
        if abs(wer1 - wer) > 1e-9:
            log.info("%s: WER b=1 %.2f%% vs batched %.2f%% (padding changes the encoder output "
                     "slightly)", mode, 100 * wer1, 100 * wer)
        res = ModeResult(mode, wer, t1, tb)
        if args.profile:
            res.profile = {"b=1": profile_setting(rec, single, opts),
                           "batched": profile_setting(rec, batched, opts)}
        log.info("%s: WER %.2f%% RTF b=1 %.4f batched %.4f", mode, 100 * wer, t1.rtf, tb.rtf)
        results.append(res)
    threads = torch.get_num_threads() if rec.device.type == "cpu" else "-"
    header = (
        f"Decoding benchmark: {args.exp_dir} ({args.checkpoint or 'default checkpoint'}), "
        f"{len(utts)} utterances ({audio_s:.1f} s of audio) of {args.cuts.name}; device "
        f"{rec.device}, threads: {threads}; beam {args.beam} (length penalty "
        f"{args.length_penalty:g}), ESA K={args.num_samples}; batched = "
        f"<= {args.batch_size} utts and <= {args.max_duration:g} s padded audio per batch, "
        f"{len(batched)} batches; features preloaded, one warm-up batch per setting.\n\n"
    )
    return header + markdown_table(results), results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exp-dir", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None, help="default: as casnat decode")
    p.add_argument("--cuts", type=Path, required=True, help="features manifest (jsonl.gz)")
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES))
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--num-samples", type=int, default=16, help="cassnat_esa: K")
    p.add_argument("--length-penalty", type=float, default=0.0, help="at_beam, as casnat decode")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--max-utts", type=int, default=None, help="first N utterances of --cuts")
    p.add_argument("--batch-size", type=int, default=32, help="max utterances per batch")
    p.add_argument("--max-duration", type=float, default=200.0,
                   help="max padded seconds of audio per batch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="also write the table here (atomic)")
    p.add_argument("--profile", action="store_true", help="time per phase for each mode")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, datefmt="%H:%M:%S",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        table, results = run_benchmark(args)
    except (UserError, FileNotFoundError, ValueError) as e:
        print(f"bench_decode: error: {e}", file=sys.stderr)
        return 2
    if args.profile:
        n = len(next(iter(results)).batched.hyps) if results else 1
        table += "\n" + "\n".join(profile_table(r, n) for r in results)
    print(table, end="")
    if args.out:
        write_atomic(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
