"""Export a model to ONNX for decoding with onnxruntime (modes ctc_greedy and cassnat).

    casnat export-onnx egs/fsdd/exp/cassnat -o fsdd.onnx          (or a one-file model.casnat)
    casnat export-onnx egs/fsdd/exp/cassnat -o fsdd.int8.onnx --int8

Writes the encoder + CTC graph to -o and, for a CASS-NAT model, the TAE + NAT decoder graph next
to it (``fsdd.nat.onnx``); the AT decoder is not exported. See :mod:`casnat.onnx_export`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="experiment directory or one-file model")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="encoder ONNX file to write (the NAT graph goes to OUTPUT .nat.onnx)")
    p.add_argument("--checkpoint", type=Path, default=None, help="with an experiment directory")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--int8", action="store_true",
                   help="dynamic int8 quantization of the MatMul/Gemm weights (onnxruntime)")
    p.add_argument("--no-nat", action="store_true",
                   help="only the encoder + CTC (no cassnat mode), even for a CASS-NAT model")


def run(args: argparse.Namespace) -> int:
    from casnat.onnx_export import export_onnx

    meta = export_onnx(args.model, args.output, args.checkpoint, args.opset, int8=args.int8,
                       nat=not args.no_nat)
    print(json.dumps(meta, indent=1))
    return 0
