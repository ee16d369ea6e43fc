"""80-dim log-mel filterbank features: extractor choice and storage.

Two extractors compute the same Kaldi-style fbank: lhotse's torch ``Fbank`` and
kaldi-native-fbank (knf, C++). ``tools/bench_fbank.py`` measured lhotse's ``Fbank`` as ~2.8x
faster on this machine (one thread: 2.0 vs 5.7 s per hour of audio; torch FFTs all frames at
once, knf goes frame by frame), so :func:`make_extractor` returns lhotse's ``Fbank`` by
default. :class:`KnfFbank` (``backend="knf"``) is registered with lhotse, so it works with
``compute_and_store_features`` and manifests made with it reload anywhere knf is installed.

:func:`compute_features` writes features with lhotse storage (``LilcomChunkyWriter``). A cut
whose audio cannot be read (missing, empty, corrupt) is skipped with a warning naming the
file, and counted; the others are written.

Input level: with ``FeatureConfig.level_dbfs`` set, :func:`make_extractor` returns a
:class:`LevelNormalized` extractor, which brings each waveform's speech level to that target
(:func:`casnat.data.level.normalize_level`) before the fbank. The level therefore travels
with the extractor, and every path that makes its extractor from the config (training on the
fly, :func:`compute_features`, CMVN, decoding, :func:`waveform_features` for the Python API)
normalizes the same way without having to pass the target along.

Audio at another rate is resampled by lhotse everywhere: :func:`cut_features` (training,
decoding and transcription compute on-the-fly features through it) and :func:`resample` (for
samples already in memory) use the same ``Resample`` transform as ``Cut.resample``, so one file
gives the same features on every path.

>>> ext = make_extractor(FeatureConfig())
>>> ext.extract(np.zeros(16000, dtype=np.float32), 16000).shape
(100, 80)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lhotse import CutSet, Fbank, FbankConfig, LilcomChunkyWriter
from lhotse.features.base import FeatureExtractor, register_extractor
from lhotse.features.io import FeaturesWriter, NumpyFilesWriter

from casnat.atomic import atomic_write_text
from casnat.config import FeatureConfig
from casnat.data.level import normalize_level
from casnat.errors import UserError, one_line_reason

log = logging.getLogger(__name__)

DEFAULT_FEATURES = FeatureConfig()

#: ``cut.custom`` key under which :func:`compute_features` records the :class:`FeatureConfig`
#: fields that shape stored features, so a later reader can tell they match its own config.
FEATURES_RECORD_KEY = "casnat_features"
_RECORDED_FIELDS = ("sample_rate", "num_mel_bins", "frame_shift", "frame_length", "level_dbfs")


class FeatureMismatchError(UserError):
    """Stored features were computed with another front end than the experiment's config asks
    for (sample rate, mel bins, frame shift/length, input level). Not a ValueError on purpose:
    datasets skip unreadable cuts on ValueError, and a mismatch is the whole manifest's problem,
    so it must stop the run instead of skipping every cut one warning at a time."""


def feature_record(cfg: FeatureConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that change stored features, as stored in ``cut.custom``."""
    return {k: getattr(cfg, k) for k in _RECORDED_FIELDS}


def stored_features_match(cut: Any, cfg: FeatureConfig) -> bool:
    """True when ``cut``'s stored features are what ``cfg`` computes (see
    :func:`check_stored_features`)."""
    try:
        check_stored_features(cut, cfg)
    except FeatureMismatchError:
        return False
    return True


