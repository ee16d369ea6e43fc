"""Pack an experiment into one file (weights, config, tokenizer, model card) for transcription.

    casnat export-model egs/fsdd/exp/cassnat -o fsdd.casnat
    casnat transcribe --model fsdd.casnat a.wav

The file (:mod:`casnat.model_file`) holds safetensors weights, so loading it never unpickles.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("exp_dir", type=Path, help="trained experiment directory")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="default: EXP_DIR/avg-*.pt if present, else the newest epoch checkpoint",
    )


def run(args: argparse.Namespace) -> int:
    from casnat.model_file import export_model

    card = export_model(args.exp_dir, args.output, args.checkpoint)
    shown = {k: v for k, v in card.items() if k != "results_md"}
    print(json.dumps(shown, indent=1))
    return 0
