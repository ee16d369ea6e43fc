"""Benchmark training throughput: fp32 vs bf16 frames/s, per-phase split, GFLOP/s vs GEMM peaks.

    casnat bench-train --config egs/fsdd/conf/cassnat.yaml --config egs/synth_en/conf/cassnat.yaml \
        [--train-cuts CUTS ...] [--steps 6] [--warmup 2] [--out bench_train.md]

Runs real training steps on the recipe's batches (built in --work-dir when the recipe's data is
not prepared); see casnat.train.benchmark. Prints a Markdown table; --out also writes it
(atomically).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, action="append", required=True,
                   help="experiment YAML under egs/<recipe>/conf/ (repeat for several)")
    p.add_argument("--train-cuts", type=Path, action="append", default=[],
                   help="train cuts for each --config, in order, or 'build' "
                   "(default: data.train_cuts, else build)")
    p.add_argument("--precisions", default=None,
                   help="comma-separated: fp32, bf16 (default: both where the CPU has native "
                   "bf16, else fp32 alone: emulated bf16 runs at < 1 GFLOP/s)")
    p.add_argument("--steps", type=int, default=6, help="timed steps per precision")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--num-threads", type=int, default=2)
    p.add_argument("--num-utts", type=int, default=240,
                   help="utterances of the corpus built when the recipe's data is missing")
    p.add_argument("--max-duration", type=float, default=None, help="override data.max_duration")
    p.add_argument("--num-workers", type=int, default=None, help="override data.num_workers")
    p.add_argument("--gemm-reps", type=int, default=5, help="timings per GEMM peak shape")
    p.add_argument("--torch-ops", action="store_true",
                   help="also time fp32 with torch's own dropout and NCHW conv weights (the "
                   "trainer before casnat's CPU kernels), as row fp32-torch-ops")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder (inductor)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="built corpora and tokenizers go here (default: a temp dir, removed)")
    p.add_argument("--out", type=Path, default=None, help="also write the table to this file")


def run(args: argparse.Namespace) -> int:
    from casnat.atomic import atomic_write_text
    from casnat.train.benchmark import (
        BenchOptions,
        default_precisions,
        format_report,
        run_benchmark,
    )

    precisions = (tuple(p.strip() for p in args.precisions.split(",") if p.strip())
                  if args.precisions else default_precisions())

    with tempfile.TemporaryDirectory(prefix="casnat-bench-train-") as tmp:
        opts = BenchOptions(
            configs=tuple(args.config),
            work_dir=args.work_dir or Path(tmp),
            train_cuts=tuple(args.train_cuts),
            precisions=precisions,
            steps=args.steps,
            warmup=args.warmup,
            num_threads=args.num_threads,
            num_utts=args.num_utts,
            max_duration=args.max_duration,
            num_workers=args.num_workers,
            compile_encoder=args.compile,
            gemm_reps=args.gemm_reps,
            torch_ops=args.torch_ops,
        )
        results, peaks = run_benchmark(opts)
    table = format_report(results, peaks, opts)
    print(table)
    if args.out is not None:
        atomic_write_text(args.out, table)
    return 0
