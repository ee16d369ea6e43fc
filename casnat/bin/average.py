"""Average the last N epoch checkpoints into one model file.

The result holds only ``model`` weights (plus the list of sources) and is what ``casnat decode``
picks by default.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp-dir", type=Path, required=True)
    p.add_argument("--last", type=int, default=5, help="how many of the newest epoch checkpoints")
    p.add_argument("--out", type=Path, default=None, help="default: EXP_DIR/avg-LAST.pt")


def run(args: argparse.Namespace) -> int:
    from casnat.errors import UserError
    from casnat.train.checkpoint import atomic_save, average_checkpoints, epoch_checkpoints

    paths = epoch_checkpoints(args.exp_dir)[-args.last :]
    if not paths:
        raise UserError(f"no epoch-*.pt checkpoints in {args.exp_dir}")
    out = args.out or args.exp_dir / f"avg-{args.last}.pt"
    atomic_save({"model": average_checkpoints(paths), "averaged": [p.name for p in paths]}, out)
    print(f"averaged {len(paths)} checkpoints ({paths[0].name} .. {paths[-1].name}) -> {out}")
    return 0
