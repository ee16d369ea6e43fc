"""Decode a cuts manifest and score it: hyp.txt, ref.txt, errors.txt, wer.txt in --out-dir.

Prints WER/CER (jiwer) and the decoding speed (RTF, utterances per second). ``--backend onnx
--onnx-model m.onnx`` decodes with onnxruntime instead (modes ctc_greedy and cassnat).

A cut whose audio or features cannot be used (missing, corrupt, too short, non-finite samples)
does not stop the run: the other cuts are decoded and scored, and each failed cut is named once
on stderr and at the top of errors.txt with its reason; it is left out of the WER (there is no
hypothesis to score) and counted in summary.json as ``failed``. The exit status is then 1, as
for ``casnat transcribe``, so a script notices that not every cut was decoded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from casnat.bin.search_args import (
    add_model_arguments,
    add_search_arguments,
    load_recognizer,
    search_options,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, exp_dir_required=False)
    p.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: decode with onnxruntime from --onnx-model (modes ctc_greedy and cassnat; "
        "no --exp-dir needed) (default: %(default)s)",
    )
    p.add_argument("--onnx-model", type=Path, default=None,
                   help="with --backend onnx: the encoder file written by casnat export-onnx")
    p.add_argument("--cuts", type=Path, help="lhotse cuts (with or without features)")
    p.add_argument("--out-dir", type=Path)
    p.add_argument(
        "--list-modes",
        action="store_true",
        help="print the modes this experiment's model can decode with (from its config.yaml) "
        "and exit; recipes use it to pick their modes",
    )
    p.add_argument(
        "--recipe-defaults",
        action="store_true",
        help="with --list-modes: only the modes recipes decode with by default "
        "(as casnat.decode.modes declares them)",
    )
    p.add_argument("--max-duration", type=float, default=100.0, help="seconds of audio per batch")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="fixed number of utterances per batch (overrides --max-duration; 1 = unbatched)",
    )
    add_search_arguments(p)


def run(args: argparse.Namespace) -> int:
    from casnat.atomic import atomic_write_json
    from casnat.data.loader import make_eval_loader
    from casnat.decode.runner import decode_loader
    from casnat.decode.scoring import score_wer, write_report
    from casnat.errors import UserError

    if args.backend == "torch" and args.exp_dir is None:
        raise UserError("--exp-dir is required (or --backend onnx --onnx-model FILE)")
    if args.list_modes:
        if args.exp_dir is None:
            raise UserError("--list-modes reads --exp-dir's config.yaml")
        from casnat.config import load_config
        from casnat.decode.runner import supported_modes

        cfg = load_config(args.exp_dir / "config.yaml").model
        print(" ".join(supported_modes(cfg, recipe_defaults_only=args.recipe_defaults)))
        return 0
    if args.recipe_defaults:
        raise UserError("--recipe-defaults goes with --list-modes")
    if args.cuts is None or args.out_dir is None:
        raise UserError("--cuts and --out-dir are required (unless --list-modes)")
    if not args.cuts.is_file():
        raise UserError(f"cuts manifest not found: {args.cuts}")
    from casnat.data.validate import read_cuts_checked

    cuts = read_cuts_checked(args.cuts)  # a malformed line: one line naming it, before decoding
    opts = search_options(args)
    if args.backend == "onnx":
        onnx_rec = _load_onnx(args, opts.mode)
        tokenizer, feature_cfg = onnx_rec.tokenizer, onnx_rec.features.features_cfg
    else:
        rec = load_recognizer(args)
        tokenizer, feature_cfg = rec.tokenizer, rec.cfg.features
    loader = make_eval_loader(
        cuts, tokenizer, args.max_duration, feature_cfg=feature_cfg, max_cuts=args.batch_size
    )
    if args.backend == "onnx":
        run_ = onnx_rec.decode_loader(loader, opts.mode, frame_shift=feature_cfg.frame_shift)
    else:
        run_ = decode_loader(
            rec.model, rec.tokenizer, loader, opts, rec.device, frame_shift=feature_cfg.frame_shift
        )
    failed = _failed_cuts(cuts, loader.dataset, set(run_.hyps))
    report = score_wer(run_.refs, run_.hyps)
    write_report(report, args.out_dir)
    if failed:
        _add_failures_to_errors_txt(args.out_dir / "errors.txt", failed)
        for cut_id, reason in failed:
            print(f"casnat decode: {cut_id}: {reason}", file=sys.stderr)
    summary = {
        "mode": opts.mode,
        "backend": args.backend,
        "utterances": len(run_.hyps),
        "failed": len(failed),
        "wer": report.wer,
        "cer": report.cer,
        "rtf": run_.rtf,
        "utts_per_s": run_.utts_per_second,
        "audio_s": run_.audio_seconds,
        "decode_s": run_.decode_seconds,
    }
    atomic_write_json(args.out_dir / "summary.json", summary, indent=1)
    print(
        f"{args.cuts.name} mode={opts.mode}: WER {100 * report.wer:.2f}% "
        f"CER {100 * report.cer:.2f}% ({len(run_.hyps)} utts) "
        f"RTF {run_.rtf:.4f} ({run_.utts_per_second:.1f} utt/s) -> {args.out_dir}"
    )
    if failed:
        print(
            f"casnat decode: {len(failed)} of {len(failed) + len(run_.hyps)} cuts failed "
            f"(not scored; listed in {args.out_dir / 'errors.txt'})",
            file=sys.stderr,
        )
        return 1
    return 0


def _load_onnx(args: argparse.Namespace, mode: str):
    """The ONNX recognizer of ``--onnx-model``, its mode checked before any audio is read."""
    from casnat.errors import UserError
    from casnat.onnx_export import OnnxRecognizer

    if args.onnx_model is None:
        raise UserError("--backend onnx needs --onnx-model FILE.onnx (casnat export-onnx)")
    if args.device != "cpu":
        raise UserError(f"--backend onnx runs on the CPU (onnxruntime), not --device {args.device}")
    return OnnxRecognizer(args.onnx_model, mode=mode, num_threads=args.num_threads)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _failed_cuts(cuts, dataset, decoded: set[str]) -> list[tuple[str, str]]:
    """``(cut id, reason)`` of every cut of the manifest without a hypothesis, in manifest order.

    The dataset drops a bad cut from its batch with a warning; the batch keeps only a count.
    Each failed cut is loaded once more, alone, to get its own reason (the dataset's message,
    naming the file): cheap, since only failed cuts are retried, and exact, since it is the
    same code path."""
    from lhotse import CutSet

    missing = [c for c in cuts if c.id not in decoded]
    out = []
    ds_log = logging.getLogger("casnat.data.dataset")
    for cut in missing:
        handler = _Collect()
        ds_log.addHandler(handler)
        try:
            dataset[CutSet.from_cuts([cut])]
        except Exception as e:  # noqa: BLE001 - any failure is this cut's reason
            handler.messages.append(f"{type(e).__name__}: {e}")
        finally:
            ds_log.removeHandler(handler)
        reasons = [m.removeprefix("skipping cut: ") for m in handler.messages]
        reason = " ".join((reasons[0] if reasons else "not decoded (no reason given)").split())
        out.append((cut.id, reason))
    return out


def _add_failures_to_errors_txt(path: Path, failed: list[tuple[str, str]]) -> None:
    """Put the failed cuts at the top of errors.txt (what a reader must see first)."""
    from casnat.atomic import atomic_write_text

    head = f"Not decoded ({len(failed)}), audio or features unusable, not scored:\n"
    body = "".join(f"  {cut_id}: {reason}\n" for cut_id, reason in failed)
    atomic_write_text(path, head + body + "\n" + path.read_text())
