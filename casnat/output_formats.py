"""Transcript writers: ``text``, ``jsonl``, ``ctm``, ``srt``, ``vtt``, ``tsv``.

Every input gives one :class:`TranscriptRecord` (id, source, duration, text, words with times
and confidence, error). :func:`write_outputs` writes, for each requested format, the combined
file ``DIR/transcripts.<ext>``, and for the subtitle formats also ``DIR/<id>.srt|vtt`` per input.
Every file is written atomically (:mod:`casnat.atomic`): a reader never sees half a file.

Formats (one line per input unless said otherwise):

* ``text``: ``<id> <text>`` (Kaldi hypothesis style, so ``compute-wer`` can read it);
* ``jsonl``: ``{"id", "source", "duration", "text", "words": [{word, start, end, confidence}],
  "error"}``, ``error`` null or the reason the input failed;
* ``tsv``: a header, then ``id, source, duration, text, error`` (tabs and newlines in fields
  replaced by spaces);
* ``ctm``: one line per word, ``<id> 1 <start> <duration> <word> <confidence>`` (NIST CTM);
* ``srt`` / ``vtt``: subtitle cues of at most ``max_cue_s`` seconds and ``max_lines`` lines of
  ``max_chars`` characters, built from the word timings (``HH:MM:SS,mmm`` / ``HH:MM:SS.mmm``).

>>> from casnat.words import Word
>>> r = TranscriptRecord("a", "a.wav", 2.0, "one two",
...                      [Word("one", 0.1, 0.4, 0.9), Word("two", 0.6, 0.9, 0.8)])
>>> print(format_ctm([r]), end="")
a 1 0.100 0.300 one 0.9000
a 1 0.600 0.300 two 0.8000
>>> print(format_srt(r), end="")
1
00:00:00,100 --> 00:00:00,900
one two
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from casnat.atomic import atomic_write_text
from casnat.words import Word

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("text", "jsonl", "ctm", "srt", "vtt", "tsv")
SUBTITLE_FORMATS: tuple[str, ...] = ("srt", "vtt")


@dataclass(frozen=True)
class TranscriptRecord:
    """One input's result, as every writer sees it."""

    id: str
    source: str
    duration: float | None
    text: str
    words: list[Word] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        """The JSONL object: exactly ``id, source, duration, text, words, error``."""
        return {
            "id": self.id,
            "source": self.source,
            "duration": None if self.duration is None else round(self.duration, 3),
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "error": self.error,
        }


@dataclass(frozen=True)
class CueOptions:
    """Subtitle cue limits (the usual broadcast guidance: ~7 s, 2 lines of ~42 characters)."""

    max_cue_s: float = 7.0
    max_chars: int = 42
    max_lines: int = 2
    max_gap_s: float = 1.5  # a longer silence between words starts a new cue


# --- ids ------------------------------------------------------------------------------------


def unique_ids(sources: Sequence[str | Path]) -> list[str]:
    """An id per input: the file stem, or, for inputs sharing a stem, the path relative to their
    common directory without extension (then with it, then with a ``-N`` suffix), so that ids
    and per-input output files never collide.

    >>> unique_ids(["x/a.wav", "x/b.wav"])
    ['a', 'b']
    >>> unique_ids(["d/s1/a.wav", "d/s2/a.wav", "d/b.flac"])
    ['s1/a', 's2/a', 'b']
    >>> unique_ids(["d/a.wav", "d/a.flac"])
    ['a.wav', 'a.flac']
    >>> unique_ids(["d/a.wav", "d/a.wav"])
    ['a-1', 'a-2']
    """
    paths = [PurePath(str(s)) for s in sources]
    ids = [p.stem for p in paths]
    clash = [k for k, n in enumerate(ids) if Counter(ids)[n] > 1]
    if clash:
        common = os.path.commonpath([str(paths[k].parent) for k in clash]) or "."
        rel = {k: PurePath(os.path.relpath(str(paths[k]), common)) for k in clash}
        for k in clash:
            ids[k] = rel[k].with_suffix("").as_posix()
        counts = Counter(ids)
        with_ext = {k: rel[k].as_posix() for k in clash if counts[ids[k]] > 1}
        ext_counts = Counter(with_ext.values())
        for k, i in with_ext.items():
            if ext_counts[i] == 1:  # the extension tells them apart; the same file twice: -N
                ids[k] = i
    counts, seen, out = Counter(ids), Counter(), []
    for i in ids:
        seen[i] += 1
        out.append(i if counts[i] == 1 else f"{i}-{seen[i]}")
    return out


