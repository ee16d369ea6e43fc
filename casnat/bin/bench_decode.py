"""Benchmark decoding modes side by side on one model: WER, RTF, utt/s (Markdown table).

    casnat bench-decode --exp-dir exp/cassnat --checkpoint exp/cassnat/avg-dev.pt \\
        --cuts data/fbank/cuts_test.jsonl.gz --num-threads 1 --max-utts 200 \\
        [--modes ctc_greedy cassnat] [--profile] [--device cuda] [--out bench.md]

The table goes to stdout and, with --out, atomically to a file; see casnat.decode.benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from casnat.bin.search_args import add_model_arguments, add_search_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    from casnat.decode.benchmark import BenchmarkConfig, default_modes

    add_model_arguments(p)
    p.add_argument("--cuts", type=Path, required=True, help="cuts manifest (features or audio)")
    p.add_argument(
        "--modes",
        nargs="+",
        default=list(default_modes()),
        help="modes to compare (default: those recipes decode with; see casnat decode "
        "--list-modes); modes the model lacks are skipped",
    )
    p.add_argument("--max-utts", type=int, default=None, help="first N utterances of --cuts")
    p.add_argument(
        "--batch-size",
        type=int,
        default=BenchmarkConfig.batch_size,
        help="max utterances per batch",
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=BenchmarkConfig.max_duration,
        help="max padded seconds of audio per batch",
    )
    p.add_argument("--out", type=Path, default=None, help="also write the table here (atomic)")
    p.add_argument("--profile", action="store_true", help="time per phase for each mode")
    add_search_arguments(p, exclude=("mode",))


def run(args: argparse.Namespace) -> int:
    import torch

    from casnat.atomic import atomic_write_text
    from casnat.bin.search_args import search_options
    from casnat.decode.benchmark import BenchmarkConfig, run_benchmark

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    cfg = BenchmarkConfig(
        exp_dir=args.exp_dir,
        cuts=args.cuts,
        checkpoint=args.checkpoint,
        modes=tuple(args.modes),
        opts=search_options(args),
        max_utts=args.max_utts,
        batch_size=args.batch_size,
        max_duration=args.max_duration,
        device=args.device,
        profile=args.profile,
    )
    table = run_benchmark(cfg).markdown()
    print(table, end="")
    if args.out:
        atomic_write_text(args.out, table)
    return 0
