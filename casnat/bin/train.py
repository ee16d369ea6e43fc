"""Train a model: casnat train --config X.yaml --exp-dir exp/Y [--resume].

Runs as one process, or under ``torchrun --nproc_per_node=N -m casnat.bin.train ...`` for DDP
(gloo on CPU, nccl on GPU; each rank reads its own shard of the sampler).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="experiment YAML (casnat.config)")
    p.add_argument(
        "--exp-dir", type=Path, required=True, help="checkpoints, logs, tokenizer go here"
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument(
        "--dump-batch-ids",
        action="store_true",
        help="write the cut ids of every batch to EXP_DIR/batches.rankR.txt (debugging)",
    )


def run(args: argparse.Namespace) -> int:
    from casnat.config import load_config
    from casnat.train.trainer import train

    cfg = load_config(args.config)
    summary = train(
        cfg,
        args.exp_dir,
        resume=args.resume,
        device=args.device,
        dump_batch_ids=args.dump_batch_ids,
    )
    print(
        f"trained {summary.steps} steps / {summary.epochs} epochs in {summary.minutes:.1f} min; "
        f"last valid loss {summary.last_valid_loss:.4f}; exp dir {summary.exp_dir}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    from casnat.bin._common import run_guarded, setup_logging
    from casnat.openmp import configure_for_command

    # torchrun's entry: before anything imports torch (libgomp reads its env once).
    configure_for_command(["train", *(sys.argv[1:] if argv is None else argv)])

    p = argparse.ArgumentParser(prog="casnat.bin.train", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    setup_logging()
    return run_guarded("train", run, args)


if __name__ == "__main__":
    sys.exit(main())
