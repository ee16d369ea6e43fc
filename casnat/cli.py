"""``casnat`` command line. Each subcommand is a thin module in ``casnat/bin``.

    casnat prepare fsdd|synth_en|kaldi|librispeech ...   corpus -> lhotse manifests
    casnat features --cuts IN --out-dir D                80-dim fbank into lhotse storage
    casnat train --config X.yaml --exp-dir exp/Y         (also: torchrun ... -m casnat.bin.train)
    casnat average --exp-dir exp/Y --last 5              checkpoint averaging
    casnat decode --exp-dir exp/Y --cuts test.jsonl.gz   decode + WER/CER report
    casnat transcribe --exp-dir exp/Y a.wav b.flac       batch transcription of audio files
    casnat bench-train --config X.yaml [--config Y.yaml] training frames/s, fp32 vs bf16

Errors the user can fix (missing file, bad config key, unreadable checkpoint) print as one line,
without a traceback, and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from casnat.errors import UserError

COMMANDS = ("prepare", "features", "train", "average", "decode", "transcribe", "report",
            "bench-train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casnat", description="CASS-NAT speech recognition")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in COMMANDS:
        mod = importlib.import_module(f"casnat.bin.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=mod.__doc__.strip().splitlines()[0])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_guarded(name: str, fn, args: argparse.Namespace) -> int:
    """Run a subcommand; user errors become one line on stderr and exit status 2."""
    try:
        return fn(args) or 0
    except (UserError, FileNotFoundError) as e:
        print(f"casnat {name}: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_guarded(args.cmd, args._run, args)


if __name__ == "__main__":
    sys.exit(main())
