"""Python decoding API: ``load_model(exp_dir_or_model_file).transcribe(["a.wav", "b.flac"])``.

An experiment directory is self-contained: ``config.yaml``, ``tokenizer/``, and checkpoints whose
model state includes the CMVN statistics. Checkpoints are read with ``weights_only=True``. A
one-file model (``casnat export-model``, :mod:`casnat.model_file`) loads the same way.

>>> rec = load_model("egs/fsdd/exp/cassnat")                   # doctest: +SKIP
>>> rec.transcribe(["three_one.wav"], mode="cassnat")[0].text  # doctest: +SKIP
'three one'
>>> rec.transcribe([(samples, 16000)])[0].words                # doctest: +SKIP
[Word(word='three', start=0.2, end=0.48, confidence=0.97), ...]

Inputs (:mod:`casnat.inputs`): paths, ``(samples, sample_rate)`` pairs (NumPy or torch, mono or
multi-channel: channels are averaged), lhotse cuts or recordings. Inputs shorter than the
long-form threshold are decoded whole, in batches of similar length; longer ones (``long="auto"``)
go through :func:`casnat.longform.transcribe_long` (split at pauses, bounded memory, timestamps in
file time).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from casnat.checkpoint import default_checkpoint, load_checkpoint
from casnat.config import ExperimentConfig, load_config
from casnat.data.tokenizer import Tokenizer
from casnat.decode.results import Hypothesis, encoder_frame_seconds
from casnat.decode.runner import DecodeOptions, check_mode, decode_batch
from casnat.errors import UserError
from casnat.models.asr import ASRModel
from casnat.output_formats import TranscriptRecord
from casnat.words import Word, pieces_to_words, token_pieces

if TYPE_CHECKING:
    from casnat.inputs import AudioInput
    from casnat.longform import LongformConfig, LongTranscript

log = logging.getLogger(__name__)

LongMode = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class TokenTiming:
    token: str
    start: float  # seconds; -1 when unknown
    end: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    """One input's result; ``error`` is set (and text empty) when it could not be decoded.

    ``words`` carry file-time start/end and a confidence (the minimum of their tokens', see
    :mod:`casnat.words`); ``long`` says the long-form path decoded it."""

    source: str
    text: str
    tokens: list[TokenTiming] = field(default_factory=list)
    error: str | None = None
    id: str = ""
    duration: float | None = None
    words: list[Word] = field(default_factory=list)
    long: bool = False

    def to_record(self) -> TranscriptRecord:
        """The record :mod:`casnat.output_formats` writes."""
        return TranscriptRecord(
            id=self.id,
            source=self.source,
            duration=self.duration,
            text=self.text,
            words=list(self.words),
            error=self.error,
        )


def _error(inp: AudioInput, msg: str) -> Transcript:
    return Transcript(source=inp.source, text="", error=msg, id=inp.id, duration=inp.duration)


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; a named CUDA device without
    CUDA is a UserError (not a traceback from deep inside the model)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device}: CUDA is not available here (use --device cpu or auto)")
    return dev


def transcript_of(
    tokenizer: Tokenizer,
    frame_seconds: float,
    source: str,
    h: Hypothesis,
    starts: list[int],
    ends: list[int],
    id: str = "",
    duration: float | None = None,
) -> Transcript:
    """Text, token timings and words of a hypothesis whose tokens span encoder frames
    ``starts[i]..ends[i]``: one function, so the PyTorch and the ONNX recognizers
    (:class:`casnat.onnx_export.OnnxRecognizer`) give identical transcripts for one hypothesis."""
    pieces = token_pieces(tokenizer, h.tokens, starts, ends, h.confidences, frame_seconds)
    timings = [
        TokenTiming(
            p.piece,
            -1.0 if p.start is None else p.start,
            -1.0 if p.end is None else p.end,
            float("nan") if p.confidence is None else p.confidence,
        )
        for p in pieces
    ]
    words = pieces_to_words(pieces, getattr(tokenizer, "kind", "") == "word")
    return Transcript(
        source=source,
        text=tokenizer.decode(h.tokens),
        tokens=timings,
        id=id,
        duration=duration,
        words=words,
    )


class Recognizer:
    """A trained model with its tokenizer and feature extractor, ready to decode audio."""

    def __init__(
        self,
        model: ASRModel,
        tokenizer: Tokenizer,
        cfg: ExperimentConfig,
        device: torch.device,
        card: dict[str, Any] | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.device = device
        self.card = card or {}  # the model card of a one-file model (casnat.model_file)
        self._extractor = None

    @property
    def frame_seconds(self) -> float:
        """Seconds per encoder frame (feature shift x the encoder's subsampling factor)."""
        return encoder_frame_seconds(self.cfg.features.frame_shift, self.model.subsampling_factor)

    @property
    def extractor(self):
        """The model's fbank extractor (made on first use)."""
        from casnat.data.features import make_extractor

        if self._extractor is None:
            self._extractor = make_extractor(self.cfg.features)
        return self._extractor

    def features(self, samples: np.ndarray, sample_rate: int) -> torch.Tensor:
        """(T, F) log-mel features of a waveform ((S,) or (C, S): channels averaged), resampled
        to the model's rate by lhotse and level-normalized as the model's config says: the same
        path as a file's cut in training and ``casnat decode``
        (:func:`casnat.data.features.waveform_features`)."""
        from casnat.data.features import waveform_features

        feats = waveform_features(samples, sample_rate, self.extractor, self.cfg.features)
        return torch.from_numpy(feats)

    def input_features(self, inp: AudioInput) -> torch.Tensor:
        """Features of one input; raises UserError naming it when it cannot be used
        (:class:`FeatureMaker`)."""
        return FeatureMaker.of(self)(inp)

    def load_audio(self, path: str | Path) -> torch.Tensor:
        """Features of an audio file; raises UserError naming the file when it cannot be used."""
        from casnat.inputs import as_inputs

        return self.input_features(as_inputs([path])[0])

    def hypothesis_to_transcript(
        self,
        source: str,
        h: Hypothesis,
        feats: torch.Tensor | None = None,
        id: str = "",
        duration: float | None = None,
    ) -> Transcript:
        """Tokens, words and text of a hypothesis. A search without token timing (AT beam) gets
        it from the CTC forced alignment of its output when ``feats`` is given."""
        starts, ends = h.token_starts, h.token_ends
        if h.tokens and not starts and feats is not None and self.model.ctc is not None:
            from casnat.longform import forced_timings

            starts, ends = forced_timings(self, feats, list(h.tokens))
        return transcript_of(
            self.tokenizer, self.frame_seconds, source, h, starts, ends, id, duration
        )

    @torch.no_grad()
    def transcribe_features(
        self, feats: list[torch.Tensor], opts: DecodeOptions
    ) -> list[Hypothesis]:
        lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        return decode_batch(self.model, padded.to(self.device), lens.to(self.device), opts)

    def transcribe_long(
        self,
        audio: str | Path | np.ndarray | torch.Tensor,
        sample_rate: int | None = None,
        opts: DecodeOptions | None = None,
        cfg: LongformConfig | None = None,
        source: str | None = None,
        mode: str | None = None,
        on_audio: Callable[[float], None] | None = None,
    ) -> LongTranscript:
        """Transcribe a recording of any length in bounded memory
        (:func:`casnat.longform.transcribe_long`): a file is streamed block by block, a waveform
        needs ``sample_rate``. Words and pieces are in file time."""
        from casnat.longform import transcribe_long

        opts = opts or DecodeOptions(**({"mode": mode} if mode else {}))
        check_mode(self.model, opts.mode)
        return transcribe_long(self, audio, sample_rate, opts, cfg, source, on_audio)

    def _long_one(
        self,
        inp: AudioInput,
        opts: DecodeOptions,
        cfg: LongformConfig | None,
        on_audio: Callable[[float], None] | None = None,
    ) -> Transcript:
        path = inp.file_path
        kw = {"opts": opts, "cfg": cfg, "source": inp.source, "on_audio": on_audio}
        if path is not None and _soundfile_reads(path):
            res = self.transcribe_long(path, **kw)
        else:  # a command, a segment, a cut, an array, or a format only lhotse's ffmpeg reads
            samples, sr = inp.load_mono()
            res = self.transcribe_long(samples, sr, **kw)
        tokens = [
            TokenTiming(
                p.piece,
                -1.0 if p.start is None else p.start,
                -1.0 if p.end is None else p.end,
                float("nan") if p.confidence is None else p.confidence,
            )
            for p in res.pieces
        ]
        return Transcript(
            source=inp.source,
            text=res.text,
            tokens=tokens,
            id=inp.id,
            duration=res.duration,
            words=list(res.words),
            long=True,
        )

    def iter_transcribe(
        self,
        inputs: Sequence[AudioInput],
        opts: DecodeOptions,
        long: LongMode = "auto",
        long_cfg: LongformConfig | None = None,
        long_threshold_s: float | None = None,
        batch_size: int = 16,
        batch_seconds: float = 200.0,
        features: Callable[
            [Iterable[tuple[int, AudioInput]]], Iterator[tuple[int, torch.Tensor | str]]
        ]
        | None = None,
        on_audio: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[int, Transcript]]:
        """``(index, Transcript)`` of each input, in the order they finish (failed inputs
        first, then the short ones in batches, then the long ones).

        Short inputs are sorted by duration (longest first) and batched up to ``batch_size``
        inputs and ``batch_seconds`` of audio, so padding stays small and a batch's memory is
        bounded. An input is long when longer than ``long_threshold_s`` (default: the long-form
        ``max_segment_s``) and ``long="auto"``, or always/never. Errors are returned, not logged
        (the caller reports each once). ``features`` (index, input) ->
        (index, features or error message) lets the caller compute features elsewhere (worker
        processes); by default they are computed here, in order. ``on_audio(seconds)`` reports
        audio decoded so far as it happens (a long input reports it segment batch by batch)."""
        from casnat.longform import LongformConfig

        if long not in ("auto", "always", "never"):
            raise UserError(f"long must be auto, always or never, not {long!r}")
        check_mode(self.model, opts.mode)
        long_cfg = long_cfg or LongformConfig()
        threshold = long_cfg.max_segment_s if long_threshold_s is None else long_threshold_s
        short: list[int] = []
        longs: list[int] = []
        for i, inp in enumerate(inputs):
            if inp.error:
                yield i, _error(inp, inp.error)
            elif long == "always" or (long == "auto" and (inp.duration or 0.0) > threshold):
                longs.append(i)
            else:
                short.append(i)
        short.sort(key=lambda i: -(inputs[i].duration or 0.0))
        feats_of = features or self._features_here
        pending: list[tuple[int, torch.Tensor]] = []
        pending_s = 0.0

        def flush() -> Iterator[tuple[int, Transcript]]:
            hyps = self.transcribe_features([f for _, f in pending], opts)
            if on_audio is not None:
                on_audio(sum(inputs[i].duration or 0.0 for i, _ in pending))
            for (i, f), h in zip(pending, hyps, strict=True):
                inp = inputs[i]
                yield i, self.hypothesis_to_transcript(inp.source, h, f, inp.id, inp.duration)
            pending.clear()

        for i, got in feats_of((i, inputs[i]) for i in short):
            if isinstance(got, str):
                if on_audio is not None:
                    on_audio(inputs[i].duration or 0.0)
                yield i, _error(inputs[i], got)
                continue
            dur = inputs[i].duration or 0.0
            if pending and (len(pending) >= batch_size or pending_s + dur > batch_seconds):
                yield from flush()
                pending_s = 0.0
            pending.append((i, got))
            pending_s += dur
        if pending:
            yield from flush()
        for i in longs:
            try:
                yield i, self._long_one(inputs[i], opts, long_cfg, on_audio)
            except UserError as e:
                yield i, _error(inputs[i], str(e))
            except (_sf_error(), OSError) as e:  # audio broken mid-stream
                msg = f"{inputs[i].source}: unreadable audio ({type(e).__name__}: {e})"
                yield i, _error(inputs[i], msg)

    def _features_here(
        self, items: Iterable[tuple[int, AudioInput]]
    ) -> Iterator[tuple[int, torch.Tensor | str]]:
        for i, inp in items:
            try:
                yield i, self.input_features(inp)
            except UserError as e:
                yield i, str(e)

    def transcribe(
        self,
        audio: Iterable[Any],
        mode: str = "ctc_greedy",
        batch_size: int = 16,
        opts: DecodeOptions | None = None,
        long: LongMode = "auto",
        long_cfg: LongformConfig | None = None,
        batch_seconds: float = 200.0,
    ) -> list[Transcript]:
        """Transcribe inputs (paths, ``(samples, sample_rate)`` pairs, lhotse cuts/recordings,
        :class:`casnat.inputs.AudioInput`), results in input order. An input that cannot be read
        gets ``error`` set; the others are still decoded. Inputs longer than
        ``long_cfg.max_segment_s`` use the long-form path unless ``long="never"``."""
        from casnat.inputs import as_inputs

        inputs = as_inputs(audio)
        opts = opts or DecodeOptions(mode=mode)
        results = {}
        for i, t in self.iter_transcribe(
            inputs, opts, long, long_cfg, None, batch_size, batch_seconds
        ):
            if t.error:
                log.warning("skipping %s", t.error)
            results[i] = t
        return [results[i] for i in range(len(inputs))]


@dataclass
class FeatureMaker:
    """Input -> features, without the model: what a worker process needs (small to pickle).

    A cut goes through the on-the-fly feature path of a ``casnat decode`` manifest
    (:func:`casnat.data.features.cut_features`), so transcribing a file and decoding its cut
    compute identical features; a waveform goes through :meth:`Recognizer.features` (the same
    resampler and extractor). Several channels are averaged."""

    features_cfg: Any
    min_input_frames: int
    _extractor: Any = None

    @classmethod
    def of(cls, rec: Recognizer) -> FeatureMaker:
        fm = cls(rec.cfg.features, rec.model.min_input_frames)
        fm._extractor = rec.extractor
        return fm

    @property
    def extractor(self):
        from casnat.data.features import make_extractor

        if self._extractor is None:
            self._extractor = make_extractor(self.features_cfg)
        return self._extractor

    def __call__(self, inp: AudioInput) -> torch.Tensor:
        from casnat.data.features import cut_features, resample

        if inp.error:
            raise UserError(inp.error)
        rate = self.features_cfg.sample_rate
        if inp.cut is not None:
            try:
                feats = cut_features(inp.cut, self.extractor, rate)
            except ValueError as e:
                raise UserError(f"{inp.source}: unreadable audio ({e})") from e
        else:
            need = int(round(self.features_cfg.frame_length * inp.sample_rate))
            if len(inp.samples) < need:
                raise UserError(
                    f"{inp.source}: audio too short ({len(inp.samples)} samples at "
                    f"{inp.sample_rate} Hz)"
                )
            samples = resample(inp.samples, inp.sample_rate, rate)
            feats = self.extractor.extract(samples, rate)
        feats = torch.from_numpy(np.asarray(feats, dtype=np.float32))
        if feats.shape[0] < self.min_input_frames:  # no encoder frame from it
            raise UserError(f"{inp.source}: audio too short ({inp.duration:.3f} s)")
        return feats

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_extractor": None}  # each worker makes its own


class _FeatureDataset(torch.utils.data.Dataset):
    def __init__(self, maker: FeatureMaker, items: list[tuple[int, AudioInput]]) -> None:
        self.maker, self.items = maker, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor | str]:
        i, inp = self.items[k]
        try:
            return i, self.maker(inp)
        except UserError as e:
            return i, str(e)
        except Exception as e:  # noqa: BLE001 - one bad input must not kill the worker pool
            return i, f"{inp.source}: {type(e).__name__}: {e}"


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers run beside the model: one core each


