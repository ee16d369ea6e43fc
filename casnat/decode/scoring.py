"""WER / CER scoring with jiwer, and Kaldi-style result files.

Texts are compared as given, split on whitespace: normalize case and punctuation before calling
(the tokenizer's decode output and the reference transcripts should match in style). CER is
computed on the whitespace-normalized strings with spaces counted as characters, as jiwer and
ESPnet do. A reference without a hypothesis counts as all-deleted and is listed in
:attr:`ScoreReport.missing`; hypotheses without a reference are ignored and listed in
:attr:`ScoreReport.extra`.

>>> rep = score_wer({"u1": "the cat sat", "u2": "a dog"}, {"u1": "the cat sit"})
>>> rep.wer, rep.sub, rep.dels, rep.ins, rep.missing
(0.6, 1, 2, 0, ['u2'])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jiwer

from casnat.atomic import atomic_write_text

__all__ = ["UttScore", "ScoreReport", "score_wer", "write_report"]


@dataclass(frozen=True)
class UttScore:
    """Word-level result for one utterance.

    ``ref_aligned``/``hyp_aligned``/``ops`` are the alignment as equal-length token lists:
    ``"*"`` fills the side missing in an insertion/deletion; ``ops`` holds ``""`` (correct),
    ``"S"``, ``"D"`` or ``"I"``.
    """

    utt_id: str
    ref: str
    hyp: str
    sub: int
    dels: int
    ins: int
    num_ref_words: int
    ref_aligned: list[str]
    hyp_aligned: list[str]
    ops: list[str]
    missing: bool = False

    @property
    def errors(self) -> int:
        return self.sub + self.dels + self.ins

    def alignment_text(self) -> str:
        """Three aligned lines ``REF:``, ``HYP:``, ``OPS:`` with columns padded to width."""
        widths = [max(len(r), len(h), 1) for r, h in zip(self.ref_aligned, self.hyp_aligned,
                                                         strict=True)]
        ref = " ".join(w.ljust(n) for w, n in zip(self.ref_aligned, widths, strict=True))
        hyp = " ".join(w.ljust(n) for w, n in zip(self.hyp_aligned, widths, strict=True))
        ops = " ".join(o.ljust(n) for o, n in zip(self.ops, widths, strict=True))
        return f"REF: {ref.rstrip()}\nHYP: {hyp.rstrip()}\nOPS: {ops.rstrip()}"


@dataclass(frozen=True)
class ScoreReport:
    """Corpus-level WER/CER with error counts and per-utterance details.

    ``wer`` = (sub + dels + ins) / num_ref_words, ``cer`` likewise over characters (both as
    fractions, 0.05 = 5 %; 0 when the reference is empty). ``sentence_errors`` counts
    utterances with at least one word error.
    """

    wer: float
    cer: float
    sub: int
    dels: int
    ins: int
    num_ref_words: int
    char_sub: int
    char_dels: int
    char_ins: int
    num_ref_chars: int
    num_utts: int
    sentence_errors: int
    utterances: list[UttScore]
    missing: list[str]
    extra: list[str]

    def summary(self) -> str:
        """Kaldi ``compute-wer`` style summary lines."""
        w_err = self.sub + self.dels + self.ins
        c_err = self.char_sub + self.char_dels + self.char_ins
        ser = self.sentence_errors / self.num_utts if self.num_utts else 0.0
        return (
            f"%WER {100 * self.wer:.2f} [ {w_err} / {self.num_ref_words}, {self.ins} ins, "
            f"{self.dels} del, {self.sub} sub ]\n"
            f"%CER {100 * self.cer:.2f} [ {c_err} / {self.num_ref_chars}, {self.char_ins} ins, "
            f"{self.char_dels} del, {self.char_sub} sub ]\n"
            f"%SER {100 * ser:.2f} [ {self.sentence_errors} / {self.num_utts} ]\n"
            f"Scored {self.num_utts} utterances, {len(self.missing)} missing hypotheses, "
            f"{len(self.extra)} hypotheses without reference\n"
        )


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _align(ref_words: list[str], hyp_words: list[str],
           chunks: Iterable[jiwer.AlignmentChunk]) -> tuple[list[str], list[str], list[str]]:
    """Turn jiwer alignment chunks into equal-length ref/hyp/ops columns."""
    ref_col: list[str] = []
    hyp_col: list[str] = []
    ops: list[str] = []
    for ch in chunks:
        r = ref_words[ch.ref_start_idx:ch.ref_end_idx]
        h = hyp_words[ch.hyp_start_idx:ch.hyp_end_idx]
        if ch.type == "equal":
            ref_col += r
            hyp_col += h
            ops += [""] * len(r)
        elif ch.type == "substitute":
            ref_col += r
            hyp_col += h
            ops += ["S"] * len(r)
        elif ch.type == "delete":
            ref_col += r
            hyp_col += ["*"] * len(r)
            ops += ["D"] * len(r)
        elif ch.type == "insert":
            ref_col += ["*"] * len(h)
            hyp_col += h
            ops += ["I"] * len(h)
        else:  # pragma: no cover - jiwer defines only the four kinds above
            raise ValueError(f"unknown jiwer alignment chunk type {ch.type!r}")
    return ref_col, hyp_col, ops


def score_wer(refs: dict[str, str], hyps: dict[str, str]) -> ScoreReport:
    """Score hypotheses against references (both ``utt_id -> text``).

    Every reference is scored; a missing hypothesis is scored as the empty string (all words
    deleted). Utterances are reported in sorted id order.
    """
    ids = sorted(refs)
    missing = [u for u in ids if u not in hyps]
    extra = sorted(u for u in hyps if u not in refs)
    ref_texts = [_normalize(refs[u]) for u in ids]
    hyp_texts = [_normalize(hyps.get(u, "")) for u in ids]
    if not ids:
        return ScoreReport(0.0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, [], [], extra)

    words = jiwer.process_words(ref_texts, hyp_texts)
    chars = jiwer.process_characters(ref_texts, hyp_texts)
    missing_set = set(missing)
    utts: list[UttScore] = []
    for u, ref, hyp, r_w, h_w, chunks in zip(ids, ref_texts, hyp_texts, words.references,
                                             words.hypotheses, words.alignments, strict=True):
        ref_col, hyp_col, ops = _align(r_w, h_w, chunks)
        utts.append(UttScore(
            utt_id=u, ref=ref, hyp=hyp, sub=ops.count("S"), dels=ops.count("D"),
            ins=ops.count("I"), num_ref_words=len(r_w), ref_aligned=ref_col,
            hyp_aligned=hyp_col, ops=ops, missing=u in missing_set))

    n_words = sum(len(r) for r in words.references)
    n_chars = sum(len(r) for r in chars.references)
    w_err = words.substitutions + words.deletions + words.insertions
    c_err = chars.substitutions + chars.deletions + chars.insertions
    return ScoreReport(
        wer=w_err / n_words if n_words else 0.0,
        cer=c_err / n_chars if n_chars else 0.0,
        sub=words.substitutions, dels=words.deletions, ins=words.insertions,
        num_ref_words=n_words, char_sub=chars.substitutions, char_dels=chars.deletions,
        char_ins=chars.insertions, num_ref_chars=n_chars, num_utts=len(ids),
        sentence_errors=sum(1 for x in utts if x.errors), utterances=utts,
        missing=missing, extra=extra,
    )


def _kaldi_lines(items: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{u} {t}\n" if t else f"{u}\n" for u, t in items)


def write_report(report: ScoreReport, out_dir: str | Path) -> None:
    """Write ``ref.txt``, ``hyp.txt`` (Kaldi ``utt_id text``), ``errors.txt`` and ``wer.txt``.

    ``hyp.txt`` holds only the hypotheses that exist (missing ones are absent, extra ones are
    not written either since they were not scored). ``errors.txt`` lists missing hypotheses
    first, then every utterance worst first (most word errors, then highest utterance WER,
    then id) with its alignment. ``wer.txt`` is :meth:`ScoreReport.summary`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    utts = report.utterances
    atomic_write_text(out / "ref.txt", _kaldi_lines((x.utt_id, x.ref) for x in utts))
    atomic_write_text(
        out / "hyp.txt", _kaldi_lines((x.utt_id, x.hyp) for x in utts if not x.missing)
    )

    def badness(x: UttScore) -> tuple[int, float, str]:
        return (-x.errors, -x.errors / max(x.num_ref_words, 1), x.utt_id)

    lines = [report.summary()]
    if report.missing:
        lines.append(f"Missing hypotheses ({len(report.missing)}), scored as deletions:\n")
        lines += [f"  {u}\n" for u in report.missing]
    lines.append("\n")
    for x in sorted(utts, key=badness):
        tag = " MISSING" if x.missing else ""
        lines.append(f"{x.utt_id}  #err={x.errors} sub={x.sub} del={x.dels} ins={x.ins} "
                     f"#ref={x.num_ref_words}{tag}\n{x.alignment_text()}\n\n")
    atomic_write_text(out / "errors.txt", "".join(lines))
    atomic_write_text(out / "wer.txt", report.summary())
