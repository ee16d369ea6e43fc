"""Compute log-mel fbank for a cuts manifest into lhotse storage (recipes' stage 1).

``--config`` takes the front end (sample rate, mel bins, frame shift/length, input level) from
an experiment config's ``features:`` section, so the stored features are the ones that
config's training and decoding expect; without it, casnat's defaults (80 bins at 16 kHz, no
level normalization). Each cut records the front end it was computed with, and datasets refuse
stored features made for another one. Unreadable audio is skipped with a warning naming the
file; the rest is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cuts", type=Path, required=True, help="input cuts manifest (jsonl.gz)")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="experiment YAML whose features: section sets the front end (default: casnat's "
        "80-dim fbank at 16 kHz)",
    )
    p.add_argument(
        "--speed-perturb", action="store_true", help="also 0.9x and 1.1x copies (training)"
    )
    p.add_argument("--num-jobs", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    from casnat.config import load_config
    from casnat.data.features import DEFAULT_FEATURES, compute_features

    cfg = load_config(args.config).features if args.config is not None else DEFAULT_FEATURES
    out = compute_features(
        args.cuts,
        args.out_dir,
        speed_perturb=(0.9, 1.0, 1.1) if args.speed_perturb else None,
        num_jobs=args.num_jobs,
        cfg=cfg,
    )
    print(f"features: {out}")
    return 0