def worker_features(
    rec: Recognizer | FeatureMaker,
    items: Iterable[tuple[int, AudioInput]],
    num_workers: int = 2,
    prefetch: int = 4,
) -> Iterator[tuple[int, torch.Tensor | str]]:
    """``(index, features or error)`` of ``items`` in order, read and computed by a torch
    DataLoader's ``num_workers`` processes while the caller runs the model. ``rec`` may be a
    :class:`FeatureMaker` itself (the ONNX recognizer has no torch model to make one of)."""
    maker = rec if isinstance(rec, FeatureMaker) else FeatureMaker.of(rec)
    ds = _FeatureDataset(maker, list(items))
    if not len(ds):
        return
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        prefetch_factor=prefetch,
        worker_init_fn=_worker_init,
        persistent_workers=False,
    )
    yield from loader


def _sf_error() -> type[Exception]:
    """soundfile's base error (a truncated or corrupt block raises it while streaming)."""
    import soundfile as sf

    return getattr(sf, "SoundFileError", RuntimeError)


def _soundfile_reads(path: Path) -> bool:
    import soundfile as sf

    try:
        sf.info(str(path))
        return True
    except Exception:  # noqa: BLE001 - soundfile raises several types
        return False


def load_model(
    model: str | Path, checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
) -> Recognizer:
    """Load a trained experiment directory, or a one-file model (``casnat export-model``), for
    decoding. ``device`` may be ``auto`` (CUDA when available)."""
    path = Path(model)
    dev = resolve_device(device)
    torch.set_flush_denormal(True)  # denormals slow CPU inference by an order of magnitude
    if path.is_file():
        from casnat.model_file import load_model_file

        if checkpoint is not None:
            raise UserError(
                f"{path}: a one-file model holds its weights; --checkpoint is for "
                "experiment directories"
            )
        model_, tokenizer, cfg, card = load_model_file(path)
        log.info(f"loaded {path} ({cfg.model.type}) on {dev}")
        return Recognizer(model_.to(dev), tokenizer, cfg, dev, card)
    if not path.is_dir():
        raise UserError(f"experiment directory or model file not found: {path}")
    cfg = load_config(path / "config.yaml")
    tokenizer = Tokenizer.load(path / "tokenizer")
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(path)
    state = load_checkpoint(ckpt, map_location="cpu")["model"]
    model_ = ASRModel(cfg.model, tokenizer.vocab_size, cfg.features.num_mel_bins)
    model_.load_state_dict(state)
    log.info(f"loaded {ckpt} ({cfg.model.type}) on {dev}")
    return Recognizer(model_.to(dev), tokenizer, cfg, dev)