def check_stored_features(cut: Any, cfg: FeatureConfig) -> None:
    """Raise :class:`FeatureMismatchError` naming ``cut`` when its stored features cannot be
    what ``cfg`` would compute.

    Why: stored features are computed once (stage 1) and shared by every model of a recipe; a
    config whose ``features:`` section differs (8 kHz, 40 mel bins, ``level_dbfs``) would
    otherwise train or decode on features it never asked for, with no error, only bad WER.
    Manifests written by :func:`compute_features` carry the config in ``cut.custom``; older
    ones (and other tools') are checked on what lhotse records: feature dimension, sampling
    rate and frame shift.
    """
    f = cut.features
    have: dict[str, Any] = dict((cut.custom or {}).get(FEATURES_RECORD_KEY) or {})
    have.setdefault("num_mel_bins", f.num_features)
    have.setdefault("sample_rate", f.sampling_rate)
    have.setdefault("frame_shift", f.frame_shift)
    want = feature_record(cfg)
    diff = []
    for k in _RECORDED_FIELDS:
        if k not in have:
            continue
        a, b = have[k], want[k]
        same = (a is None and b is None) or (
            a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
        )
        if not same:
            diff.append(f"{k} {a!r} (stored) vs {b!r} (config)")
    if diff:
        where = getattr(f, "storage_path", None) or "?"
        raise FeatureMismatchError(
            f"stored features of cut {cut.id} ({where}) do not match the config's features: "
            f"{'; '.join(diff)}. Recompute them with `casnat features --config <your config>` "
            "(in a recipe: delete the fbank dir's .done markers and rerun stage 1), or set "
            "data.on_the_fly_feats: true"
        )


@dataclass
class KnfFbankConfig:
    """Options of :class:`KnfFbank`; the defaults match lhotse's ``FbankConfig``."""

    sampling_rate: int = 16000
    frame_length: float = 0.025
    frame_shift: float = 0.01
    num_filters: int = 80
    dither: float = 0.0
    low_freq: float = 20.0
    high_freq: float = -400.0
    preemph_coeff: float = 0.97
    window_type: str = "povey"
    snip_edges: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> KnfFbankConfig:
        return KnfFbankConfig(**data)


@register_extractor
class KnfFbank(FeatureExtractor):
    """Kaldi fbank computed by kaldi-native-fbank, usable wherever lhotse takes an extractor.

    ``extract(samples (S,) or (1, S) float32, sampling_rate) -> (T, num_filters) float32`` with
    ``T = (S + hop // 2) // hop`` (``snip_edges=False``), the same frame count lhotse assumes.
    """

    name = "knf-fbank"
    config_type = KnfFbankConfig

    def __init__(self, config: KnfFbankConfig | None = None):
        super().__init__(config=config)
        import kaldi_native_fbank  # noqa: F401  (fail early, in the process that builds it)

    def _options(self) -> Any:
        import kaldi_native_fbank as knf

        c = self.config
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = c.sampling_rate
        opts.frame_opts.frame_length_ms = c.frame_length * 1000.0
        opts.frame_opts.frame_shift_ms = c.frame_shift * 1000.0
        opts.frame_opts.dither = c.dither
        opts.frame_opts.preemph_coeff = c.preemph_coeff
        opts.frame_opts.window_type = c.window_type
        opts.frame_opts.snip_edges = c.snip_edges
        opts.mel_opts.num_bins = c.num_filters
        opts.mel_opts.low_freq = c.low_freq
        opts.mel_opts.high_freq = c.high_freq
        return opts

    @property
    def frame_shift(self) -> float:
        return self.config.frame_shift

    def feature_dim(self, sampling_rate: int) -> int:
        return self.config.num_filters

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        import kaldi_native_fbank as knf

        if sampling_rate != self.config.sampling_rate:
            raise ValueError(
                f"KnfFbank expects {self.config.sampling_rate} Hz audio, got {sampling_rate} Hz "
                "(resample the cuts first: cuts.resample(16000))"
            )
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        fbank = knf.OnlineFbank(self._options())
        # knf follows Kaldi: it expects int16-range amplitudes; lhotse loads [-1, 1] floats.
        fbank.accept_waveform(sampling_rate, x * 32768.0)
        fbank.input_finished()
        n = fbank.num_frames_ready
        out = np.empty((n, self.config.num_filters), dtype=np.float32)
        for i in range(n):
            out[i] = fbank.get_frame(i)
        # Undo the int16 scaling in the log domain so values match lhotse's Fbank.
        out -= np.float32(2.0 * np.log(32768.0))
        return out

    @staticmethod
    def mix(features_a: np.ndarray, features_b: np.ndarray, energy_scaling_factor_b: float):
        return Fbank.mix(features_a, features_b, energy_scaling_factor_b)

    @staticmethod
    def compute_energy(features: np.ndarray) -> float:
        return Fbank.compute_energy(features)


