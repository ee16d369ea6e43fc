#!/usr/bin/env python
"""Why does ``at_beam`` (the AT decoder alone) fall behind CTC? Count its error kinds.

For every utterance of a cuts manifest, the AT beam search's best hypothesis is aligned to the
reference (token level: the word tokenizer's tokens are words) and classified:

* **early eos**: the reference's last tokens are deleted (trailing deletions), the hypothesis
  stopped too soon;
* **loop**: some n-gram (n <= 3) repeats back to back more often in the hypothesis than anywhere
  in the reference;
* **shorter**: fewer tokens than the reference at all;
* **max_len**: the hypothesis reached the length cap (eos forced);

and the hypothesis / reference length ratio. Each is reported for several length penalties.

Then the AT decoder is teacher-forced on the *references*, to see where eos gets its mass:
P(eos) at the true end, the largest P(eos) at any earlier position, and how often eos outranks
the correct next token before the end (each such position is a chance to end early; a label-
smoothed decoder gives eos ``smoothing / V`` at every position by construction). Prints
markdown tables; writes nothing.

    python tools/at_diagnose.py --exp-dir EXP --cuts CUTS [--checkpoint CKPT]
        [--length-penalties 0,0.5,1] [--beam 10] [--max-utts N]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from casnat.decode.at_beam import at_beam_search
from casnat.models.at_decoder import add_sos_eos
from casnat.nn.masks import lengths_to_mask


def align_ops(ref: list[int], hyp: list[int]) -> list[str]:
    """Levenshtein alignment as ops in reference order: C(orrect), S, D(eletion), I."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sub = d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            d[i][j] = min(sub, d[i - 1][j] + 1, d[i][j - 1] + 1)
    ops: list[str] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            ops.append("C" if ref[i - 1] == hyp[j - 1] else "S")
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            ops.append("D")
            i -= 1
        else:
            ops.append("I")
            j -= 1
    return ops[::-1]


def trailing_deletions(ops: list[str]) -> int:
    """Deletions after the last reference-aligned hypothesis token (insertions end the run)."""
    k = 0
    for op in reversed(ops):
        if op != "D":
            break
        k += 1
    return k


def max_repeat(seq: list[int], max_n: int = 3) -> int:
    """Most back-to-back repetitions of any n-gram (n <= max_n) in ``seq`` (1 = no repeat)."""
    best = 1
    for n in range(1, max_n + 1):
        for start in range(len(seq) - n + 1):
            gram, reps, pos = seq[start : start + n], 1, start + n
            while seq[pos : pos + n] == gram:
                reps, pos = reps + 1, pos + n
            best = max(best, reps)
    return best


@dataclass
class Counts:
    utts: int = 0
    ref_tokens: int = 0
    hyp_tokens: int = 0
    errors: int = 0
    wrong_utts: int = 0
    early_eos_utts: int = 0
    trailing_dels: int = 0
    loop_utts: int = 0
    max_len_utts: int = 0
    shorter_utts: int = 0
    ops: Counter = field(default_factory=Counter)

    def add(self, ref: list[int], hyp: list[int], max_len: int) -> None:
        ops = align_ops(ref, hyp)
        self.utts += 1
        self.ref_tokens += len(ref)
        self.hyp_tokens += len(hyp)
        self.ops.update(ops)
        err = sum(op != "C" for op in ops)
        self.errors += err
        self.wrong_utts += err > 0
        tail = trailing_deletions(ops)
        self.early_eos_utts += tail > 0
        self.trailing_dels += tail
        self.loop_utts += max_repeat(hyp) > max_repeat(ref)
        self.max_len_utts += len(hyp) >= max_len
        self.shorter_utts += len(hyp) < len(ref)


