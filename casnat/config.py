"""Dataclass configs for every casnat component.

YAML keys are the field names; an unknown or misspelt key is an error that names the key
and the file, because a silently ignored typo in a training config costs a whole run.

>>> cfg = ExperimentConfig()
>>> cfg.model.encoder.d_model
144
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from casnat.errors import UserError


class ConfigError(UserError, ValueError):
    """A config file or key is missing or wrong; the message names which."""


@dataclass(frozen=True)
class FeatureConfig:
    """80-dim log-mel filterbank at 16 kHz (the paper's front end).

    ``level_dbfs``: bring each utterance's active-speech level to this many dBFS before its
    features are computed (casnat.data.level.normalize_level), on every path where waveforms
    become features (training on the fly, ``casnat features``, decoding, the Python API).
    Log-mel features shift with input gain, so a model hears a recording 20 dB quieter than its
    training data as a different input; normalizing removes that. None (the default) = off, as
    models trained before this option expect. -25 is FSDD's median training level
    (casnat.data.level.DEFAULT_LEVEL_DBFS).
    """

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_shift: float = 0.01
    frame_length: float = 0.025
    dither: float = 0.0
    level_dbfs: float | None = None

    def __post_init__(self) -> None:
        lv = self.level_dbfs
        if lv is not None and not (isinstance(lv, int | float) and -80.0 <= lv < 0.0):
            raise ConfigError(
                f"features.level_dbfs: expected a level in dBFS in [-80, 0) or null (off), "
                f"got {lv!r}"
            )


@dataclass(frozen=True)
class TokenizerConfig:
    """Output units. ``kind`` is a sentencepiece model type, ``char`` or ``word``.

    Id layout (see casnat.data.tokenizer): 0 = CTC blank, 1 = <unk>, V-1 = <sos/eos>.
    """

    kind: Literal["unigram", "bpe", "char", "word"] = "unigram"
    vocab_size: int = 256


@dataclass(frozen=True)
class SpecAugmentConfig:
    num_freq_masks: int = 2
    freq_mask_width: int = 27
    num_time_masks: int = 2
    time_mask_ratio: float = 0.05


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly waveform augmentation of training cuts (see casnat.data.augment).

    Each transform fires with its own probability (0 = off, the default); ranges are
    ``(low, high)`` drawn uniformly. The chain is reverberation -> additive noise -> telephone
    channel -> gain -> clip to [-1, 1]. Needs ``data.on_the_fly_feats: true`` (stored features
    have no waveform). Draws are seeded per (train seed, epoch, cut id), so a resumed run
    reproduces them and DataLoader workers share no state.
    """

    gain_prob: float = 0.0
    gain_db: tuple[float, float] = (-20.0, 10.0)
    noise_prob: float = 0.0
    snr_db: tuple[float, float] = (0.0, 30.0)  # speech-to-noise power over the whole cut
    # white / pink / brown: 1/f^alpha noise (alpha 0, 1, 2); babble: 3-7 other cuts of the batch.
    noise_types: tuple[str, ...] = ("white", "pink", "brown", "babble")
    babble_speakers: tuple[int, int] = (3, 7)
    reverb_prob: float = 0.0
    rt60: tuple[float, float] = (0.2, 0.8)  # seconds for the synthetic RIR tail to fall 60 dB
    drr_db: tuple[float, float] = (0.0, 12.0)  # direct-to-reverberant energy ratio
    telephone_prob: float = 0.0  # 300-3400 Hz band-pass and a round trip through 8 kHz
    mu_law_prob: float = 0.5  # of the telephone cuts, those also quantized to 8-bit mu-law

    def __post_init__(self) -> None:
        for name in ("gain_prob", "noise_prob", "reverb_prob", "telephone_prob", "mu_law_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"data.augment.{name}: expected a probability in [0, 1], got {p}")
        for name in ("gain_db", "snr_db", "babble_speakers", "rt60", "drr_db"):
            r = getattr(self, name)
            if len(r) != 2 or r[0] > r[1]:
                raise ConfigError(f"data.augment.{name}: expected [low, high] with low <= high, "
                                  f"got {list(r)}")
        if self.rt60[0] <= 0 or self.babble_speakers[0] < 1:
            raise ConfigError("data.augment: rt60 must be > 0 s and babble_speakers >= 1")
        unknown = sorted(set(self.noise_types) - {"white", "pink", "brown", "babble"})
        if unknown or not self.noise_types:
            raise ConfigError(f"data.augment.noise_types: unknown or empty {unknown or '[]'} "
                              "(valid: white, pink, brown, babble)")

    @property
    def enabled(self) -> bool:
        return max(self.gain_prob, self.noise_prob, self.reverb_prob, self.telephone_prob) > 0


@dataclass(frozen=True)
class DataConfig:
    """Where the lhotse manifests are and how batches are drawn from them.

    Paths are relative to the directory the command runs in (the recipe dir).
    """

    train_cuts: str = "data/fbank/cuts_train.jsonl.gz"
    dev_cuts: str = "data/fbank/cuts_dev.jsonl.gz"
    max_duration: float = 200.0  # seconds of audio per batch (before accumulation)
    num_buckets: int = 10
    shuffle: bool = True
    spec_augment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)
    on_the_fly_feats: bool = False  # compute fbank in the dataloader instead of reading storage
    num_workers: int = 0
    # Check every manifest line before training (one streaming pass, a malformed line is one
    # error naming file:line). Costs start-up time proportional to the corpus (8.7 s per 50k
    # cuts here, under load: ~3 min per million); false for a large, already-checked corpus.
    check_manifests: bool = True
    augment: AugmentConfig | None = None  # waveform augmentation (needs on_the_fly_feats)
    # With on_the_fly_feats: MiB of decoded, resampled training audio each DataLoader worker
    # keeps in memory, so later epochs skip decoding and resampling (0 = off; the whole of
    # egs/fsdd's train set is ~1.3 GB). Exact: the same samples as a fresh read.
    audio_cache_mb: float = 0.0


@dataclass(frozen=True)
class EncoderConfig:
    """The encoder. ``type`` names its builder in ``casnat.models.encoder.ENCODERS``; the other
    fields are the Conformer's: conv2d subsampling x4, macaron FFN, rel-pos MHSA, conv module.

    ``type`` may be absent from a YAML file (configs saved before it existed): ``conformer``.
    """

    type: Literal["conformer"] = "conformer"
    input_dim: int = 80
    d_model: int = 144
    num_heads: int = 4
    ffn_dim: int = 576
    num_layers: int = 6
    conv_kernel: int = 15
    dropout: float = 0.1
    inter_ctc_layer: int | None = None  # 1-based layer whose output feeds the InterCTC head
    subsampling_channels: int | None = None  # conv2d front-end channels (None = d_model)
    conv_norm: Literal["batch_norm", "layer_norm"] = "batch_norm"  # norm inside the conv module


@dataclass(frozen=True)
class ATDecoderConfig:
    """Autoregressive transformer decoder (baseline and ESA ranker)."""

    num_layers: int = 3
    num_heads: int = 4
    ffn_dim: int = 576
    dropout: float = 0.1


@dataclass(frozen=True)
class NATDecoderConfig:
    """CASS-NAT decoder: TAE extractor, self-attention blocks, mixed-attention blocks."""

    left_trigger: int = 1
    right_trigger: int = 1
    num_sa_layers: int = 3
    num_mixed_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 576
    conv_kernel: int = 3
    max_rel_pos: int = 8
    dropout: float = 0.1
    # LayerNorm: short, heavily padded token sequences would skew BatchNorm statistics.
    conv_norm: Literal["batch_norm", "layer_norm"] = "layer_norm"


@dataclass(frozen=True)
class LossConfig:
    """Weights of the iterated loss (docs/method.md)."""

    ctc: float = 0.5
    inter_ctc: float = 0.5
    ce: float = 1.0
    inter_ce: float = 0.01
    at: float = 0.3  # AT decoder CE weight when an AT decoder is trained beside CTC / NAT
    label_smoothing: float = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """``type``: ``ctc`` (encoder + CTC), ``at`` (CTC + AT decoder), ``cassnat`` (CTC + NAT,
    plus an AT decoder as ESA ranker when ``at_decoder`` is set)."""

    type: Literal["ctc", "at", "cassnat"] = "ctc"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    at_decoder: ATDecoderConfig | None = None
    nat_decoder: NATDecoderConfig | None = None
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    peak_lr: float = 1e-3
    warmup_steps: int = 1000
    # noam: linear warm-up, then peak * sqrt(warmup / step) (no end point needed).
    # cosine: linear warm-up, then a half cosine from peak to peak * min_lr_ratio at max_steps;
    # for a fixed budget, ending at a small LR gives a better last model than stopping mid-decay.
    lr_schedule: Literal["noam", "cosine"] = "noam"
    min_lr_ratio: float = 0.0
    max_epochs: int = 50
    max_steps: int | None = None
    max_minutes: float | None = None  # wall-clock budget; training stops cleanly when spent
    grad_clip: float = 5.0
    accum_grad: int = 1
    weight_decay: float = 1e-6
    # Mixed precision: on CUDA bf16 (fp16 + GradScaler where bf16 is unsupported); on CPU bf16
    # autocast where the CPU has native bf16 (AVX512-BF16/AMX), else fp32 (casnat.train.precision).
    amp: bool = True
    # auto: as above; bf16: bf16 even where emulated; fp16: CUDA only; fp32: no autocast.
    # The environment variable CASNAT_CPU_BF16=0 forces fp32 on CPU whatever this says.
    amp_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    log_interval: int = 20
    checkpoint_every_steps: int = 500
    keep_last: int = 10  # epoch checkpoints kept for averaging
    num_threads: int | None = None  # torch intra-op threads on CPU; None = torch default
    # Optimizer steps whose loss or gradient norm is NaN/Inf are skipped (no update) and counted;
    # this many in a row stop training with an error, because a run that only produces NaN
    # would otherwise burn its whole budget and save useless checkpoints. 0 = never stop.
    # With fp16 (GradScaler) an overflowing gradient is the scaler's business (it lowers its
    # scale and skips the step itself); only a non-finite loss counts there.
    max_nonfinite_steps: int = 20


@dataclass(frozen=True)
class ExperimentConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys by name."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}' (valid keys: {', '.join(sorted(names))})"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = _unwrap_optional(hints[name])
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            kwargs[name] = None if value is None else from_dict(tp, value, f"{where}.{name}")
        else:
            kwargs[name] = _checked(value, hints[name], f"{where}.{name}")
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it fits the field's type ``hint`` (ints for floats and lists for tuples are
    converted), else a ConfigError naming the key: a wrong type must stop a run at load time,
    not as a TypeError hours into training (``max_steps: three``)."""
    tp = _unwrap_optional(hint)
    if value is None:
        if tp is not hint or hint is type(None):
            return None
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got null")
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_checked(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected a list of {len(args)}, got {list(value)}")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(_checked(v, a, f"{where}[{i}]") for i, (v, a) in pairs)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:
        ok = True  # a type this check does not model: left to the dataclass
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config (YAML- and checkpoint-safe)."""
    return dataclasses.asdict(cfg)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read an experiment YAML; errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid YAML: not UTF-8 text ({e.reason})") from None
    return from_dict(ExperimentConfig, raw, where=str(path))


def _yaml_problem(e: yaml.YAMLError) -> str:
    """One line: where (line:column, 1-based) and what, out of PyYAML's multi-line message."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).strip().splitlines()[0]
    context = getattr(e, "context", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{at}{problem}" + (f" ({context})" if context else "")


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML atomically: a run killed while writing leaves the old file whole."""
    from casnat.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
