"""Audio of any length in bounded memory: split at pauses, decode segments in batches, stitch.

Full-length self-attention makes memory and time quadratic in the recording's length, so a long
recording is never encoded whole. Instead:

1. **Stream** the audio in blocks (``soundfile.SoundFile.read(frames)`` for a file, slices of an
   in-memory array otherwise); multi-channel audio is downmixed to mono by averaging channels.
2. **Find pauses**: every encoder frame gets a silence score, chunk by chunk (``vad_chunk_s``
   with ``vad_context_s`` of context each side, discarded). ``vad="auto"`` (the default) uses
   frame energy in a chunk whose loudest frame is ``auto_snr_db`` over its noise floor and the
   model's own CTC P(blank) otherwise: energy finds pauses that a weak model's blank posteriors
   miss, and the CTC holds in noise where energy cuts inside words (see :func:`make_silence`).
   A pause is a run of at least ``min_pause_s`` of silent frames.
3. **Cut** the stream into segments of at most ``max_segment_s``: at the midpoint of the first
   pause that is a sentence break (``sentence_pause_s`` long) or lies at least
   ``min_segment_s`` in (segments near the training utterances' length decode best). A segment
   keeps ``pause_keep_s`` of each pause; the rest of a pause is a silent segment, not decoded.
   With no pause in reach (continuous speech), the cut goes at the most blank-like frame of the
   segment's second half: CTC emits a token on a spike of non-blank frames, so a frame where
   blank dominates lies between tokens, and a cut there loses and duplicates nothing without
   needing overlapping windows and a merge.
4. **Decode** segments in batches (sorted by length, at most ``batch_seconds`` of audio each)
   with :meth:`Recognizer.transcribe_features`, skipping segments the CTC pass found entirely
   blank (greedy CTC would output nothing there).
   Searches without token timing (AT beam) get it from the CTC forced alignment of their
   output (:func:`forced_timings`).
5. **Stitch**: every token's encoder frames are offset by its segment's start; words are built
   per stretch of segments joined by hard cuts (a pause cut is always a word boundary).

Only one VAD chunk and one batch of segments (with their features) are in memory at a time, so
peak memory does not depend on the recording's length.

>>> rec = load_model("egs/fsdd/exp/quick")                         # doctest: +SKIP
>>> res = transcribe_long(rec, "meeting.flac", opts=DecodeOptions(mode="cassnat"))  # doctest: +SKIP
>>> res.words[0]                                                   # doctest: +SKIP
Word(word='three', start=0.52, end=0.8, confidence=0.93)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from casnat.decode.runner import DecodeOptions
from casnat.errors import UserError
from casnat.output_formats import TranscriptRecord
from casnat.words import TimedPiece, Word, pieces_to_words, token_pieces, words_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LongformConfig:
    """How long audio is segmented and batched (seconds unless said otherwise)."""

    # Segment lengths: a cut goes at the first sentence pause, or the first pause at least
    # min_segment_s in, never later than max_segment_s. Segments near the training utterances'
    # length decode best (tools/bench_longform.py, 10 min of joined test utterances, WER against
    # one-by-one decoding: synth_en (2 s utterances) 0-10 s +3%, 4-10 s +15%; FSDD (connected
    # digits with pauses of up to 0.6 s between digits) 0-10 s +170%, 4-10 s -26%; the
    # sentence pause serves both: +2.5% and +2 word errors).
    max_segment_s: float = 10.0
    min_segment_s: float = 4.0
    min_pause_s: float = 0.3  # shortest run of blank frames that counts as a pause
    # A pause this long ends a segment even before min_segment_s (a sentence break: one
    # utterance per segment, as in training); shorter pauses (between words, or FSDD's
    # digits, up to 0.6 s) only once the segment is min_segment_s long.
    sentence_pause_s: float = 0.7
    # Silence kept each side of speech at a pause cut; the rest of a longer pause is a silent
    # segment that is not decoded. Utterances are trained with ~0.1-0.3 s of silence around
    # them, and a segment padded with a second of it decodes differently (and costs more).
    pause_keep_s: float = 0.25
    blank_threshold: float = 0.95  # P(blank) above which a frame is silent (ctc VAD)
    vad: Literal["auto", "ctc", "energy", "both"] = "auto"
    auto_snr_db: float = 30.0  # vad=auto: chunks with less peak-to-floor range use the ctc VAD
    energy_threshold_db: float = -40.0  # energy VAD: frames this far below the loudest are silent
    energy_floor_db: float = -70.0  # energy VAD: frames below this (dBFS) are always silent
    energy_noise_margin_db: float = 5.0  # energy VAD in noise: silent up to this over the floor
    energy_min_snr_db: float = 6.0  # energy VAD: a silent frame is at least this under the peak
    vad_chunk_s: float = 30.0  # audio encoded at once by the ctc VAD
    vad_context_s: float = 1.0  # context each side of a VAD chunk, encoded and discarded
    lookahead_s: float = 5.0  # VAD frames known beyond max_segment_s before cutting
    batch_seconds: float = 200.0  # audio per decoding batch (bounds the batch's memory)
    batch_size: int = 16  # segments per decoding batch
    block_s: float = 10.0  # audio read from a file at once


@dataclass(frozen=True)
class Segment:
    """A stretch of the recording: ``samples`` start at ``start`` seconds of the file.

    ``after_pause``: the cut before it was at a pause (so it starts a new word); ``silent``: the
    VAD found no speech in it (it is not decoded).
    """

    start: float
    samples: np.ndarray
    sample_rate: int
    after_pause: bool
    silent: bool = False

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class LongTranscript:
    """A whole recording's result in file time."""

    source: str
    duration: float
    text: str
    words: list[Word]
    pieces: list[TimedPiece] = field(default_factory=list)
    segments: list[tuple[float, float]] = field(default_factory=list)  # decoded (start, end)
    error: str | None = None

    def to_record(self, id: str) -> TranscriptRecord:
        """This result as the record :mod:`casnat.output_formats` writes."""
        return TranscriptRecord(
            id=id,
            source=self.source,
            duration=self.duration,
            text=self.text,
            words=list(self.words),
            error=self.error,
        )


