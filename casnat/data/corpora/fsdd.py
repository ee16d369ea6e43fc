"""Free Spoken Digit Dataset -> connected-digit and isolated-digit CutSet manifests.

FSDD holds isolated digits ``{digit}_{speaker}_{index}.wav`` (8 kHz). For a multi-token task
we join clips of one speaker into connected-digit utterances (1-7 digits, random pauses of
0.05-0.4 s, 0.1-0.3 s of silence at both ends) and write them as 8 kHz FLAC files; the
manifests resample them to 16 kHz on load. Splits:

- ``test``: connected digits built only from the official test clips (index 0-4);
- ``test_isolated``: the 300 official test clips as they are;
- ``train`` / ``dev``: connected digits from clips with index 5-49. About ``dev_fraction`` of
  those clips (per speaker and digit, chosen with ``seed``) are held out for dev, so no clip
  is used in both;
- ``dev_isolated``: the held-out dev clips as they are: the isolated condition for model
  selection (e.g. how many checkpoints to average), so test_isolated is never tuned on.

Silence is low-level Gaussian noise (not digital zeros, whose log-mel is -inf-like).

>>> paths = prepare_fsdd("/work/shared/data/fsdd", "data/manifests")   # doctest: +SKIP
>>> sorted(paths)                                                       # doctest: +SKIP
['dev', 'dev_isolated', 'test', 'test_isolated', 'train']
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import Cut

log = logging.getLogger(__name__)

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_INDICES = range(0, 5)
NOISE_STD = 3e-4  # pause / padding level (about -70 dBFS)


# Where a user without the corpus gets it (the error of a missing corpus says so).
GET_FSDD = ("get it with `git clone https://github.com/Jakobovski/free-spoken-digit-dataset` "
            "(the public Free Spoken Digit Dataset) and pass that directory")


def _scan(recordings_dir: Path) -> dict[str, list[tuple[int, int, Path]]]:
    """speaker -> [(digit, index, path)] of every clip in ``recordings_dir``."""
    clips: dict[str, list[tuple[int, int, Path]]] = defaultdict(list)
    for path in sorted(recordings_dir.glob("*.wav")):
        parts = path.stem.split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            log.warning("fsdd: ignoring %s (expected {digit}_{speaker}_{index}.wav)", path)
            continue
        clips[parts[1]].append((int(parts[0]), int(parts[2]), path))
    return clips


def _cut(cut_id: str, path: Path, text: str, speaker: str, sample_rate: int,
         clips: list[str]) -> Cut:
    """A 16 kHz cut of ``path``; ``custom["source_clips"]`` names the FSDD clips it holds."""
    rec = Recording.from_file(path, recording_id=cut_id)
    sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=rec.duration,
                             channel=0, text=text, speaker=speaker, language="English")
    cut = rec.to_cut()
    cut.supervisions = [sup]
    cut.custom = {"source_clips": clips}
    return cut.resample(sample_rate)


def _build_connected(
    name: str,
    pool: dict[str, list[tuple[int, int, Path]]],
    num_utts: int,
    max_digits: int,
    rng: random.Random,
    wav_dir: Path,
    sample_rate: int,
) -> CutSet:
    """``num_utts`` connected-digit utterances, each from one speaker's clips in ``pool``."""
    wav_dir.mkdir(parents=True, exist_ok=True)
    speakers = sorted(s for s in pool if pool[s])
    noise = np.random.default_rng(rng.randrange(2**31))
    cuts = []
    for u in range(num_utts):
        spk = speakers[u % len(speakers)]
        chosen = [rng.choice(pool[spk]) for _ in range(rng.randint(1, max_digits))]
        pieces, sr = [], None
        # Edge padding from none to 0.3 s: the isolated test clips are cut tight to the speech,
        # so training must also see utterances that start and end without silence.
        pad = int(rng.uniform(0.0, 0.3) * 8000)
        for j, (_, _, path) in enumerate(chosen):
            x, sr = sf.read(path, dtype="float32")
            if j > 0:
                pieces.append(int(rng.uniform(0.05, 0.4) * sr))
            pieces.append(x)
        sr = sr or 8000
        pieces = [pad, *pieces, int(rng.uniform(0.0, 0.3) * sr)]
        audio = np.concatenate([
            p if isinstance(p, np.ndarray) else NOISE_STD * noise.standard_normal(p)
            for p in pieces
        ]).astype(np.float32)
        digits = "".join(str(d) for d, _, _ in chosen)
        cut_id = f"fsdd_{name}_{u:05d}_{spk}_{digits}"
        path = wav_dir / f"{cut_id}.flac"
        sf.write(path, audio, sr)
        text = " ".join(WORDS[d] for d, _, _ in chosen)
        cuts.append(_cut(cut_id, path, text, spk, sample_rate, [p.name for _, _, p in chosen]))
    return CutSet.from_cuts(cuts)