def knf_available() -> bool:
    try:
        import kaldi_native_fbank  # noqa: F401
    except ImportError:
        return False
    return True


class LevelNormalized(FeatureExtractor):
    """``inner`` (an fbank extractor) applied to each waveform after its speech level is brought
    to ``level_dbfs`` (:func:`casnat.data.level.normalize_level`).

    Why a wrapper: every caller already gets its extractor from :func:`make_extractor`, so the
    level step reaches training, stored features, CMVN and decoding without each of them
    passing a target. It reports the inner extractor's ``name``, ``config`` and frame shift,
    so stored features and frame-length checks look as they do without it.

    >>> ext = LevelNormalized(make_extractor(FeatureConfig()), -25.0)
    >>> x = 0.01 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    >>> bool(np.allclose(ext.extract(x, 16000), ext.extract(10 * x, 16000), atol=1e-3))
    True
    """

    config_type = FbankConfig  # unused (never built from a config); lhotse's base wants one

    def __init__(self, inner: FeatureExtractor, level_dbfs: float):
        self.inner = inner
        self.config = inner.config
        self.level_dbfs = float(level_dbfs)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property
    def frame_shift(self) -> float:
        return self.inner.frame_shift

    def feature_dim(self, sampling_rate: int) -> int:
        return self.inner.feature_dim(sampling_rate)

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float32)
        y = normalize_level(x, sampling_rate, target_dbfs=self.level_dbfs).reshape(x.shape)
        return self.inner.extract(y, sampling_rate)

    @staticmethod
    def mix(features_a: np.ndarray, features_b: np.ndarray, energy_scaling_factor_b: float):
        return Fbank.mix(features_a, features_b, energy_scaling_factor_b)

    @staticmethod
    def compute_energy(features: np.ndarray) -> float:
        return Fbank.compute_energy(features)


def make_extractor(
    cfg: FeatureConfig = DEFAULT_FEATURES, backend: str = "auto"
) -> FeatureExtractor:
    """The fbank extractor for ``cfg``: ``backend`` is ``auto`` (= ``lhotse``, the faster one
    in tools/bench_fbank.py), ``lhotse`` or ``knf`` (kaldi-native-fbank, must be importable).
    With ``cfg.level_dbfs`` set it is wrapped in :class:`LevelNormalized`."""
    inner = _fbank_extractor(cfg, backend)
    if cfg.level_dbfs is None:
        return inner
    return LevelNormalized(inner, cfg.level_dbfs)


def _fbank_extractor(cfg: FeatureConfig, backend: str) -> FeatureExtractor:
    if backend not in ("auto", "knf", "lhotse"):
        raise ValueError(f"unknown fbank backend '{backend}' (expected auto, knf or lhotse)")
    if backend == "knf":
        return KnfFbank(
            KnfFbankConfig(
                sampling_rate=cfg.sample_rate,
                frame_length=cfg.frame_length,
                frame_shift=cfg.frame_shift,
                num_filters=cfg.num_mel_bins,
                dither=cfg.dither,
            )
        )
    return Fbank(
        FbankConfig(
            sampling_rate=cfg.sample_rate,
            frame_length=cfg.frame_length,
            frame_shift=cfg.frame_shift,
            num_filters=cfg.num_mel_bins,
            dither=cfg.dither,
        )
    )