@dataclass
class EosStats:
    utts: int = 0
    positions: int = 0  # reference positions before the end
    eos_beats_ref: int = 0  # of those, where P(eos) > P(correct token)
    utts_eos_beats_ref: int = 0
    p_end_sum: float = 0.0
    p_early_max_sum: float = 0.0
    p_early_sum: float = 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exp-dir", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--cuts", type=Path, required=True)
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--length-penalties", default="0,0.5,1")
    p.add_argument("--max-len-ratio", type=float, default=1.0)
    p.add_argument("--max-duration", type=float, default=100.0)
    p.add_argument("--max-utts", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-threads", type=int, default=None)
    args = p.parse_args(argv)

    from casnat.data.loader import make_eval_loader
    from casnat.inference import load_model

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    rec = load_model(args.exp_dir, args.checkpoint, args.device)
    model, tok = rec.model.eval(), rec.tokenizer
    if model.at_decoder is None:
        print(f"{args.exp_dir}: the model has no AT decoder", file=sys.stderr)
        return 2
    dec = model.at_decoder
    penalties = [float(x) for x in args.length_penalties.split(",")]
    counts = {lp: Counts() for lp in penalties}
    eos = EosStats()
    loader = make_eval_loader(args.cuts, tok, args.max_duration, feature_cfg=rec.cfg.features)
    done = 0
    with torch.no_grad():
        for batch in loader:
            if args.max_utts is not None and done >= args.max_utts:
                break
            feats, feat_lens = batch.feats.to(rec.device), batch.feat_lens.to(rec.device)
            enc = model.encode(feats, feat_lens)
            mask = lengths_to_mask(enc.lens, enc.out.size(1))
            max_len = (enc.lens.float() * args.max_len_ratio).long().clamp(min=1)
            refs = [batch.tokens[i, : int(batch.token_lens[i])].tolist() for i in range(len(feats))]
            for lp in penalties:
                nbest = at_beam_search(
                    dec,
                    enc.out,
                    mask,
                    beam=args.beam,
                    sos=model.sos_id,
                    eos=model.eos_id,
                    max_len=max_len,
                    length_penalty=lp,
                )
                for ref, nb, ml in zip(refs, nbest, max_len.tolist(), strict=True):
                    counts[lp].add(ref, nb[0].tokens, ml)
            # Teacher-forced references: where does eos get probability?
            tokens, lens = batch.tokens.to(rec.device), batch.token_lens.to(rec.device)
            ys_in, ys_out = add_sos_eos(tokens, lens, model.sos_id, model.eos_id)
            logp = dec(ys_in, lens + 1, enc.out, mask)  # (N, U + 1, V)
            p_eos = logp[..., model.eos_id].exp()
            p_ref = logp.gather(-1, ys_out.clamp(min=0)[..., None]).squeeze(-1).exp()
            for i, n in enumerate(lens.tolist()):
                eos.utts += 1
                eos.p_end_sum += float(p_eos[i, n])
                if n:
                    early = p_eos[i, :n]
                    beats = int((early > p_ref[i, :n]).sum())
                    eos.positions += n
                    eos.eos_beats_ref += beats
                    eos.utts_eos_beats_ref += beats > 0
                    eos.p_early_max_sum += float(early.max())
                    eos.p_early_sum += float(early.sum())
            done += len(feats)

    ls = rec.cfg.model.loss.label_smoothing
    print(
        f"# at_beam diagnosis: {args.exp_dir} on {args.cuts.name} ({done} utts, beam "
        f"{args.beam}, AT label smoothing {ls}, vocab {model.vocab_size})\n"
    )
    print(
        "| length penalty | WER % | utts wrong | sub | del | ins | hyp shorter (utts) | "
        "early eos (utts) | trailing dels | loops (utts) | hit max_len | hyp/ref tokens |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lp, c in counts.items():
        print(
            f"| {lp:g} | {100 * c.errors / max(1, c.ref_tokens):.2f} | {c.wrong_utts} | "
            f"{c.ops['S']} | {c.ops['D']} | {c.ops['I']} | {c.shorter_utts} | {c.early_eos_utts} | "
            f"{c.trailing_dels} | {c.loop_utts} | {c.max_len_utts} | "
            f"{c.hyp_tokens / max(1, c.ref_tokens):.3f} |"
        )
    print("\nTeacher-forced on the references:\n")
    print(
        "| mean P(eos) at the end | mean max P(eos) before the end | mean P(eos) before the end "
        "| positions where P(eos) > P(ref token) | utts with such a position | "
        "label-smoothing floor smoothing/V |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {eos.p_end_sum / max(1, eos.utts):.4f} | "
        f"{eos.p_early_max_sum / max(1, eos.utts):.4f} | "
        f"{eos.p_early_sum / max(1, eos.positions):.4f} | "
        f"{eos.eos_beats_ref} / {eos.positions} | {eos.utts_eos_beats_ref} / {eos.utts} | "
        f"{ls / model.vocab_size:.4f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
