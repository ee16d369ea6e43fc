"""Export the encoder + CTC head to ONNX (greedy CTC decoding with onnxruntime, no PyTorch).

    casnat export-onnx egs/fsdd/exp/cassnat -o fsdd.onnx     (or a one-file model.casnat)

The decoders (CASS-NAT, AT) are not exported; see :mod:`casnat.onnx_export`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="experiment directory or one-file model")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--checkpoint", type=Path, default=None, help="with an experiment directory")
    p.add_argument("--opset", type=int, default=17)


def run(args: argparse.Namespace) -> int:
    from casnat.onnx_export import export_onnx

    meta = export_onnx(args.model, args.output, args.checkpoint, args.opset)
    print(json.dumps(meta, indent=1))
    return 0