# --- audio input ----------------------------------------------------------------------------


def audio_blocks(
    audio: str | Path | np.ndarray | torch.Tensor,
    sample_rate: int | None = None,
    block_s: float = 10.0,
) -> tuple[Iterator[np.ndarray], int, float]:
    """Mono float32 blocks of ``audio``, its sample rate and its duration in seconds.

    A file is read incrementally with soundfile (never whole); an array or tensor (``(T,)`` or
    ``(T, C)``, or ``(C, T)`` when C < T) needs ``sample_rate``. Channels are averaged.
    """
    if isinstance(audio, (str, Path)):
        import soundfile as sf

        path = Path(audio)
        if not path.is_file():
            raise UserError(f"{path}: no such audio file")
        try:
            info = sf.info(str(path))
        except Exception as e:  # noqa: BLE001 - soundfile raises several types
            raise UserError(f"{path}: unreadable audio ({e})") from e
        sr = int(info.samplerate)
        block = max(1, int(block_s * sr))

        def read() -> Iterator[np.ndarray]:
            with sf.SoundFile(str(path)) as f:
                while True:
                    data = f.read(block, dtype="float32", always_2d=True)
                    if data.shape[0] == 0:
                        return
                    yield data.mean(axis=1)

        return read(), sr, info.frames / sr
    if sample_rate is None:
        raise UserError("an in-memory waveform needs its sample_rate")
    arr = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        arr = (arr if arr.shape[0] > arr.shape[1] else arr.T).mean(axis=1)
    elif arr.ndim != 1:
        raise UserError(f"waveform must be (T,) or (T, C), got shape {tuple(arr.shape)}")
    block = max(1, int(block_s * sample_rate))
    blocks = (arr[i : i + block] for i in range(0, len(arr), block))
    return blocks, int(sample_rate), len(arr) / sample_rate


