"""Search options shared by ``casnat decode`` and ``casnat transcribe``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp-dir", type=Path, required=True, help="trained experiment directory")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="default: EXP_DIR/avg-*.pt if present, else the newest epoch checkpoint",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    from casnat.decode.runner import MODES

    p.add_argument("--mode", default="ctc_greedy", choices=MODES)
    p.add_argument("--beam", type=int, default=10, help="ctc_prefix_beam / at_beam beam size")
    p.add_argument("--num-samples", type=int, default=16, help="cassnat_esa: K alignments")
    p.add_argument("--threshold", type=float, default=0.9, help="cassnat_esa: resampling threshold")
    p.add_argument(
        "--ranker", default="auto", choices=("auto", "at", "nat"), help="cassnat_esa ranker"
    )
    p.add_argument(
        "--seed", type=int, default=0,
        help="cassnat_esa sampling seed (flips seeded per frame: same result in any batch)",
    )
    p.add_argument(
        "--length-penalty",
        type=float,
        default=0.0,
        help="at_beam: rank finished hypotheses by log-prob / (tokens + 1) ** this (0 = raw sum)",
    )


def search_options(args: argparse.Namespace):
    from casnat.decode.runner import DecodeOptions

    return DecodeOptions(
        mode=args.mode,
        beam=args.beam,
        num_samples=args.num_samples,
        threshold=args.threshold,
        ranker=args.ranker,
        seed=args.seed,
        length_penalty=args.length_penalty,
    )


def load_recognizer(args: argparse.Namespace):
    import torch

    from casnat.inference import load_model

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    return load_model(args.exp_dir, args.checkpoint, args.device)
