"""synth_en: a multi-speaker English read-speech corpus synthesised with Debian TTS engines.

Each voice is ``engine:name`` (``espeak:en-us+m1``, ``flite:kal16``, ``festival:ked_diphone``)
and acts as one speaker. Sentences come from ``sentences_{train,dev,test}.txt`` in a text
dir, or from one text file split deterministically. By default the task has a closed
vocabulary, like WSJ's 5k task (:mod:`casnat.data.corpora.text_filter`): only sentences of the
1000 most frequent train words, <= 12 words long; test sentences are new, their words are not.
``vocab_size=0`` gives the open-vocabulary corpus. Split by sentence and by voice: train and
dev use :data:`TRAIN_VOICES`; half of test uses :data:`TEST_ONLY_VOICES`, which no train or
dev utterance has (the cut's ``custom["unseen_voice"]`` marks them), half the train voices.
Every wav is written as 16 kHz 16-bit mono under ``out_dir/wavs/{split}/``; engines run in
parallel processes.
Install the engines with ``egs/synth_en/local/install_tts.sh``.

>>> prepare_synth_en("/work/shared/data/text", "data/manifests")  # doctest: +SKIP
{'train': PosixPath('data/manifests/cuts_train.jsonl.gz'), 'dev': ..., 'test': ...}
"""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment

from casnat.atomic import atomic_write_json
from casnat.data.corpora.text_filter import SelectionConfig, select_sentences
from casnat.data.features import resample
from casnat.errors import UserError

log = logging.getLogger(__name__)

# Five train voices, chosen to be intelligible and unlike each other (espeak's +variants of one
# voice sound nearly alike) and fast to synthesise (utt/s on this 2-core machine, 1 job, ~3.7 s
# utterances): espeak en-us+m1 / en-gb+f3 ~10-15, flite kal16 ~17, flite awb / slt ~4.5.
# festival (~1.2-1.5 utt/s) only in test, where it costs little.
TRAIN_VOICES = (
    "espeak:en-us+m1",
    "espeak:en-gb+f3",
    "flite:kal16",
    "flite:awb",
    "flite:slt",
)
TEST_ONLY_VOICES = ("espeak:en-gb-scotland+f4", "flite:rms", "festival:ked_diphone")
ENGINE_BINARIES = {"espeak": "espeak-ng", "flite": "flite", "festival": "text2wave"}
SAMPLE_RATE = 16000


def _command(voice: str, text_file: Path, out: Path, rate_wpm: int) -> list[str]:
    engine, name = voice.split(":", 1)
    if engine == "espeak":
        return ["espeak-ng", "-v", name, "-s", str(rate_wpm), "-f", str(text_file), "-w", str(out)]
    if engine == "flite":
        return ["flite", "-voice", name, "-f", str(text_file), "-o", str(out)]
    if engine == "festival":
        return ["text2wave", "-eval", f"(voice_{name})", str(text_file), "-o", str(out)]
    raise ValueError(
        f"unknown TTS engine '{engine}' in voice '{voice}' "
        f"(expected one of {', '.join(ENGINE_BINARIES)})"
    )