# --- pause detection ------------------------------------------------------------------------

#: silence_fn(samples, sample_rate, n_frames) -> (n_frames,) silence score in [0, 1] per frame.
SilenceFn = Callable[[np.ndarray, int, int], np.ndarray]


def _features(rec, samples: np.ndarray, sr: int) -> torch.Tensor | None:
    """The recognizer's features of a stretch of the stream, or None when it is shorter than
    one feature frame (a recording's last few samples): nothing to decode there."""
    try:
        return rec.features(samples, sr)
    except ValueError:
        if len(samples) < sr // 10:  # only a tail that short may fail; anything else is a bug
            return None
        raise


def ctc_blank_silence(rec) -> SilenceFn:
    """P(blank) per encoder frame from ``rec``'s encoder + CTC head."""

    @torch.no_grad()
    def fn(samples: np.ndarray, sr: int, n_frames: int) -> np.ndarray:
        feats = _features(rec, samples, sr)
        if feats is None or feats.shape[0] < rec.model.encoder.min_input_frames:
            return np.ones(n_frames, dtype=np.float32)
        lens = torch.tensor([feats.shape[0]], device=rec.device)
        enc = rec.model.encode(feats[None].to(rec.device), lens)
        blank = rec.model.ctc(enc.out)[0, : int(enc.lens[0]), rec.model.blank_id].exp()
        return _fit(blank.float().cpu().numpy(), n_frames)

    return fn


def energy_silence(
    threshold_db: float = -40.0,
    floor_db: float = -70.0,
    noise_margin_db: float = 10.0,
    min_snr_db: float = 15.0,
    memory: int = 3,
) -> SilenceFn:
    """1 for silent frames of a chunk, else 0. A frame is silent below ``floor_db`` dBFS (so a
    chunk of digital silence is silent, not "speech" relative to its own loudest frame), or
    below ``max(loudest + threshold_db, min(noise + noise_margin_db, loudest - min_snr_db))``,
    where noise is the chunk's 5th-percentile frame energy. In clean audio the first term
    decides (40 dB under the peak); in steady background noise 40 dB under the peak is under
    the noise itself and would find no pause, so the threshold rises to just above the noise
    floor, never closer than ``min_snr_db`` to the peak.

    The peak is the loudest frame of this chunk and the ``memory - 1`` chunks before it (the
    function is called on the stream's chunks in order): a chunk of noise alone has no speech
    peak of its own to measure the noise against."""
    tops: list[float] = []

    def fn(samples: np.ndarray, sr: int, n_frames: int) -> np.ndarray:
        db = _frame_db(samples, n_frames)
        if db.size == 0:
            return np.ones(n_frames, dtype=np.float32)
        tops.append(float(db.max()))
        del tops[:-memory]
        top = max(tops)
        noise = float(np.percentile(db, 5))
        level = max(top + threshold_db, min(noise + noise_margin_db, top - min_snr_db))
        quiet = (db < level) | (db < floor_db)
        return _fit(quiet.astype(np.float32), n_frames)

    return fn


def _frame_db(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """Energy (dBFS) of ``n_frames`` equal frames of ``samples``."""
    hop = max(1, len(samples) // max(n_frames, 1))
    x = samples[: hop * n_frames].reshape(-1, hop) if n_frames else samples[:0].reshape(0, 1)
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2, axis=1) + 1e-12)


