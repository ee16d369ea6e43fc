"""Python decoding API: ``load_model(exp_dir).transcribe(["a.wav", "b.flac"])``.

An experiment directory is self-contained: ``config.yaml``, ``tokenizer/``, and checkpoints whose
model state includes the CMVN statistics. Checkpoints are read with ``weights_only=True``.

>>> rec = load_model("egs/fsdd/exp/cassnat")                   # doctest: +SKIP
>>> rec.transcribe(["three_one.wav"], mode="cassnat")[0].text  # doctest: +SKIP
'three one'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from casnat.checkpoint import default_checkpoint, load_checkpoint
from casnat.config import ExperimentConfig, load_config
from casnat.data.tokenizer import Tokenizer
from casnat.decode.results import Hypothesis, encoder_frame_seconds
from casnat.decode.runner import DecodeOptions, check_mode, decode_batch
from casnat.errors import UserError
from casnat.models.asr import ASRModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenTiming:
    token: str
    start: float  # seconds
    end: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    """One file's result; ``error`` is set (and text empty) when the file could not be decoded."""

    source: str
    text: str
    tokens: list[TokenTiming] = field(default_factory=list)
    error: str | None = None


class Recognizer:
    """A trained model with its tokenizer and feature extractor, ready to decode audio."""

    def __init__(
        self, model: ASRModel, tokenizer: Tokenizer, cfg: ExperimentConfig, device: torch.device
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.device = device
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
        """(T, F) log-mel features of a mono waveform, resampled to the model's rate by lhotse
        (the resampler of training and ``casnat decode``)."""
        from casnat.data.features import resample

        target = self.cfg.features.sample_rate
        samples = resample(np.asarray(samples, dtype=np.float32), sample_rate, target)
        feats = self.extractor.extract(samples, target)
        return torch.from_numpy(np.asarray(feats, dtype=np.float32))

    def load_audio(self, path: str | Path) -> torch.Tensor:
        """Features of an audio file; raises UserError naming the file when it cannot be used.

        The file becomes a lhotse cut and goes through the same on-the-fly feature path as a
        ``casnat decode`` manifest (:func:`casnat.data.features.cut_features`), so transcribing
        a file and decoding its cut compute identical features. Several channels are averaged.
        """
        from lhotse import Recording

        from casnat.data.features import cut_features

        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such audio file")
        try:
            rec = Recording.from_file(path)
        except Exception as e:  # noqa: BLE001 - the audio backends raise several types
            raise UserError(f"{path}: unreadable audio ({e})") from e
        if rec.num_samples == 0:
            raise UserError(f"{path}: empty audio")
        try:
            feats = cut_features(rec.to_cut(), self.extractor, self.cfg.features.sample_rate)
        except ValueError as e:
            raise UserError(f"{path}: unreadable audio ({e})") from e
        feats = torch.from_numpy(np.asarray(feats, dtype=np.float32))
        if feats.shape[0] < self.model.min_input_frames:  # no encoder frame from it
            raise UserError(f"{path}: audio too short ({rec.duration:.3f} s)")
        return feats

    def hypothesis_to_transcript(self, source: str, h: Hypothesis) -> Transcript:
        times = h.token_times(self.frame_seconds)  # empty when the search has no frame timing
        timings = []
        for i, tok in enumerate(h.tokens):
            start, end = times[i] if times else (-1.0, -1.0)
            conf = h.confidences[i] if i < len(h.confidences) else float("nan")
            timings.append(TokenTiming(self.tokenizer.id_to_piece(tok), start, end, conf))
        return Transcript(source=source, text=self.tokenizer.decode(h.tokens), tokens=timings)

    @torch.no_grad()
    def transcribe_features(
        self, feats: list[torch.Tensor], opts: DecodeOptions
    ) -> list[Hypothesis]:
        lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        return decode_batch(self.model, padded.to(self.device), lens.to(self.device), opts)

    def transcribe(
        self,
        audio: list[str | Path],
        mode: str = "ctc_greedy",
        batch_size: int = 16,
        opts: DecodeOptions | None = None,
    ) -> list[Transcript]:
        """Transcribe files in batches. A file that cannot be read gets ``error`` set; the others
        are still decoded."""
        opts = opts or DecodeOptions(mode=mode)
        check_mode(self.model, opts.mode)
        results: dict[int, Transcript] = {}
        pending: list[tuple[int, str, torch.Tensor]] = []

        def flush() -> None:
            hyps = self.transcribe_features([f for _, _, f in pending], opts)
            for (i, src, _), h in zip(pending, hyps, strict=True):
                results[i] = self.hypothesis_to_transcript(src, h)
            pending.clear()

        for i, path in enumerate(audio):
            try:
                pending.append((i, str(path), self.load_audio(path)))
            except UserError as e:
                log.warning("skipping %s", e)
                results[i] = Transcript(source=str(path), text="", error=str(e))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        return [results[i] for i in range(len(audio))]


def load_model(
    exp_dir: str | Path, checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
) -> Recognizer:
    """Load a trained experiment directory for decoding."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"experiment directory not found: {exp_dir}")
    cfg = load_config(exp_dir / "config.yaml")
    tokenizer = Tokenizer.load(exp_dir / "tokenizer")
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(exp_dir)
    state = load_checkpoint(ckpt, map_location="cpu")["model"]
    model = ASRModel(cfg.model, tokenizer.vocab_size, cfg.features.num_mel_bins)
    model.load_state_dict(state)
    dev = torch.device(device)
    torch.set_flush_denormal(True)  # denormals slow CPU inference by an order of magnitude
    log.info(f"loaded {ckpt} ({cfg.model.type}) on {dev}")
    return Recognizer(model.to(dev), tokenizer, cfg, dev)