def audio_source(cut: Any) -> str:
    """The file(s) a cut reads audio from, for warnings about unreadable audio."""
    try:
        if hasattr(cut, "recording") and cut.recording is not None:
            return ",".join(str(s.source) for s in cut.recording.sources)
        return ",".join(audio_source(t.cut) for t in cut.tracks)
    except AttributeError:
        return cut.id


class AudioCache:
    """Checked, resampled audio of training cuts kept in memory (least recently used out first).

    On-the-fly training features decode and resample every cut again each epoch: for egs/fsdd
    (8 kHz FLAC, resampled to 16 kHz and speed-perturbed by lhotse) that is about half of the
    DataLoader worker's CPU, and on a 2-core machine the worker's CPU is taken from the model's
    step. The cache keeps the float32 samples exactly as :func:`load_audio_checked` returns them
    (so a run that starts with an empty cache, e.g. after a resume, computes the same
    features), keyed by cut id, rate and span. Each DataLoader worker has its own; ``max_mb``
    bounds each one. Augmentation runs on a copy, never on the cached array.
    """

    def __init__(self, max_mb: float) -> None:
        from collections import OrderedDict

        self.max_bytes = int(max_mb * 2**20)
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(cut: Any) -> tuple:
        return (cut.id, int(cut.sampling_rate), float(cut.start), float(cut.duration))

    def get(self, cut: Any) -> np.ndarray | None:
        item = self._items.get(self.key(cut))
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(self.key(cut))
        self.hits += 1
        return item

    def put(self, cut: Any, audio: np.ndarray) -> None:
        if audio.nbytes > self.max_bytes:
            return
        audio.setflags(write=False)  # a caller that forgets to copy fails loudly
        self._items[self.key(cut)] = audio
        self.bytes += audio.nbytes
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= old.nbytes