# --- formats --------------------------------------------------------------------------------


def _clean(s: str) -> str:
    return " ".join(str(s).split())


def format_text(records: Sequence[TranscriptRecord]) -> str:
    return "".join(f"{r.id} {r.text}".rstrip() + "\n" for r in records)


def format_jsonl(records: Sequence[TranscriptRecord]) -> str:
    return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records)


def format_tsv(records: Sequence[TranscriptRecord]) -> str:
    lines = ["id\tsource\tduration\ttext\terror"]
    for r in records:
        dur = "" if r.duration is None else f"{r.duration:.3f}"
        lines.append(
            "\t".join([_clean(r.id), _clean(r.source), dur, _clean(r.text), _clean(r.error or "")])
        )
    return "\n".join(lines) + "\n"


def format_ctm(records: Sequence[TranscriptRecord]) -> str:
    lines = []
    for r in records:
        untimed = 0
        for w in r.words:
            if w.start is None or w.end is None:
                untimed += 1
                continue
            conf = 1.0 if w.confidence is None else w.confidence
            lines.append(
                f"{r.id} 1 {w.start:.3f} {max(w.end - w.start, 0.0):.3f} {w.word} {conf:.4f}"
            )
        if untimed:
            log.warning("%s: %d words without timing left out of the CTM", r.id, untimed)
    return "".join(ln + "\n" for ln in lines)


