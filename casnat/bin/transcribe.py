"""Transcribe audio: files, directories, globs, '-' (paths on stdin), wav.scp, manifests.

Inputs are anything :mod:`casnat.inputs` resolves (any format and rate lhotse/soundfile read,
multi-channel downmixed by averaging). Short inputs are decoded in batches of similar length;
inputs longer than ``--long-threshold`` (default: the long-form segment length) are split at
pauses and decoded in bounded memory (``--long auto|always|never``), with word times in file
time. Results go to stdout (``id text`` lines, as before) or, with ``--output-dir``, to
``DIR/transcripts.<fmt>`` for each ``--format`` (plus ``DIR/<id>.srt|vtt`` per input).

``--backend onnx --model m.onnx`` decodes with onnxruntime from ``casnat export-onnx`` files
(modes ctc_greedy and cassnat, inputs decoded whole).

An input that cannot be read is reported on stderr as one line naming it and the reason; the rest
are still transcribed and the exit status is 1 if any input failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from casnat.bin.search_args import add_search_arguments, search_options
from casnat.errors import UserError

log = logging.getLogger("casnat.transcribe")


def add_arguments(p: argparse.ArgumentParser) -> None:
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--exp-dir", type=Path, default=None, help="trained experiment directory")
    m.add_argument(
        "--model", type=Path, default=None, help="one-file model written by 'casnat export-model'"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="with --exp-dir; default: EXP_DIR/avg-*.pt if present, else the newest "
        "epoch checkpoint",
    )
    p.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: decode with onnxruntime from 'casnat export-onnx' files (--model FILE.onnx; "
        "modes ctc_greedy and cassnat; inputs decoded whole, no long-form) "
        "(default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda[:N]")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "audio",
        nargs="*",
        help="audio files, directories (searched recursively), glob patterns, '-' "
        "(paths on stdin), wav.scp files or lhotse manifests",
    )
    p.add_argument(
        "--wav-scp",
        type=Path,
        default=None,
        help="Kaldi wav.scp: 'id path' or 'id command |' lines",
    )
    p.add_argument(
        "--segments",
        type=Path,
        default=None,
        help="Kaldi segments ('utt rec start end') cutting --wav-scp's recordings",
    )
    p.add_argument(
        "--format",
        default="text",
        help="comma-separated output formats: text, jsonl, ctm, srt, vtt, tsv "
        "(several need --output-dir) (default: %(default)s)",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="write DIR/transcripts.<fmt> per format (and DIR/<id>.srt|vtt)",
    )
    p.add_argument(
        "--output", type=Path, default=None,
        help="also write the result here, atomically: 'id text' lines, or the one --format "
        "chosen (e.g. --format jsonl --output out.jsonl)"
    )
    p.add_argument(
        "--timestamps",
        action="store_true",
        help="text on stdout: also print token times and confidences",
    )
    p.add_argument(
        "--long",
        choices=("auto", "always", "never"),
        default="auto",
        help="long-form decoding (split at pauses): auto = for inputs longer than "
        "--long-threshold (default: %(default)s)",
    )
    p.add_argument(
        "--vad",
        choices=("auto", "energy", "ctc", "both"),
        default=None,
        help="long-form pause finder: frame energy, the model's CTC blank posteriors, both, "
        "or auto (energy in clean audio, CTC in noise; the default)",
    )
    p.add_argument(
        "--max-segment-s",
        type=float,
        default=None,
        help="long-form: longest segment decoded at once (default: 10)",
    )
    p.add_argument(
        "--long-threshold",
        type=float,
        default=None,
        help="seconds; default: the long-form maximum segment length (10 s)",
    )
    p.add_argument("--batch-size", type=int, default=16, help="most inputs per batch")
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=200.0,
        help="most audio seconds per batch (bounds its memory)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="processes reading audio and computing features while the model runs",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    add_search_arguments(p)


def _load(args: argparse.Namespace):
    import torch

    from casnat.inference import load_model

    if args.model is not None and args.checkpoint is not None:
        raise UserError("--checkpoint goes with --exp-dir; a --model file holds its weights")
    if args.backend == "onnx":
        return _load_onnx(args)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    return load_model(args.model or args.exp_dir, args.checkpoint, args.device)


def _load_onnx(args: argparse.Namespace):
    """The ONNX recognizer of ``--model FILE.onnx``; the mode is checked before any audio is
    read, so an unsupported one fails at once, naming itself."""
    from casnat.onnx_export import OnnxRecognizer

    if args.model is None:
        raise UserError("--backend onnx needs --model FILE.onnx (written by casnat export-onnx)")
    if args.device not in ("auto", "cpu"):
        raise UserError(f"--backend onnx runs on the CPU (onnxruntime), not --device {args.device}")
    return OnnxRecognizer(args.model, mode=args.mode, num_threads=args.num_threads)


class Progress:
    """Files, audio hours, speed (x real time) and ETA: a tqdm bar (over audio seconds, so that
    an hour-long file moves it too) on a terminal, else a log line every ``every_s`` seconds
    (logs and CI output stay free of carriage returns); nothing but the summary with ``quiet``.
    """

    def __init__(self, total_files: int, total_s: float, quiet: bool, every_s: float = 30.0):
        self.total_files, self.total_s = total_files, total_s
        self.files = self.failed = 0
        self.audio_s = 0.0
        self.start = time.perf_counter()
        self.quiet, self.every_s, self.last_log = quiet, every_s, self.start
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=round(total_s, 1),
                file=sys.stderr,
                desc="transcribe",
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]",
            )

    def speed(self) -> float:
        return self.audio_s / max(time.perf_counter() - self.start, 1e-9)

    def status(self) -> str:
        left = max(self.total_s - self.audio_s, 0.0) / max(self.speed(), 1e-9)
        return (
            f"{self.files}/{self.total_files} files, {self.audio_s / 3600:.3f}/"
            f"{self.total_s / 3600:.3f} h, {self.speed():.1f}x real time, ETA {left:.0f} s"
        )

    def advance(self, seconds: float) -> None:
        """``seconds`` more audio decoded."""
        self.audio_s += seconds
        if self.bar is not None:
            self.bar.set_postfix_str(self.status().rsplit(", ETA", 1)[0], refresh=False)
            self.bar.update(round(seconds, 1))
        elif not self.quiet and time.perf_counter() - self.last_log >= self.every_s:
            self.last_log = time.perf_counter()
            log.info("%s", self.status())

    def file_done(self, failed: bool) -> None:
        self.files += 1
        self.failed += int(failed)

    def close(self) -> str:
        """The summary line: files, failures, audio hours, wall time, RTF."""
        if self.bar is not None:
            self.bar.close()
        elapsed = time.perf_counter() - self.start
        rtf = elapsed / self.audio_s if self.audio_s > 0 else float("nan")
        return (
            f"casnat transcribe: {self.files} files ({self.failed} failed), "
            f"{self.audio_s / 3600:.3f} h of audio in {elapsed:.1f} s, RTF {rtf:.4f}"
        )


def _long_cfg(args: argparse.Namespace):
    """The long-form settings the command line changes, over LongformConfig's defaults."""
    from casnat.longform import LongformConfig

    changes = {k: v for k, v in (("vad", args.vad), ("max_segment_s", args.max_segment_s))
               if v is not None}
    if args.max_segment_s is not None and args.max_segment_s <= 0:
        raise SystemExit("casnat transcribe: --max-segment-s must be > 0")
    return LongformConfig(**changes)