def make_silence(rec, cfg: LongformConfig) -> SilenceFn:
    """The silence score ``cfg.vad`` names: ``ctc`` P(blank), ``energy`` 0/1, ``both`` their
    product (silent only where the frame is quiet *and* the CTC says blank), ``auto`` energy
    for a chunk whose loudest frame is ``auto_snr_db`` over its noise floor (5th percentile),
    else ctc. Measured (tools/bench_longform.py): on clean joins energy found every pause of
    the synth_en default model, whose blank posteriors are too weak to; in white noise at
    10 dB SNR energy cut inside words (FSDD: 24% WER against 11% with ctc)."""
    energy = energy_silence(
        cfg.energy_threshold_db,
        cfg.energy_floor_db,
        cfg.energy_noise_margin_db,
        cfg.energy_min_snr_db,
    )
    if cfg.vad == "energy":
        return energy
    ctc = ctc_blank_silence(rec)
    if cfg.vad == "ctc":
        return ctc
    if cfg.vad == "auto":

        def auto(samples: np.ndarray, sr: int, n_frames: int) -> np.ndarray:
            db = _frame_db(samples, n_frames)
            clean = db.size > 0 and db.max() - np.percentile(db, 5) >= cfg.auto_snr_db
            return (energy if clean else ctc)(samples, sr, n_frames)

        return auto

    def both(samples: np.ndarray, sr: int, n_frames: int) -> np.ndarray:
        return ctc(samples, sr, n_frames) * energy(samples, sr, n_frames)

    return both


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or padded (repeating its last value) to ``n`` entries: the encoder's
    subsampling drops a frame or two at the end of a chunk."""
    if len(x) >= n:
        return x[:n]
    pad = x[-1] if len(x) else 1.0
    return np.concatenate([x, np.full(n - len(x), pad, dtype=np.float32)])


def pause_runs(silent: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """``(start, end)`` (end exclusive) of runs of True at least ``min_frames`` long.

    >>> pause_runs(np.array([0, 1, 1, 1, 0, 1, 0, 1, 1], dtype=bool), 2)
    [(1, 4), (7, 9)]
    """
    padded = np.concatenate([[False], silent.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [
        (int(s), int(e))
        for s, e in zip(edges[::2], edges[1::2], strict=True)
        if e - s >= min_frames
    ]


def choose_cut(
    score: np.ndarray,
    max_frames: int,
    min_pause: int,
    threshold: float,
    min_frames: int = 0,
    long_pause: int | None = None,
) -> tuple[int, bool]:
    """Where to end the next segment, in frames, and whether that cut is at a pause.

    The midpoint of the first pause whose midpoint is at least ``min_frames`` in, or that is at
    least ``long_pause`` frames long (clamped to ``max_frames``); else of the last pause before that; failing any pause within
    ``max_frames``, the most silent frame of ``[max_frames // 2, max_frames]`` (the latest one
    on ties, for the longest segment).

    >>> s = np.array([0.1] * 10 + [0.99] * 4 + [0.1] * 10)
    >>> choose_cut(s, 20, 3, 0.95)
    (12, True)
    >>> choose_cut(np.array([0.1, 0.2, 0.9, 0.3, 0.1, 0.1]), 4, 3, 0.95)
    (2, False)
    """
    runs = [
        (min((s + e) // 2, max_frames), e - s)
        # A pause at frame 0 is the rest of the one the previous cut went into: cutting it
        # again would only make a sliver of silence.
        for s, e in pause_runs(score > threshold, min_pause)
        if 0 < s < max_frames
    ]
    if runs:
        late = [
            c for c, n in runs if c >= min_frames or (long_pause is not None and n >= long_pause)
        ]
        return (late[0] if late else runs[-1][0]), True
    lo = max(1, max_frames // 2)
    window = score[lo : max_frames + 1]
    best = lo + int(len(window) - 1 - np.argmax(window[::-1]))
    return best, False


def segment_stream(
    blocks: Iterable[np.ndarray],
    sr: int,
    frame_seconds: float,
    silence: SilenceFn,
    cfg: LongformConfig,
) -> Iterator[Segment]:
    """Cut a stream of mono blocks into :class:`Segment` s of at most ``cfg.max_segment_s``.

    Holds at most ``max_segment_s + lookahead_s + vad_chunk_s`` of audio. Segment boundaries
    fall on encoder-frame boundaries (``hop`` samples), so each segment's encoder frames line up
    with the file's frame grid.
    """
    hop = max(1, round(sr * frame_seconds))
    max_frames = max(1, int(cfg.max_segment_s / frame_seconds))
    need = max_frames + int(cfg.lookahead_s / frame_seconds)
    chunk = max(1, int(cfg.vad_chunk_s / frame_seconds))
    ctx = int(cfg.vad_context_s / frame_seconds)
    min_pause = max(1, round(cfg.min_pause_s / frame_seconds))
    keep = max(0, round(cfg.pause_keep_s / frame_seconds))

    buf = np.zeros(0, dtype=np.float32)  # audio from buf_start on
    buf_start = 0  # samples
    score = np.zeros(0, dtype=np.float32)  # silence score of buf's first frames
    after_pause = True
    it = iter(blocks)
    eof = False

    def extend_scores() -> None:
        """Score the next chunk of frames (with context), or the rest of the audio at EOF."""
        nonlocal score
        done = len(score)
        avail = len(buf) // hop if not eof else -(-len(buf) // hop)
        n_new = min(chunk, avail - done - (0 if eof else ctx))
        if n_new <= 0:
            return
        lo = max(0, done - ctx)
        hi = min(len(buf), (done + n_new + ctx) * hop)
        s = silence(buf[lo * hop : hi], sr, -(-(hi - lo * hop) // hop))
        score = np.concatenate([score, s[done - lo : done - lo + n_new]]).astype(np.float32)

    while True:
        # Read and score until `need` frames are known or the audio ends.
        while len(score) < need and not (eof and len(score) * hop >= len(buf)):
            if not eof and len(buf) < (len(score) + chunk + ctx) * hop:
                b = next(it, None)
                if b is None:
                    eof = True
                else:
                    buf = np.concatenate([buf, np.asarray(b, dtype=np.float32)])
                continue
            before = len(score)
            extend_scores()
            if len(score) == before:
                break
        if len(buf) == 0:
            return
        quiet = score > cfg.blank_threshold
        lead = _run_length(quiet)
        known_all = eof and len(score) * hop >= len(buf)
        if lead > keep and (lead < len(score) or known_all or len(score) >= need):
            # Leading silence beyond `keep` frames (the rest of a pause the last cut went
            # into, or the file's start): a segment of its own, never decoded.
            n_drop = lead if lead == len(score) and known_all else lead - keep
            n = min(len(buf), n_drop * hop)
            yield Segment(buf_start / sr, buf[:n].copy(), sr, True, True)
            buf, score = buf[n:], score[n_drop:]
            buf_start += n
            after_pause = True
            continue
        if eof and len(buf) <= max_frames * hop:
            cut, at_pause = -(-len(buf) // hop), True
        else:
            cut, at_pause = choose_cut(
                score,
                max_frames,
                min_pause,
                cfg.blank_threshold,
                int(cfg.min_segment_s / frame_seconds),
                max(1, round(cfg.sentence_pause_s / frame_seconds)),
            )
        # At a pause cut, the segment keeps `keep` frames of the pause; the rest up to the cut
        # is a silent segment (the rest after it is trimmed as the next one's leading silence).
        end = cut
        if at_pause:
            end = min(cut, cut - _run_length(quiet[:cut][::-1]) + keep)
        for lo, hi, silent in ((0, end, False), (end, cut, True)):
            if hi <= lo:
                continue
            x, y = min(len(buf), lo * hop), min(len(buf), hi * hop)
            silent = silent or bool(np.all(quiet[lo:hi]))
            yield Segment((buf_start + x) / sr, buf[x:y].copy(), sr, after_pause or lo > 0, silent)
        n = min(len(buf), cut * hop)
        buf, score = buf[n:], score[cut:]
        buf_start += n
        after_pause = at_pause


def _run_length(flags: np.ndarray) -> int:
    """How many leading entries of ``flags`` are True."""
    off = np.flatnonzero(~flags)
    return int(off[0]) if len(off) else len(flags)


# --- decoding and stitching -----------------------------------------------------------------


_NO_AUDIO = np.zeros(0, dtype=np.float32)


def _frame_seconds(rec) -> float:
    return rec.cfg.features.frame_shift * rec.model.encoder.subsampling_factor


def token_spans(alignment: list[int], blank: int = 0) -> tuple[list[int], list[int]]:
    """First and last frame of each token on a CTC path (labels per frame, blank included, -1
    padding): a token starts at a non-blank frame after a blank or a different label.

    >>> token_spans([0, 5, 5, 0, 5, 7, 7, 0, -1])
    ([1, 4, 5], [2, 4, 6])
    """
    starts: list[int] = []
    ends: list[int] = []
    prev = blank
    for t, lab in enumerate(alignment):
        if lab < 0:
            break
        if lab != blank and lab != prev:
            starts.append(t)
            ends.append(t)
        elif lab != blank:
            ends[-1] = t
        prev = lab
    return starts, ends


@torch.no_grad()
def forced_timings(rec, feats: torch.Tensor, tokens: list[int]) -> tuple[list[int], list[int]]:
    """Encoder-frame spans of ``tokens`` from the CTC forced alignment (casnat's own op), for
    searches that give no timing (AT beam). A token the CTC cannot emit (the blank id, which an
    AT decoder may output) gets ``-1``; all get ``-1`` when no CTC path fits the tokens."""
    from casnat.align import ctc_viterbi_align

    lens = torch.tensor([feats.shape[0]], device=rec.device)
    enc = rec.model.encode(feats[None].to(rec.device), lens)
    lp = rec.model.ctc(enc.out)
    blank = rec.model.blank_id
    keep = [k for k, t in enumerate(tokens) if t != blank and 0 <= t < lp.shape[-1]]
    starts, ends = [-1] * len(tokens), [-1] * len(tokens)
    if not keep:
        return starts, ends
    tgt = torch.tensor([[tokens[k] for k in keep]], dtype=torch.int64, device=lp.device)
    ali, score = ctc_viterbi_align(
        lp, enc.lens, tgt, torch.tensor([len(keep)], device=lp.device), blank=blank
    )
    if not torch.isfinite(score[0]):
        return starts, ends
    s, e = token_spans(ali[0].tolist(), blank)
    if len(s) == len(keep):
        for k, a, b in zip(keep, s, e, strict=True):
            starts[k], ends[k] = a, b
    return starts, ends


def _decode_batch(rec, segs: list[Segment], opts: DecodeOptions) -> list[list[TimedPiece]]:
    """Pieces (file time) of each segment; sorted by length for the batch, results in order."""
    fs = _frame_seconds(rec)
    out: list[list[TimedPiece]] = [[] for _ in segs]
    feats = {}
    for i, s in enumerate(segs):
        if s.silent:
            continue
        f = _features(rec, s.samples, s.sample_rate)
        if f is not None and f.shape[0] >= rec.model.encoder.min_input_frames:
            feats[i] = f
    order = sorted(feats, key=lambda i: feats[i].shape[0], reverse=True)
    if not order:
        return out
    hyps = rec.transcribe_features([feats[i] for i in order], opts)
    for i, h in zip(order, hyps, strict=True):
        starts, ends = h.token_starts, h.token_ends
        if h.tokens and not starts:
            starts, ends = forced_timings(rec, feats[i], list(h.tokens))
        out[i] = token_pieces(
            rec.tokenizer, h.tokens, starts, ends, h.confidences, fs, offset=segs[i].start
        )
    return out


def stitch(parts: Iterable[tuple[Segment, list[TimedPiece]]], word_tokens: bool) -> list[Word]:
    """Words of consecutive segments' pieces: a segment cut at a pause starts a new word; one
    cut without a pause continues the previous stretch (the tokenizer's ``▁`` decides)."""
    words: list[Word] = []
    run: list[TimedPiece] = []
    for seg, pieces in parts:
        if seg.after_pause and run:
            words.extend(pieces_to_words(run, word_tokens))
            run = []
        run.extend(pieces)
    if run:
        words.extend(pieces_to_words(run, word_tokens))
    return words


def _trim_heap() -> None:
    """Give freed heap pages back to the OS after each batch (glibc's ``malloc_trim``): batches
    of different shapes leave the heap fragmented, and without this the peak RSS crept up with
    the recording's length (synth_en model: 361 MiB at 5 min, 640 MiB at 120 min)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def transcribe_long(
    rec,
    audio: str | Path | np.ndarray | torch.Tensor,
    sample_rate: int | None = None,
    opts: DecodeOptions | None = None,
    cfg: LongformConfig | None = None,
    source: str | None = None,
    on_audio: Callable[[float], None] | None = None,
) -> LongTranscript:
    """Transcribe a recording of any length with ``rec`` (a :class:`casnat.inference.Recognizer`).

    ``audio`` is a file path (read incrementally) or a waveform with ``sample_rate``. Returns
    words and pieces in file time; ``text`` is the words joined by spaces. ``on_audio(seconds)``
    is called after each decoded batch of segments (progress within an hour-long file).
    """
    opts = opts or DecodeOptions()
    cfg = cfg or LongformConfig()
    blocks, sr, duration = audio_blocks(audio, sample_rate, cfg.block_s)
    fs = _frame_seconds(rec)
    silence = make_silence(rec, cfg)
    word_tokens = getattr(rec.tokenizer, "kind", "") == "word"

    parts: list[tuple[Segment, list[TimedPiece]]] = []
    spans: list[tuple[float, float]] = []
    pending: list[Segment] = []
    pending_s = 0.0

    n_flush = 0

    def flush() -> None:
        nonlocal pending_s
        for seg, pieces in zip(pending, _decode_batch(rec, pending, opts), strict=True):
            # Keep only what stitching needs: the samples are dropped (a [:0] view would keep
            # every segment's buffer alive: RSS grew 70 MiB from 10 to 30 minutes).
            parts.append((Segment(seg.start, _NO_AUDIO, sr, seg.after_pause, seg.silent), pieces))
            if not seg.silent:
                spans.append((round(seg.start, 3), round(seg.start + seg.duration, 3)))
        if on_audio is not None and pending:
            on_audio(sum(seg.duration for seg in pending))
        pending.clear()
        pending_s = 0.0
        nonlocal n_flush
        n_flush += 1
        if n_flush % 8 == 0:  # often enough to bound the heap, rare enough to cost nothing
            _trim_heap()

    n_seg = 0
    for seg in segment_stream(blocks, sr, fs, silence, cfg):
        n_seg += 1
        pending.append(seg)
        pending_s += seg.duration
        if pending_s >= cfg.batch_seconds or len(pending) >= cfg.batch_size:
            flush()
    flush()
    pieces = [p for _, ps in parts for p in ps]
    words = stitch(parts, word_tokens)
    log.info(
        "%s: %.1f s in %d segments (%d decoded), %d words",
        source or audio,
        duration,
        n_seg,
        len(spans),
        len(words),
    )
    return LongTranscript(
        source=source or (str(audio) if isinstance(audio, (str, Path)) else "<array>"),
        duration=round(duration, 3),
        text=words_text(words),
        words=words,
        pieces=pieces,
        segments=spans,
    )


__all__ = [
    "LongTranscript",
    "LongformConfig",
    "Segment",
    "audio_blocks",
    "choose_cut",
    "ctc_blank_silence",
    "energy_silence",
    "forced_timings",
    "make_silence",
    "pause_runs",
    "segment_stream",
    "stitch",
    "token_spans",
    "transcribe_long",
]