def load_audio_checked(cut: Any, cache: AudioCache | None = None) -> np.ndarray:
    """Audio of ``cut`` as ``(S,)`` float32; raises ``ValueError`` naming the file when it is
    missing, unreadable, empty or not finite. With ``cache``, a cut read before is not read
    again; the array returned is then read-only (copy it before changing it)."""
    if cache is not None:
        hit = cache.get(cut)
        if hit is not None:
            return hit
    try:
        audio = cut.load_audio()
    except Exception as e:  # lhotse raises many types for bad audio: missing, corrupt, truncated
        reason = one_line_reason(e)
        raise ValueError(
            f"cannot read audio of cut {cut.id} from {audio_source(cut)}: {reason}"
        ) from e
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] > 1:  # a multi-channel cut: mix down to mono
        audio = audio.mean(axis=0)
    audio = audio.reshape(-1)
    if audio.size == 0:
        raise ValueError(f"empty audio in cut {cut.id} from {audio_source(cut)}")
    if not np.isfinite(audio).all():
        raise ValueError(f"non-finite samples in cut {cut.id} from {audio_source(cut)}")
    if cache is not None:
        cache.put(cut, audio)
    return audio


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``(S,)`` or ``(C, S)`` float32 samples at ``to_rate``, by lhotse's ``Resample`` transform
    (the one a resampled cut applies when it loads its audio).

    >>> resample(np.zeros(8000, dtype=np.float32), 8000, 16000).shape
    (16000,)
    """
    from lhotse.augmentation import Resample

    x = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate:
        return x
    y = np.asarray(Resample(from_rate, to_rate)(x.reshape(1, -1) if x.ndim == 1 else x),
                   dtype=np.float32)
    return y.reshape(-1) if x.ndim == 1 else y


def cut_features(
    cut: Any,
    extractor: FeatureExtractor,
    sample_rate: int,
    transform: Callable[[np.ndarray, Any], np.ndarray] | None = None,
    cache: AudioCache | None = None,
) -> np.ndarray:
    """``(T, F)`` features computed from ``cut``'s audio, resampled by lhotse to
    ``sample_rate`` first; raises ``ValueError`` naming the file when the audio is unusable
    (see :func:`load_audio_checked`). ``transform(samples, cut)`` (training augmentation) runs on
    the checked, resampled waveform before the features, on a copy when ``cache`` holds it."""
    if cut.sampling_rate != sample_rate:
        cut = cut.resample(sample_rate)
    samples = load_audio_checked(cut, cache)
    if transform is not None:
        samples = transform(samples.copy() if cache is not None else samples, cut)
    return _extract_checked(samples, cut.sampling_rate, extractor, audio_source(cut))


def _extract_checked(
    samples: np.ndarray, sampling_rate: int, extractor: FeatureExtractor, source: str
) -> np.ndarray:
    """``extractor.extract``, after checking there is at least one analysis window of audio
    (the fbank backends fail with a shape error, not a message, on less)."""
    frame_length = getattr(
        getattr(extractor, "config", None), "frame_length", DEFAULT_FEATURES.frame_length
    )
    need = int(round(frame_length * sampling_rate))
    if samples.shape[-1] < need:
        raise ValueError(
            f"{source}: audio too short ({samples.shape[-1]} samples at "
            f"{sampling_rate} Hz; one feature frame needs {need})"
        )
    return extractor.extract(samples, sampling_rate)


def waveform_features(
    samples: np.ndarray,
    sampling_rate: int,
    extractor: FeatureExtractor,
    features_cfg: FeatureConfig = DEFAULT_FEATURES,
    source: str = "<samples>",
) -> np.ndarray:
    """``(T, F)`` float32 features of a waveform already in memory, as :func:`cut_features`
    computes them for a file: mono (channels averaged), resampled by lhotse to
    ``features_cfg.sample_rate``, level-normalized to ``features_cfg.level_dbfs`` when that is
    set, and checked to hold one feature frame (``ValueError`` naming ``source`` otherwise).

    ``extractor`` normally comes from ``make_extractor(features_cfg)`` and then normalizes the
    level itself; a plain fbank extractor passed with a config that asks for a level is wrapped
    here, so the config's level is applied exactly once either way.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    x = resample(x.reshape(-1), sampling_rate, features_cfg.sample_rate)
    if features_cfg.level_dbfs is not None and not isinstance(extractor, LevelNormalized):
        extractor = LevelNormalized(extractor, features_cfg.level_dbfs)
    feats = _extract_checked(x, features_cfg.sample_rate, extractor, source)
    return np.asarray(feats, dtype=np.float32)


def _one_thread() -> None:
    """Worker initializer: one torch thread per job, so num_jobs jobs use num_jobs cores."""
    import torch

    torch.set_num_threads(1)


def _writer(storage_path: str) -> FeaturesWriter:
    """LilcomChunkyWriter (compact, one file per job); plain .npy files if lilcom is missing."""
    try:
        import lilcom  # noqa: F401
    except ImportError:
        log.warning("lilcom not installed (pip install lilcom): storing features as .npy files")
        return NumpyFilesWriter(storage_path)
    return LilcomChunkyWriter(storage_path)


def _extract_shard(
    cuts: list[Any],
    extractor: FeatureExtractor,
    storage_path: str,
    record: dict[str, Any] | None = None,
) -> tuple[list[Any], list[str]]:
    """Worker: extract and store features of ``cuts``; returns (cuts with features, skipped)."""
    from lhotse.features import Features
    from lhotse.utils import fastcopy

    done, skipped = [], []
    with _writer(storage_path) as writer:
        for cut in cuts:
            try:
                audio = load_audio_checked(cut)
            except ValueError as e:
                log.warning("skipping cut: %s", e)
                skipped.append(str(e))
                continue
            feats = extractor.extract(audio, cut.sampling_rate)
            key = writer.write(cut.id, feats)
            features = Features(
                recording_id=cut.recording_id,
                channels=0,
                start=cut.start,
                duration=cut.duration,
                type=extractor.name,
                num_frames=feats.shape[0],
                num_features=feats.shape[1],
                frame_shift=extractor.frame_shift,
                sampling_rate=cut.sampling_rate,
                storage_type=writer.name,
                storage_path=str(writer.storage_path),
                storage_key=key,
            )
            custom = dict(cut.custom or {})
            if record is not None:
                custom[FEATURES_RECORD_KEY] = record
            done.append(fastcopy(cut, features=features, custom=custom or None))
    return done, skipped


