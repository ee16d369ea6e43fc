"""Average the last N epoch checkpoints into one model file.

When the run ended mid-epoch (``train.max_minutes``, ``max_steps``) its final checkpoint counts
as the newest of the N: those last steps ran at the annealed learning rate.

The result holds only ``model`` weights (plus the list of sources) and is what ``casnat decode``
picks by default.

With ``--select-on DEV_CUTS...`` the number of checkpoints is chosen on held-out data instead
of fixed: every n = 1..N of the newest checkpoints is averaged and decoded, and the n with the
fewest word errors (summed over the dev sets and ``--select-modes``) is written. How many to
average matters most when training is short (a few epochs, so the oldest ones are still poor),
and choosing it on dev keeps the test sets out of the choice. Ties go to the larger n.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exp-dir", type=Path, required=True)
    p.add_argument("--last", type=int, default=5, help="how many of the newest epoch checkpoints "
                   "(with --select-on: the most that may be averaged)")
    p.add_argument("--out", type=Path, default=None, help="default: EXP_DIR/avg-LAST.pt")
    p.add_argument("--select-on", type=Path, nargs="+", default=None, metavar="CUTS",
                   help="dev manifests on which to choose how many checkpoints to average")
    p.add_argument("--select-modes", nargs="+", default=["ctc_greedy"],
                   help="decoding modes whose word errors are summed for the choice")
    p.add_argument("--device", default="cpu")


def _dev_errors(model, tokenizer, cfg, loaders: list, modes: list[str], device) -> list[int]:
    """Word errors per (dev loader, mode), in that order."""
    from casnat.decode.runner import DecodeOptions, decode_loader
    from casnat.decode.scoring import score_wer

    out = []
    for loader in loaders:
        for mode in modes:
            run = decode_loader(model, tokenizer, loader, DecodeOptions(mode=mode), device,
                                frame_shift=cfg.features.frame_shift)
            rep = score_wer(run.refs, run.hyps)
            out.append(rep.sub + rep.dels + rep.ins)
    return out


def select_num_to_average(args: argparse.Namespace, paths: list[Path]) -> int:
    """The n (1..len(paths)) whose average of the newest n checkpoints decodes dev best."""
    from casnat.checkpoint import average_checkpoints
    from casnat.data.loader import make_eval_loader
    from casnat.decode.runner import check_mode
    from casnat.errors import UserError
    from casnat.inference import load_model

    for path in args.select_on:
        if not path.is_file():
            raise UserError(f"--select-on manifest not found: {path}")
    rec = load_model(args.exp_dir, paths[-1], args.device)
    for mode in args.select_modes:
        try:
            check_mode(rec.model, mode)
        except ValueError as e:
            raise UserError(f"--select-modes: {e}") from None
    loaders = [make_eval_loader(p, rec.tokenizer, 100.0, feature_cfg=rec.cfg.features)
               for p in args.select_on]
    cols = [f"{p.name.removesuffix('.jsonl.gz')}:{m}" for p in args.select_on
            for m in args.select_modes]
    print("| n averaged | " + " | ".join(cols) + " | total word errors |")
    print("|---:|" + "---:|" * (len(cols) + 1))
    best_n, best_err = 0, None
    for n in range(1, len(paths) + 1):
        rec.model.load_state_dict(average_checkpoints(paths[-n:]))
        errs = _dev_errors(rec.model, rec.tokenizer, rec.cfg, loaders, args.select_modes,
                           rec.device)
        total = sum(errs)
        print(f"| {n} | " + " | ".join(str(e) for e in errs) + f" | {total} |", flush=True)
        if best_err is None or total <= best_err:  # ties: the larger n
            best_n, best_err = n, total
    print(f"selected: average of the last {best_n} checkpoints ({best_err} dev word errors)")
    return best_n


def run(args: argparse.Namespace) -> int:
    from casnat.atomic import atomic_torch_save
    from casnat.checkpoint import average_checkpoints, averaging_candidates
    from casnat.errors import UserError

    if args.last < 1:
        raise UserError(f"--last must be >= 1, got {args.last}")
    paths = averaging_candidates(args.exp_dir)[-args.last :]
    if not paths:
        raise UserError(f"no epoch-*.pt checkpoints in {args.exp_dir}")
    out = args.out or args.exp_dir / f"avg-{args.last}.pt"
    if args.select_on:
        paths = paths[-select_num_to_average(args, paths) :]
    atomic_torch_save(
        {"model": average_checkpoints(paths), "averaged": [p.name for p in paths]}, out
    )
    print(f"averaged {len(paths)} checkpoints ({paths[0].name} .. {paths[-1].name}) -> {out}")
    return 0