def _timestamp(t: float, sep: str) -> str:
    ms = max(0, int(round(t * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _wrap(words: Sequence[str], max_chars: int) -> list[str]:
    lines: list[str] = []
    for w in words:
        if lines and len(lines[-1]) + 1 + len(w) <= max_chars:
            lines[-1] += " " + w
        else:
            lines.append(w)
    return lines


def subtitle_cues(
    words: Sequence[Word], opts: CueOptions = CueOptions()
) -> list[tuple[float, float, list[str]]]:
    """``(start, end, lines)`` cues from timed words (words without timing are skipped).

    A cue ends before the word that would make it longer than ``max_cue_s``, wrap to more than
    ``max_lines`` lines of ``max_chars``, or follow a silence longer than ``max_gap_s``.

    >>> ws = [Word(f"w{i}", i * 1.0, i * 1.0 + 0.5, 1.0) for i in range(10)]
    >>> [(s, e, len(ls)) for s, e, ls in subtitle_cues(ws)]
    [(0.0, 6.5, 1), (7.0, 9.5, 1)]
    """
    cues: list[tuple[float, float, list[str]]] = []
    cur: list[Word] = []

    def close() -> None:
        if cur:
            cues.append((cur[0].start, cur[-1].end, _wrap([w.word for w in cur], opts.max_chars)))

    for w in words:
        if w.start is None or w.end is None:
            continue
        if cur:
            too_long = w.end - cur[0].start > opts.max_cue_s
            too_wide = len(_wrap([x.word for x in cur] + [w.word], opts.max_chars)) > opts.max_lines
            gap = w.start - cur[-1].end > opts.max_gap_s
            if too_long or too_wide or gap:
                close()
                cur = []
        cur.append(w)
    close()
    return cues


def format_srt(record: TranscriptRecord, opts: CueOptions = CueOptions(), first: int = 1) -> str:
    """SubRip cues of one input, numbered from ``first``."""
    out = []
    for n, (s, e, lines) in enumerate(subtitle_cues(record.words, opts), start=first):
        out.append(f"{n}\n{_timestamp(s, ',')} --> {_timestamp(e, ',')}\n" + "\n".join(lines))
    return "".join(c + "\n\n" for c in out).rstrip("\n") + "\n" if out else ""


def format_vtt(
    record: TranscriptRecord, opts: CueOptions = CueOptions(), header: bool = True
) -> str:
    """WebVTT cues of one input (with the ``WEBVTT`` header unless ``header`` is False)."""
    parts = ["WEBVTT\n"] if header else []
    for s, e, lines in subtitle_cues(record.words, opts):
        parts.append(f"{_timestamp(s, '.')} --> {_timestamp(e, '.')}\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def _combined_srt(records: Sequence[TranscriptRecord], opts: CueOptions) -> str:
    chunks, n = [], 1
    for r in records:
        text = format_srt(r, opts, first=n)
        n += len(subtitle_cues(r.words, opts))
        if text:
            chunks.append(text)
    return "\n".join(chunks)


def _combined_vtt(records: Sequence[TranscriptRecord], opts: CueOptions) -> str:
    parts = ["WEBVTT\n"]
    for r in records:
        parts.append(f"NOTE {_clean(r.id)}\n")  # VTT comment block naming the input
        body = format_vtt(r, opts, header=False)
        if body:
            parts.append(body)
    return "\n".join(parts)


_COMBINED: dict[str, Callable[[Sequence[TranscriptRecord], CueOptions], str]] = {
    "text": lambda rs, _: format_text(rs),
    "jsonl": lambda rs, _: format_jsonl(rs),
    "tsv": lambda rs, _: format_tsv(rs),
    "ctm": lambda rs, _: format_ctm(rs),
    "srt": _combined_srt,
    "vtt": _combined_vtt,
}


def format_combined(
    fmt: str, records: Sequence[TranscriptRecord], cue_opts: CueOptions = CueOptions()
) -> str:
    """All ``records`` in one ``fmt`` document (what ``transcripts.<fmt>`` holds)."""
    return _COMBINED[check_formats([fmt])[0]](records, cue_opts)


def check_formats(formats: Sequence[str]) -> list[str]:
    """``formats`` without repeats, in order; ValueError naming an unknown one."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(
            f"unknown output format(s) {', '.join(bad)} (choose from {', '.join(FORMATS)})"
        )
    return list(dict.fromkeys(formats))


def write_outputs(
    records: Sequence[TranscriptRecord],
    out_dir: str | Path,
    formats: Sequence[str],
    cue_opts: CueOptions = CueOptions(),
) -> list[Path]:
    """Write ``DIR/transcripts.<ext>`` per format, and ``DIR/<id>.srt|vtt`` per input for the
    subtitle formats; returns the paths written. Ids must be unique (:func:`unique_ids`)."""
    formats = check_formats(formats)
    dupes = [i for i, n in Counter(r.id for r in records).items() if n > 1]
    if dupes:
        raise ValueError(f"duplicate transcript ids {dupes[:5]}: make them with unique_ids()")
    out_dir = Path(out_dir)
    written = []
    for fmt in formats:
        path = out_dir / f"transcripts.{fmt}"
        atomic_write_text(path, _COMBINED[fmt](records, cue_opts))
        written.append(path)
        if fmt in SUBTITLE_FORMATS:
            one = format_srt if fmt == "srt" else format_vtt
            for r in records:
                p = out_dir / f"{r.id}.{fmt}"
                atomic_write_text(p, one(r, cue_opts))
                written.append(p)
    log.info("wrote %d files to %s", len(written), out_dir)
    return written


__all__ = [
    "FORMATS",
    "CueOptions",
    "TranscriptRecord",
    "check_formats",
    "format_combined",
    "format_ctm",
    "format_jsonl",
    "format_srt",
    "format_text",
    "format_tsv",
    "format_vtt",
    "subtitle_cues",
    "unique_ids",
    "write_outputs",
]
