"""Check a lhotse cuts manifest line by line before a long job reads it.

Why: lhotse reads manifests lazily, so a malformed line, a cut without a recording or a
supervision that belongs to another recording surfaces as a traceback deep inside the data loader
(``JSONDecodeError``, ``AttributeError: No such attribute: sampling_rate``), or not at all: a
supervision pointing elsewhere is decoded and scored against the wrong audio. Training and
``casnat decode`` call :func:`check_cuts_manifest` first and stop with one line naming the file,
the line and the problem. Audio is not opened here: unreadable audio is a per-cut fault the
loaders skip and report (see ``casnat.data.features.load_audio_checked``).

>>> check_cuts_manifest("data/fbank/cuts_dev.jsonl.gz")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from lhotse import CutSet

from casnat.errors import UserError


class ManifestError(UserError, ValueError):
    """A cuts manifest line is malformed or inconsistent; the message names file and line."""


def check_cuts_manifest(path: str | Path) -> int:
    """Raise :class:`ManifestError` at the first bad line of ``path``; returns the number of
    cuts (see :func:`read_cuts_checked`)."""
    return len(read_cuts_checked(path))


def read_cuts_checked(path: str | Path, lazy: bool = False) -> CutSet:
    """The cuts of ``path`` (``.jsonl`` or ``.jsonl.gz``), raising :class:`ManifestError` at the
    first bad line. Each line is parsed once, so the check costs only lhotse's per-cut
    validation on top of reading the manifest.

    ``lazy=False`` returns the cuts read (in memory: decoding's test sets). ``lazy=True`` keeps
    none of them (only the ids, for the duplicate check) and returns lhotse's lazy reader of the
    file, so a training corpus larger than memory is checked in one streaming pass and then
    read as the sampler asks (memory does not grow with the corpus).

    Checks: valid JSON, a lhotse cut, lhotse's own consistency checks (``lhotse.qa.validate``
    without reading data: supervisions on the cut's recording, positive duration, a recording or
    features), supervisions inside their cut (within :data:`SUPERVISION_TOLERANCE`), unique cut
    ids."""
    from lhotse.qa import validate
    from lhotse.serialization import deserialize_item

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"cuts manifest not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    seen: dict[str, int] = {}
    cuts = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ManifestError(
                        f"{where}: not valid JSON ({e.msg}, column {e.colno})"
                    ) from None
                if not isinstance(data, dict):
                    raise ManifestError(f"{where}: expected a JSON object (a lhotse cut)")
                if data.get("type", "MonoCut") == "MonoCut" and not (
                    data.get("recording") or data.get("features")
                ):
                    raise ManifestError(
                        f"{where}: cut {data.get('id', '?')} has neither a recording nor features"
                    )
                try:
                    cut = deserialize_item(data)
                    # A zero-length cut (an empty audio file) is a fault of that cut's audio,
                    # reported per cut by the loaders; it must not reject the whole manifest.
                    if cut.duration > 0:
                        validate(cut, read_data=False)
                    _check_supervisions(cut)
                except ManifestError as e:
                    raise ManifestError(f"{where}: {e}") from None
                except Exception as e:  # noqa: BLE001 - lhotse asserts / raises many types
                    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                    raise ManifestError(
                        f"{where}: not a valid lhotse cut ({type(e).__name__}: {reason})"
                    ) from None
                if cut.id in seen:
                    raise ManifestError(
                        f"{where}: duplicate cut id {cut.id} (first on line {seen[cut.id]})"
                    )
                seen[cut.id] = lineno
                if not lazy:
                    cuts.append(cut)
    except (OSError, EOFError, UnicodeDecodeError) as e:  # a truncated .gz, binary junk
        raise ManifestError(f"{path}: cannot read ({e})") from None
    return CutSet.from_jsonl_lazy(path) if lazy else CutSet.from_cuts(cuts)


#: How far (seconds) a supervision may run past its cut's end before it counts as misplaced.
SUPERVISION_TOLERANCE = 0.1


def _check_supervisions(cut) -> None:
    """Supervisions must lie inside their cut: a text whose span runs far past the audio is
    almost always a manifest built from mismatched segment files, and would be trained or scored
    against audio that does not contain it. lhotse accepts it, so it is checked here."""
    for s in getattr(cut, "supervisions", []):
        if s.start < -SUPERVISION_TOLERANCE or s.end > cut.duration + SUPERVISION_TOLERANCE:
            raise ManifestError(
                f"cut {cut.id}: supervision {s.id} spans {s.start:.2f}-{s.end:.2f} s, outside "
                f"the cut's 0.00-{cut.duration:.2f} s"
            )
