"""Transcribe audio files (any format soundfile reads, any sample rate) in batches.

A file that cannot be read is reported on stderr and skipped; the rest are still transcribed and
the exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from casnat.bin.search_args import (
    add_model_arguments,
    add_search_arguments,
    load_recognizer,
    search_options,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("audio", nargs="*", type=Path, help="audio files")
    p.add_argument("--wav-scp", type=Path, default=None, help="Kaldi wav.scp with 'id path' lines")
    p.add_argument(
        "--output", type=Path, default=None, help="write 'id text' lines here (atomically)"
    )
    p.add_argument(
        "--timestamps", action="store_true", help="also print token times and confidences"
    )
    p.add_argument("--batch-size", type=int, default=16)
    add_search_arguments(p)


def _inputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    from casnat.errors import UserError

    items = [(p.stem, p) for p in args.audio]
    if args.wav_scp:
        if not args.wav_scp.is_file():
            raise UserError(f"wav.scp not found: {args.wav_scp}")
        for n, line in enumerate(args.wav_scp.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or parts[1].rstrip().endswith("|"):
                raise UserError(
                    f"{args.wav_scp}:{n}: expected 'id path' (piped commands unsupported)"
                )
            items.append((parts[0], Path(parts[1].strip())))
    if not items:
        raise UserError("no audio given (pass files or --wav-scp)")
    return items


def run(args: argparse.Namespace) -> int:
    items = _inputs(args)
    rec = load_recognizer(args)
    results = rec.transcribe(
        [p for _, p in items], batch_size=args.batch_size, opts=search_options(args)
    )
    lines, failed = [], 0
    for (utt, _), r in zip(items, results, strict=True):
        if r.error:
            failed += 1
            print(f"casnat transcribe: {r.error}", file=sys.stderr)
            continue
        lines.append(f"{utt} {r.text}")
        print(f"{utt} {r.text}")
        if args.timestamps:
            for t in r.tokens:
                print(f"  {t.start:7.2f} {t.end:7.2f} {t.confidence:.3f} {t.token}")
    if args.output:
        from casnat.atomic import atomic_write_text

        atomic_write_text(args.output, "\n".join(lines) + ("\n" if lines else ""))
    if failed:
        print(f"casnat transcribe: {failed} of {len(items)} files failed", file=sys.stderr)
    return 1 if failed else 0