def _stdout_text(results, timestamps: bool) -> None:
    """Today's stdout: ``id text`` per decoded input, in input order (failures left out)."""
    for r in results:
        if r.error:
            continue
        print(f"{r.id} {r.text}")
        if timestamps:
            for t in r.tokens:
                print(f"  {t.start:7.2f} {t.end:7.2f} {t.confidence:.3f} {t.token}")


def run(args: argparse.Namespace) -> int:
    from casnat.inputs import resolve_inputs
    from casnat.output_formats import check_formats, format_combined, write_outputs

    try:
        formats = check_formats([f.strip() for f in args.format.split(",") if f.strip()])
    except ValueError as e:
        raise UserError(f"--format: {e}") from e
    if not formats:
        raise UserError("--format: no format given")
    if args.output_dir is None and len(formats) > 1:
        raise UserError(f"--format {args.format}: several formats need --output-dir")
    if args.batch_size < 1 or args.batch_seconds <= 0:
        raise UserError("--batch-size and --batch-seconds must be positive")
    inputs = resolve_inputs(args.audio, wav_scp=args.wav_scp, segments=args.segments)
    rec = _load(args)
    opts = search_options(args)
    features = None
    if args.num_workers > 0:
        from functools import partial

        from casnat.inference import worker_features

        maker = rec.features if args.backend == "onnx" else rec
        features = partial(worker_features, maker, num_workers=args.num_workers)
    progress = Progress(len(inputs), sum(i.duration or 0.0 for i in inputs), args.quiet)
    results = [None] * len(inputs)
    for i, r in rec.iter_transcribe(
        inputs,
        opts,
        long=args.long,
        long_threshold_s=args.long_threshold,
        long_cfg=_long_cfg(args),
        batch_size=args.batch_size,
        batch_seconds=args.batch_seconds,
        features=features,
        on_audio=progress.advance,
    ):
        results[i] = r
        if r.error:
            print(f"casnat transcribe: {r.error}", file=sys.stderr)
        progress.file_done(r.error is not None)
    summary = progress.close()

    ok = [r for r in results if not r.error]
    if args.output_dir is not None:
        everything = [r.to_record() for r in results]
        decoded = [r.to_record() for r in ok]
        per_all = [f for f in formats if f in ("jsonl", "tsv")]  # they carry the error column
        per_ok = [f for f in formats if f not in per_all]
        if per_all:
            write_outputs(everything, args.output_dir, per_all)
        if per_ok:
            write_outputs(decoded, args.output_dir, per_ok)
    else:
        (fmt,) = formats
        if fmt == "text":
            _stdout_text(results, args.timestamps)
        else:
            recs = [r.to_record() for r in (results if fmt in ("jsonl", "tsv") else ok)]
            sys.stdout.write(format_combined(fmt, recs))
    if args.output:
        from casnat.atomic import atomic_write_text

        fmt = formats[0] if len(formats) == 1 else "text"
        if fmt == "text":
            lines = [f"{r.id} {r.text}" for r in ok]
            atomic_write_text(args.output, "\n".join(lines) + ("\n" if lines else ""))
        else:  # as on stdout: jsonl and tsv keep the failed files with their error
            recs = [r.to_record() for r in (results if fmt in ("jsonl", "tsv") else ok)]
            atomic_write_text(args.output, format_combined(fmt, recs))
    failed = len(results) - len(ok)
    if failed:
        print(f"casnat transcribe: {failed} of {len(results)} files failed", file=sys.stderr)
    print(summary, file=sys.stderr)
    return 1 if failed else 0
