"""PyTorch vs ONNX (fp32, int8) decoding of one model on one test set, in one table.

For the modes ONNX serves (``ctc_greedy``, ``cassnat``) the test cuts are decoded by PyTorch
(``casnat``'s own modes) and by onnxruntime from fp32 and int8 ``casnat export-onnx`` files,
on the same features and the same batches, one after the other in one process. Per row: WER, the
share of utterances whose text is identical to PyTorch's in the same mode, decode seconds (model
only: features are computed once, beforehand, for all rows), RTF and speed-up over PyTorch.

Why one run: on a shared machine timings drift; rows measured minutes apart in separate runs
are not comparable, rows measured back to back (best of ``--repeats``) are.

    cd egs/fsdd && python ../../tools/bench_onnx.py --exp-dir exp/cassnat \\
        --checkpoint exp/cassnat/avg-dev.pt --cuts data/fbank/cuts_test.jsonl.gz \\
        --out-dir /tmp/onnx_work --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

MODES = ("ctc_greedy", "cassnat")


@dataclass
class Row:
    backend: str
    mode: str
    wer: float
    identical: float  # share of utterances with PyTorch's text (same mode)
    seconds: float
    rtf: float
    speedup: float
    size_mb: float


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exp-dir", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--cuts", type=Path, required=True, help="test cuts (relative audio paths "
                   "are relative to the working directory)")
    p.add_argument("--out-dir", type=Path, required=True, help="ONNX files, table and JSON")
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2, help="timed passes per row (best kept)")
    p.add_argument("--limit", type=int, default=None, help="first N cuts only")
    return p.parse_args(argv)


def batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices sorted by length (longest first) in chunks of ``size``: every row decodes the
    same batches, so padding is the same for all."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


def timed(decode: Callable[[list[int]], list], groups: list[list[int]], repeats: int
          ) -> tuple[dict[int, list[int]], float]:
    """Tokens per utterance and the best total seconds over ``repeats`` passes (after one
    untimed warm-up batch: first-call allocations are not decoding)."""
    decode(groups[0])
    best, tokens = float("inf"), {}
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = [(i, h) for g in groups for i, h in zip(g, decode(g), strict=True)]
        best = min(best, time.perf_counter() - t0)
        tokens = {i: list(h.tokens) for i, h in out}
    return tokens, best


def export_pair(args: argparse.Namespace) -> dict[str, Path]:
    """fp32 and int8 exports of the model in ``--out-dir`` (checked against PyTorch)."""
    from casnat.onnx_export import export_onnx

    args.out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "onnx fp32": args.out_dir / "model.onnx",
        "onnx int8": args.out_dir / "model.int8.onnx",
    }
    for name, path in files.items():
        t0 = time.perf_counter()
        int8 = name.endswith("int8")
        info = export_onnx(args.exp_dir, path, args.checkpoint, int8=int8)
        print(f"exported {path} in {time.perf_counter() - t0:.1f} s: max |diff| encoder "
              f"{info['max_abs_diff']:.1e}, NAT {info['nat_max_abs_diff'] or 0:.1e}"
              + (f"; int8: encoder {info['int8_max_abs_diff']:.1e}, NAT "
                 f"{info.get('int8_nat_max_abs_diff') or 0:.1e}" if int8 else ""))
    return files


def table(rows: list[Row], n: int, audio_s: float, threads: int) -> str:
    lines = [
        f"{n} utterances, {audio_s:.1f} s of audio, {threads} thread(s); seconds = model "
        "decode only (features computed once beforehand), best of the repeats; size: torch = "
        "fp32 parameters of the whole model (an AT decoder included), onnx = the exported files",
        "",
        "| backend | mode | WER % | identical to torch | seconds | RTF | speed-up | size MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.backend} | {r.mode} | {100 * r.wer:.2f} | {100 * r.identical:.1f}% "
                     f"| {r.seconds:.2f} | {r.rtf:.4f} | {r.speedup:.2f}x | {r.size_mb:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from casnat.decode.modes import DecodeOptions
    from casnat.decode.scoring import score_wer
    from casnat.inference import load_model
    from casnat.inputs import as_inputs
    from casnat.onnx_export import OnnxRecognizer, file_size_mb

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from lhotse import load_manifest

    cuts = list(load_manifest(args.cuts))[: args.limit]
    inputs = as_inputs(cuts)
    refs = {i: " ".join(s.text for s in c.supervisions if s.text) for i, c in enumerate(cuts)}
    rec = load_model(args.exp_dir, args.checkpoint, "cpu")
    feats = [rec.input_features(inp) for inp in inputs]
    feats_np = [f.numpy() for f in feats]
    audio_s = sum(c.duration for c in cuts)
    groups = batches([f.shape[0] for f in feats], args.batch_size)
    files = export_pair(args)
    onnx = {k: OnnxRecognizer(p, num_threads=args.threads) for k, p in files.items()}
    ckpt_mb = sum(p.numel() * p.element_size() for p in rec.model.parameters()) / 1e6

    def text(tokens: dict[int, list[int]]) -> dict[int, str]:
        return {i: rec.tokenizer.decode(t) for i, t in tokens.items()}

    rows: list[Row] = []
    for mode in MODES:
        opts = DecodeOptions(mode=mode)
        ref_tokens, ref_s = timed(
            lambda g, o=opts: rec.transcribe_features([feats[i] for i in g], o), groups,
            args.repeats)
        torch_text = text(ref_tokens)
        sides = [("torch", torch_text, ref_s, ckpt_mb)]
        for name, orec in onnx.items():
            toks, secs = timed(
                lambda g, r=orec, m=mode: r.decode_features([feats_np[i] for i in g], m),
                groups, args.repeats)
            sides.append((name, text(toks), secs, file_size_mb(files[name])))
        for name, hyp, secs, size in sides:
            same = np.mean([hyp[i] == torch_text[i] for i in refs]) if refs else 0.0
            wer = score_wer({str(i): r for i, r in refs.items()},
                            {str(i): h for i, h in hyp.items()}).wer
            rows.append(Row(name, mode, wer, float(same), secs, secs / audio_s,
                            ref_s / secs, size))
    out = table(rows, len(cuts), audio_s, args.threads)
    print(out)
    (args.out_dir / "bench_onnx.md").write_text(f"`{args.cuts}`\n\n{out}\n")
    (args.out_dir / "bench_onnx.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