def compute_features(
    cuts_path: str | Path,
    out_dir: str | Path,
    speed_perturb: tuple[float, ...] | None = (0.9, 1.0, 1.1),
    num_jobs: int = 1,
    cfg: FeatureConfig = DEFAULT_FEATURES,
    backend: str = "auto",
    out_name: str | None = None,
) -> Path:
    """Extract fbank for every cut of ``cuts_path`` and write a cuts manifest that points at them.

    Audio is resampled to ``cfg.sample_rate``; with ``speed_perturb`` each cut appears once per
    factor (factor 1.0 keeps the original id, others get lhotse's ``_sp{factor}`` suffix).
    Features go to ``out_dir/feats_{name}_{job}.lca`` and the manifest to
    ``out_dir/{name}.jsonl.gz`` (``name`` = ``out_name`` or the input's stem), which is
    returned. Unreadable audio is skipped with a warning naming the file; the count is logged
    and stored in ``out_dir/{name}.skipped.txt``. Each cut records ``cfg``'s front-end fields
    in ``cut.custom`` so readers can refuse features made for another config
    (:func:`check_stored_features`).

    >>> compute_features("data/manifests/cuts_train.jsonl.gz", "data/fbank")  # doctest: +SKIP
    PosixPath('data/fbank/cuts_train.jsonl.gz')
    """
    cuts_path, out_dir = Path(cuts_path), Path(out_dir)
    if not cuts_path.is_file():
        raise FileNotFoundError(f"cuts manifest not found: {cuts_path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    name = out_name or cuts_path.name.replace(".jsonl.gz", "").replace(".jsonl", "")
    cuts = CutSet.from_file(cuts_path).resample(cfg.sample_rate)
    if speed_perturb:
        parts = [cuts if f == 1.0 else cuts.perturb_speed(f) for f in speed_perturb]
        cuts = CutSet.from_cuts(c for part in parts for c in part)
    cut_list = list(cuts)
    extractor = make_extractor(cfg, backend)
    record = feature_record(cfg)
    num_jobs = max(1, min(num_jobs, len(cut_list)))
    shards = [cut_list[i::num_jobs] for i in range(num_jobs)]
    paths = [str(out_dir / f"feats_{name}_{i}") for i in range(num_jobs)]
    if num_jobs == 1:
        results = [_extract_shard(shards[0], extractor, paths[0], record)]
    else:
        with ProcessPoolExecutor(num_jobs, initializer=_one_thread) as pool:
            results = list(pool.map(_extract_shard, shards, [extractor] * num_jobs, paths,
                                    [record] * num_jobs))
    done = [c for r in results for c in r[0]]
    skipped = [s for r in results for s in r[1]]
    by_id = {c.id: c for c in done}
    ordered = [by_id[c.id] for c in cut_list if c.id in by_id]
    out_path = out_dir / f"{name}.jsonl.gz"
    CutSet.from_cuts(ordered).to_file(out_path)
    atomic_write_text(out_dir / f"{name}.skipped.txt", "".join(s + "\n" for s in skipped))
    if skipped:
        log.warning("compute_features: skipped %d of %d cuts (unreadable audio), see %s",
                    len(skipped), len(cut_list), out_dir / f"{name}.skipped.txt")
    log.info("compute_features: wrote %d cuts to %s", len(ordered), out_path)
    return out_path