def _isolated(pool: dict[str, list], sample_rate: int) -> CutSet:
    """The pool's clips as they are, one digit per cut."""
    return CutSet.from_cuts(
        _cut(f"fsdd_iso_{p.stem}", p, WORDS[d], spk, sample_rate, [p.name])
        for spk, items in sorted(pool.items())
        for d, _, p in sorted(items, key=lambda t: t[2].name)
    )


def prepare_fsdd(
    corpus_dir: str | Path,
    out_dir: str | Path,
    num_train: int = 3000,
    num_dev: int = 300,
    num_test: int = 300,
    max_digits: int = 7,
    dev_fraction: float = 0.1,
    speakers: list[str] | None = None,
    seed: int = 0,
    sample_rate: int = 16000,
) -> dict[str, Path]:
    """Write ``out_dir/cuts_{split}.jsonl.gz`` for train, dev, dev_isolated, test, test_isolated.

    ``corpus_dir`` is the FSDD root (with ``recordings/``) or the recordings dir itself.
    ``speakers`` restricts the corpus (e.g. two speakers for a quick test). Deterministic in
    ``seed``. Returns split -> manifest path. Audio is written to ``out_dir/wavs/{split}/``.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    rec_dir = corpus_dir / "recordings" if (corpus_dir / "recordings").is_dir() else corpus_dir
    if not rec_dir.is_dir():
        raise FileNotFoundError(
            f"FSDD corpus not found: {corpus_dir} (expected recordings/); {GET_FSDD}"
        )
    clips = _scan(rec_dir)
    if speakers is not None:
        clips = {s: clips[s] for s in speakers if s in clips}
    if not clips:
        raise FileNotFoundError(f"FSDD corpus not found: no {{digit}}_{{speaker}}_{{index}}.wav "
                                f"clips in {rec_dir}; {GET_FSDD}")
    rng = random.Random(seed)
    train_pool, dev_pool, test_pool = defaultdict(list), defaultdict(list), defaultdict(list)
    for spk, items in sorted(clips.items()):
        by_digit: dict[int, list] = defaultdict(list)
        for item in items:
            if item[1] in TEST_INDICES:
                test_pool[spk].append(item)
            else:
                by_digit[item[0]].append(item)
        for _digit, group in sorted(by_digit.items()):
            group = sorted(group, key=lambda t: t[1])
            rng.shuffle(group)
            n_dev = max(1, round(dev_fraction * len(group))) if len(group) > 1 else 0
            dev_pool[spk] += group[:n_dev]
            train_pool[spk] += group[n_dev:]
    out_dir.mkdir(parents=True, exist_ok=True)
    wavs = out_dir / "wavs"
    splits = {
        "train": _build_connected("train", train_pool, num_train, max_digits,
                                  random.Random(seed + 1), wavs / "train", sample_rate),
        "dev": _build_connected("dev", dev_pool, num_dev, max_digits, random.Random(seed + 2),
                                wavs / "dev", sample_rate),
        "test": _build_connected("test", test_pool, num_test, max_digits,
                                 random.Random(seed + 3), wavs / "test", sample_rate),
        "test_isolated": _isolated(test_pool, sample_rate),
        "dev_isolated": _isolated(dev_pool, sample_rate),
    }
    paths = {}
    for name, cuts in splits.items():
        paths[name] = out_dir / f"cuts_{name}.jsonl.gz"
        cuts.to_file(paths[name])
        log.info("fsdd: %s: %d cuts, %.1f min", name, len(cuts),
                 sum(c.duration for c in cuts) / 60)
    return paths
