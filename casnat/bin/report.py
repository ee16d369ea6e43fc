"""Collect the decode results of an experiment (EXP_DIR/decode_*/summary.json) into one table.

Prints a Markdown table of WER, CER and speed per test set and mode; ``--out`` also writes it
(atomically), which is how the recipes produce RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("exp_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    p.add_argument("--title", default=None)


def results_table(exp_dirs: list[Path]) -> str:
    rows = []
    for exp in exp_dirs:
        for s in sorted(exp.glob("decode_*/summary.json")):
            d = json.loads(s.read_text())
            rows.append((exp.name, s.parent.name.removeprefix("decode_"), d))
    if not rows:
        return "(no decode results found)\n"
    lines = [
        "| exp | test set / mode | utts | WER % | CER % | RTF | utt/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for exp, name, d in rows:
        lines.append(
            f"| {exp} | {name} | {d['utterances']} | {100 * d['wer']:.2f} | {100 * d['cer']:.2f} "
            f"| {d['rtf']:.4f} | {d['utts_per_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from casnat.atomic import atomic_write_text
    from casnat.errors import UserError

    for e in args.exp_dirs:
        if not e.is_dir():
            raise UserError(f"experiment directory not found: {e}")
    table = results_table(args.exp_dirs)
    text = (f"## {args.title}\n\n" if args.title else "") + table
    print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
    return 0