def synthesize(voice: str, text: str, out_path: str | Path, rate_wpm: int = 170) -> float:
    """Speak ``text`` with ``voice`` into ``out_path`` (16 kHz wav); returns its duration (s).

    Raises ``RuntimeError`` naming the voice when the engine fails or returns no audio.
    """
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as tmp:
        text_file, raw = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        text_file.write_text(text + "\n")
        proc = subprocess.run(
            _command(voice, text_file, raw, rate_wpm), capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0 or not raw.is_file() or raw.stat().st_size <= 44:
            raise RuntimeError(f"TTS voice {voice} failed on '{text[:40]}': {proc.stderr[-200:]}")
        audio, sr = sf.read(raw, dtype="float32", always_2d=True)
    audio = audio[:, 0]
    audio = resample(audio, sr, SAMPLE_RATE)  # lhotse's resampler, as everywhere in casnat
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak == 0.0:
        raise RuntimeError(f"TTS voice {voice} produced silence for '{text[:40]}'")
    audio = np.clip(audio * min(1.0, 0.9 / peak), -1.0, 1.0)
    sf.write(out_path, audio, SAMPLE_RATE, subtype="PCM_16")
    return audio.size / SAMPLE_RATE


def _job(args: tuple[str, str, str, int]) -> str | None:
    """Worker: synthesise one utterance; returns an error message instead of raising."""
    voice, text, out, rate = args
    try:
        synthesize(voice, text, out, rate)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        return str(e)
    return None


def _read_sentences(text_path: Path, seed: int) -> dict[str, list[str]]:
    if text_path.is_dir():
        out = {}
        for split in ("train", "dev", "test"):
            f = text_path / f"sentences_{split}.txt"
            if not f.is_file():
                raise FileNotFoundError(f"synth_en text not found: {f}")
            out[split] = [s.strip() for s in f.read_text().splitlines() if s.strip()]
        return out
    if not text_path.is_file():
        raise FileNotFoundError(f"synth_en text not found: {text_path}")
    lines = [s.strip() for s in text_path.read_text().splitlines() if s.strip()]
    random.Random(seed).shuffle(lines)
    n = max(1, len(lines) // 10)
    return {"test": lines[:n], "dev": lines[n : 2 * n], "train": lines[2 * n :]}


def check_engines(voices: tuple[str, ...] | list[str]) -> None:
    """Raise ``FileNotFoundError`` naming the first engine binary that is not installed."""
    for voice in voices:
        engine = voice.split(":", 1)[0]
        binary = ENGINE_BINARIES.get(engine)
        if binary is None:
            raise ValueError(f"unknown TTS engine '{engine}' in voice '{voice}'")
        if shutil.which(binary) is None:
            raise FileNotFoundError(
                f"TTS engine {binary} not installed (voice {voice}); "
                "run egs/synth_en/local/install_tts.sh"
            )


def _voice_for(
    split: str,
    i: int,
    j: int,
    train_voices: Sequence[str],
    unseen: Sequence[str],
    per_sentence: int,
) -> str:
    """Voice of copy ``j`` of sentence ``i``: train rotates ``per_sentence`` distinct voices per
    sentence; test gives every other sentence a held-out voice, the rest a train voice."""
    if split == "train":
        return train_voices[(i * per_sentence + j) % len(train_voices)]
    if unseen and i % 2 == 0:
        return unseen[(i // 2) % len(unseen)]
    return train_voices[(i // 2 if unseen else i) % len(train_voices)]


def prepare_synth_en(
    text_path: str | Path,
    out_dir: str | Path,
    num_train: int = 0,
    num_dev: int = 100,
    num_test: int = 200,
    train_voices: tuple[str, ...] | list[str] = TRAIN_VOICES,
    test_only_voices: tuple[str, ...] | list[str] = TEST_ONLY_VOICES,
    num_jobs: int = 2,
    seed: int = 0,
    vocab_size: int = 1000,
    max_words: int = 12,
    voices_per_sentence: int = 1,
) -> dict[str, Path]:
    """Synthesise the corpus and write ``out_dir/cuts_{train,dev,test}.jsonl.gz``.

    ``text_path``: a dir with ``sentences_{train,dev,test}.txt`` or one text file. Sentences
    are chosen by :func:`~casnat.data.corpora.text_filter.select_sentences`: ``vocab_size``
    most frequent train words (0: open vocabulary), at most ``max_words`` words (0: any),
    ``num_train`` train sentences (0: all that survive). Each train sentence is spoken by
    ``voices_per_sentence`` distinct train voices (a closed vocabulary leaves few sentences;
    several voices per sentence give the acoustic model speaker variety at no text cost; the
    recipe uses 2, the default 1 keeps ``num_train`` = utterances for callers like bench-train).
    Voices rotate over utterances, with a random espeak speaking rate (150-190 wpm). Writes
    ``out_dir/selection.json`` (vocabulary, sizes, held-out train sentences in dev/test).
    Utterances an engine fails on are skipped with a warning. Returns split -> manifest path.
    """
    text_path, out_dir = Path(text_path), Path(out_dir)
    if not 1 <= voices_per_sentence <= len(train_voices):
        raise ValueError(
            f"voices_per_sentence must be in 1..{len(train_voices)} "
            f"(the number of train voices), got {voices_per_sentence}"
        )
    sentences = _read_sentences(text_path, seed)
    check_engines(list(train_voices) + list(test_only_voices))
    cfg = SelectionConfig(
        vocab_size=vocab_size,
        max_words=max_words,
        num_train=num_train,
        num_dev=num_dev,
        num_test=num_test,
        seed=seed,
    )
    try:
        chosen_text = select_sentences(sentences, cfg)
    except UserError as e:
        raise UserError(f"{text_path}: {e}") from None
    rng = random.Random(seed)
    plan: dict[str, list[tuple[str, str, str, int]]] = {}
    for split in ("train", "dev", "test"):
        chosen = getattr(chosen_text, split)
        unseen = list(test_only_voices) if split == "test" else []
        copies = voices_per_sentence if split == "train" else 1
        wav_dir = out_dir / "wavs" / split
        wav_dir.mkdir(parents=True, exist_ok=True)
        plan[split] = []
        for i, text in enumerate(chosen):
            for j in range(copies):
                voice = _voice_for(split, i, j, train_voices, unseen, voices_per_sentence)
                vid = voice.replace(":", "-").replace("+", "-")
                out = wav_dir / f"synth_{split}_{i:05d}_{vid}.wav"
                plan[split].append((voice, text, str(out), rng.randint(150, 190)))
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out_dir / "selection.json",
        {
            "vocab_size": vocab_size,
            "max_words": max_words,
            "seed": seed,
            "voices_per_sentence": voices_per_sentence,
            "train_voices": list(train_voices),
            "test_only_voices": list(test_only_voices),
            "sentences": {s: len(getattr(chosen_text, s)) for s in ("train", "dev", "test")},
            "survivors_in_source": chosen_text.survivors,
            "held_out_train_sentences_in": chosen_text.topped_up,
            "vocab": sorted(chosen_text.vocab) if chosen_text.vocab is not None else None,
        },
    )
    log.info(
        "synth_en: sentences train/dev/test %d/%d/%d (vocab %s, max %s words; "
        "dev/test topped up from held-out train: %d/%d)",
        len(chosen_text.train),
        len(chosen_text.dev),
        len(chosen_text.test),
        vocab_size or "open",
        max_words or "any",
        len(chosen_text.topped_up["dev"]),
        len(chosen_text.topped_up["test"]),
    )
    jobs = [j for split in plan for j in plan[split]]
    if num_jobs > 1:
        with ProcessPoolExecutor(num_jobs) as pool:
            errors = list(pool.map(_job, jobs, chunksize=8))
    else:
        errors = [_job(j) for j in jobs]
    failed = {j[2] for j, e in zip(jobs, errors, strict=True) if e}
    for e in filter(None, errors):
        log.warning("synth_en: skipping utterance: %s", e)
    paths = {}
    for split, items in plan.items():
        cuts = []
        for voice, text, out, _ in items:
            if out in failed:
                continue
            cut_id = Path(out).stem
            rec = Recording.from_file(out, recording_id=cut_id)
            sup = SupervisionSegment(
                id=cut_id,
                recording_id=cut_id,
                start=0.0,
                duration=rec.duration,
                channel=0,
                text=text,
                speaker=voice,
                language="English",
            )
            cut = rec.to_cut()
            cut.supervisions = [sup]
            cut.custom = {"unseen_voice": voice not in train_voices}
            cuts.append(cut)
        paths[split] = out_dir / f"cuts_{split}.jsonl.gz"
        CutSet.from_cuts(cuts).to_file(paths[split])
        log.info(
            "synth_en: %s: %d cuts, %.1f min", split, len(cuts), sum(c.duration for c in cuts) / 60
        )
    return paths
