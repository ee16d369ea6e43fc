"""Import a Kaldi-style data directory (wav.scp, text, optional segments, utt2spk) as cuts.

lhotse's ``load_kaldi_data_dir`` reads the directory (it runs no Kaldi binary for plain wav
paths); this module turns its recordings and supervisions into a CutSet with one cut per
utterance (per segment when ``segments`` exists, else per recording), resampled to 16 kHz.

>>> cuts = load_kaldi_dir("data/train")                  # doctest: +SKIP
>>> write_kaldi_dir_cuts("data/train", "data/manifests/cuts_train.jsonl.gz")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from lhotse import CutSet, SupervisionSegment, SupervisionSet
from lhotse.kaldi import load_kaldi_data_dir


def load_kaldi_dir(data_dir: str | Path, sample_rate: int = 16000) -> CutSet:
    """Cuts of a Kaldi data dir; ``text`` becomes the supervision text.

    Without ``segments`` each recording is one utterance (its id = the recording id).
    Raises ``FileNotFoundError`` naming ``wav.scp`` or ``text`` when missing.
    """
    data_dir = Path(data_dir)
    for name in ("wav.scp", "text"):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(f"Kaldi data dir {data_dir}: missing {data_dir / name}")
    # The native rate is read from the files; lhotse asks for one only for piped commands.
    recordings, supervisions, _ = load_kaldi_data_dir(data_dir, sampling_rate=sample_rate)
    if supervisions is None:  # no segments: lhotse makes no supervisions, build them
        texts = dict(_read_kv(data_dir / "text"))
        spk = dict(_read_kv(data_dir / "utt2spk")) if (data_dir / "utt2spk").is_file() else {}
        supervisions = SupervisionSet.from_segments(
            SupervisionSegment(
                id=r.id, recording_id=r.id, start=0.0, duration=r.duration, channel=0,
                text=texts.get(r.id), speaker=spk.get(r.id),
            )
            for r in recordings
            if r.id in texts
        )
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    return cuts.resample(sample_rate).to_eager()


def write_kaldi_dir_cuts(data_dir: str | Path, out_path: str | Path,
                         sample_rate: int = 16000) -> Path:
    """:func:`load_kaldi_dir` written to ``out_path`` (jsonl.gz); returns ``out_path``."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    load_kaldi_dir(data_dir, sample_rate).to_file(out_path)
    return out_path


def _read_kv(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if parts:
            pairs.append((parts[0], parts[1] if len(parts) > 1 else ""))
    return pairs
