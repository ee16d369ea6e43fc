"""``casnat`` command line. Each subcommand is a thin module in ``casnat/bin``.

    casnat prepare fsdd|synth_en|kaldi|librispeech ...   corpus -> lhotse manifests
    casnat features --cuts IN --out-dir D [--config C]   fbank into lhotse storage
    casnat train --config X.yaml --exp-dir exp/Y         (also: torchrun ... -m casnat.bin.train)
    casnat average --exp-dir exp/Y --last 5              checkpoint averaging
    casnat decode --exp-dir exp/Y --cuts test.jsonl.gz   decode + WER/CER report
    casnat transcribe --exp-dir exp/Y a.wav dir/ x.scp   files, dirs, wav.scp, long audio -> text
    casnat export-model exp/Y -o model.casnat            one-file model (for transcribe --model)
    casnat export-onnx exp/Y -o model.onnx               ONNX graphs (ctc_greedy, cassnat; --int8)
    casnat bench-decode --exp-dir exp/Y --cuts C         WER and speed of the modes, side by side
    casnat bench-train --config X.yaml [--config Y.yaml] training frames/s, fp32 vs bf16
    casnat report exp/Y [exp/Z ...] --out RESULTS.md     table of the decode_*/summary.json
    casnat bench-robust --exp-dir exp/Y --cuts TEST      WER under gain/noise/reverb/telephone

Errors the user can fix (missing file, bad config key, unreadable checkpoint) print as one line,
without a traceback, and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from casnat.bin._common import run_guarded, setup_logging
from casnat.openmp import configure_for_command

COMMANDS = (
    "prepare", "features", "train", "average", "decode", "transcribe", "bench-decode", "report",
    "bench-train", "bench-robust", "export-model", "export-onnx",
)


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


def main(argv: list[str] | None = None) -> int:
    # Before build_parser imports the subcommands (and torch): libgomp reads its env once.
    configure_for_command(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_guarded(args.cmd, args._run, args)


if __name__ == "__main__":
    sys.exit(main())
