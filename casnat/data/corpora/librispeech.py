"""LibriSpeech -> CutSet manifests, through lhotse's own LibriSpeech recipe.

lhotse reads the corpus (``{part}/{spk}/{chapter}/{spk}-{chapter}-{utt}.flac`` and
``{spk}-{chapter}.trans.txt``) into recordings and supervisions and caches them as
``out_dir/librispeech_{recordings,supervisions}_{part}.jsonl.gz``, so a re-run (or a later
960h run after a 100h one) reads the parts it has already done. This module turns each part
into cuts trimmed to the supervisions, normalizes the transcripts the way casnat's other
corpora are written (lower case, single spaces; LibriSpeech keeps its apostrophes) and writes:

- ``cuts_{part}.jsonl.gz`` per part, the part name with ``_`` for ``-``
  (``cuts_train_clean_100``, ``cuts_dev_clean``, ``cuts_test_other``, ...);
- ``cuts_train.jsonl.gz`` = train-clean-100 (the 100h setup);
- ``cuts_train_960.jsonl.gz`` = train-clean-100 + train-clean-360 + train-other-500 (960h),
  written only when all three are present;
- ``cuts_dev.jsonl.gz`` = dev-clean + dev-other (those present), for the validation loss.

>>> paths = prepare_librispeech("/data/LibriSpeech", "data/manifests")   # doctest: +SKIP
>>> sorted(paths)                                                         # doctest: +SKIP
['dev', 'dev_clean', 'dev_other', 'test_clean', 'test_other', 'train', 'train_clean_100']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lhotse import CutSet

log = logging.getLogger(__name__)

PARTS = (
    "train-clean-100", "train-clean-360", "train-other-500",
    "dev-clean", "dev-other", "test-clean", "test-other",
)
TRAIN_960 = ("train-clean-100", "train-clean-360", "train-other-500")
DEV = ("dev-clean", "dev-other")


def normalize_text(text: str) -> str:
    """Lower case with single spaces: ``"HELLO  WORLD'S"`` -> ``"hello world's"``."""
    return " ".join(text.lower().split())


def split_name(part: str) -> str:
    """File-name form of a LibriSpeech part: ``train-clean-100`` -> ``train_clean_100``."""
    return part.replace("-", "_")


def _resolve_corpus(corpus_dir: Path) -> Path:
    """The ``LibriSpeech/`` dir: ``corpus_dir`` itself or a ``LibriSpeech/`` inside it."""
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"LibriSpeech corpus not found: {corpus_dir}")
    if not any((corpus_dir / p).is_dir() for p in PARTS) and (corpus_dir / "LibriSpeech").is_dir():
        return corpus_dir / "LibriSpeech"
    return corpus_dir


def _resolve_parts(corpus_dir: Path, parts: str | Sequence[str]) -> list[str]:
    """Requested parts in :data:`PARTS` order; ``"auto"`` = every part present."""
    if isinstance(parts, str):
        if parts == "auto":
            found = [p for p in PARTS if (corpus_dir / p).is_dir()]
            if not found:
                raise FileNotFoundError(
                    f"no LibriSpeech parts in {corpus_dir} (expected one of {', '.join(PARTS)})")
            return found
        parts = [p.strip() for p in parts.split(",") if p.strip()]
    wanted = [p.replace("_", "-") for p in parts]  # accept train_clean_100 as well
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown LibriSpeech part '{unknown[0]}' "
                         f"(expected one of {', '.join(PARTS)})")
    for p in wanted:
        if not (corpus_dir / p).is_dir():
            raise FileNotFoundError(f"LibriSpeech part not found: {corpus_dir / p}")
    return [p for p in PARTS if p in wanted]


def _combine(paths: list[Path], out_path: Path) -> Path:
    """Concatenate cut manifests into ``out_path``, streaming (960h has ~281k cuts)."""
    from lhotse import combine

    combine([CutSet.from_jsonl_lazy(p) for p in paths]).to_file(out_path)
    return out_path


def prepare_librispeech(
    corpus_dir: str | Path,
    out_dir: str | Path,
    parts: str | Sequence[str] = "auto",
    num_jobs: int = 2,
) -> dict[str, Path]:
    """Write the LibriSpeech cut manifests into ``out_dir``; returns split -> manifest path.

    ``corpus_dir`` is the ``LibriSpeech/`` directory (or the directory holding it);
    ``parts`` is ``"auto"`` (every part present), a comma-separated string or a list of part
    names. ``num_jobs`` threads read the audio headers. Raises ``FileNotFoundError`` naming the
    corpus dir or the missing part. See the module docstring for the files written.
    """
    from lhotse.recipes.librispeech import prepare_librispeech as lhotse_prepare

    corpus_dir, out_dir = _resolve_corpus(Path(corpus_dir)), Path(out_dir)
    wanted = _resolve_parts(corpus_dir, parts)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = lhotse_prepare(corpus_dir, dataset_parts=wanted, output_dir=out_dir,
                               normalize_text="none", num_jobs=max(1, num_jobs))
    paths: dict[str, Path] = {}
    for part in wanted:
        m = manifests.get(part)
        if m is None or len(m["recordings"]) == 0:
            log.warning("librispeech: %s has no readable utterances, skipped", corpus_dir / part)
            continue
        sups = m["supervisions"].transform_text(normalize_text)
        cuts = CutSet.from_manifests(recordings=m["recordings"], supervisions=sups)
        cuts = cuts.trim_to_supervisions(keep_overlapping=False).to_eager()
        name = split_name(part)
        paths[name] = out_dir / f"cuts_{name}.jsonl.gz"
        cuts.to_file(paths[name])
        log.info("librispeech: %s: %d cuts, %.1f h", name, len(cuts),
                 sum(c.duration for c in cuts) / 3600)
    # Combined sets also take parts prepared by an earlier run (100h first, the rest later).
    done = {split_name(p): out_dir / f"cuts_{split_name(p)}.jsonl.gz" for p in PARTS}
    done = {k: v for k, v in done.items() if k in paths or v.is_file()}
    if "train_clean_100" in done:
        paths["train"] = _combine([done["train_clean_100"]], out_dir / "cuts_train.jsonl.gz")
    if all(split_name(p) in done for p in TRAIN_960):
        paths["train_960"] = _combine([done[split_name(p)] for p in TRAIN_960],
                                      out_dir / "cuts_train_960.jsonl.gz")
    elif any(split_name(p) in paths for p in TRAIN_960):
        log.info("librispeech: not all of %s prepared; no cuts_train_960", ", ".join(TRAIN_960))
    dev = [done[split_name(p)] for p in DEV if split_name(p) in done]
    if dev:
        paths["dev"] = _combine(dev, out_dir / "cuts_dev.jsonl.gz")
    return paths
