"""Robustness benchmark: WER under gain, noise, reverberation and telephone, models side by side.

    casnat bench-robust --exp-dir exp/cassnat --exp-dir exp/cassnat_noaug \\
        --cuts data/manifests/cuts_test.jsonl.gz --modes ctc_greedy cassnat \\
        --level-dbfs off on [--conditions clean gain:-20 white:10 ...] [--max-utts 100] \\
        [--condition-seed 0] [--num-threads 2] [--out robust.md]

The conditions are made from the waveforms of --cuts (the recipe's test split) only; one table,
a row per condition and a column per (model, input level, mode), goes to stdout and, with --out,
atomically to a file. See casnat.robustness.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from casnat.bin.search_args import add_search_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    from casnat.robustness import DEFAULT_CONDITIONS

    p.add_argument(
        "--exp-dir",
        type=Path,
        action="append",
        required=True,
        help="trained experiment directory; repeat for several models side by side",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="checkpoint of the i-th --exp-dir (default: its avg-*.pt, else its newest epoch)",
    )
    p.add_argument(
        "--cuts",
        type=Path,
        required=True,
        help="the recipe's test split (cuts with recordings; stored features are not used)",
    )
    p.add_argument("--modes", nargs="+", default=["ctc_greedy", "cassnat"])
    p.add_argument(
        "--level-dbfs",
        nargs="+",
        default=["model"],
        metavar="LEVEL",
        help="input level normalization at inference, one column set per value: model (as the "
        "model's features.level_dbfs says), off, on (-25 dBFS, FSDD's median training level) "
        "or a target in dBFS, e.g. --level-dbfs off -25 (default: model)",
    )
    p.add_argument(
        "--no-level-norm",
        action="store_true",
        help="same as --level-dbfs off",
    )
    p.add_argument(
        "--conditions",
        nargs="+",
        default=list(DEFAULT_CONDITIONS),
        help="clean, gain:DB, white:SNR, babble:SNR, reverb:RT60, telephone "
        f"(default: {' '.join(DEFAULT_CONDITIONS)})",
    )
    p.add_argument(
        "--condition-seed",
        type=int,
        default=0,
        help="seed of every noise, babble and RIR draw (--seed is the search's own)",
    )
    p.add_argument("--max-utts", type=int, default=None, help="first N utterances of --cuts")
    p.add_argument("--batch-size", type=int, default=32, help="max utterances per batch")
    p.add_argument(
        "--max-duration", type=float, default=200.0, help="max padded seconds of audio per batch"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=None, help="also write the table here (atomic)")
    add_search_arguments(p, exclude=("mode",))


def run(args: argparse.Namespace) -> int:
    import torch

    from casnat.atomic import atomic_write_text
    from casnat.bin.search_args import search_options
    from casnat.errors import UserError
    from casnat.robustness import RobustConfig, level_setting, parse_conditions, run_robustness

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if len(args.checkpoint) > len(args.exp_dir):
        raise UserError("more --checkpoint than --exp-dir values (give one per model, in order)")
    levels = ["off"] if args.no_level_norm else args.level_dbfs
    cfg = RobustConfig(
        cuts=args.cuts,
        exp_dirs=tuple(args.exp_dir),
        checkpoints=tuple(args.checkpoint),
        modes=tuple(args.modes),
        levels=tuple(level_setting(v) for v in levels),
        conditions=tuple(parse_conditions(args.conditions)),
        seed=args.condition_seed,
        max_utts=args.max_utts,
        batch_size=args.batch_size,
        max_duration=args.max_duration,
        device=args.device,
        opts=search_options(args),
    )
    table = run_robustness(cfg).markdown()
    print(table, end="")
    if args.out:
        atomic_write_text(args.out, table)
    return 0
