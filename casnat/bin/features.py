"""Compute 80-dim log-mel fbank for a cuts manifest into lhotse storage (recipes' stage 1).

Unreadable audio is skipped with a warning naming the file; the rest is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cuts", type=Path, required=True, help="input cuts manifest (jsonl.gz)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument(
        "--speed-perturb", action="store_true", help="also 0.9x and 1.1x copies (training)"
    )
    p.add_argument("--num-jobs", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    from casnat.data.features import compute_features

    out = compute_features(
        args.cuts,
        args.out_dir,
        speed_perturb=(0.9, 1.0, 1.1) if args.speed_perturb else None,
        num_jobs=args.num_jobs,
    )
    print(f"features: {out}")
    return 0
