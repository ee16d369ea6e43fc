"""Robustness benchmark: WER under level, noise, room and channel changes, models side by side.

A model that scores 0.2% on its clean test split can fall apart on a recording 20 dB quieter or
in a noisy room (issue 17). This module builds such conditions from a recipe's own test split,
never from training data, and decodes each with one or more models and modes, so the table
shows how much each degradation costs and whether augmentation or input level normalization
(``features.level_dbfs``) buys it back. ``casnat bench-robust`` prints the table.

Conditions (:class:`Condition`, spec strings as on the command line):

- ``clean``: the test audio as it is;
- ``gain:DB``: scaled by DB dB, then clipped to [-1, 1] as an ADC saturates (``gain:10`` on a
  loud clip clips its peaks);
- ``white:SNR`` / ``babble:SNR``: white Gaussian noise, or babble (the sum of
  ``babble_talkers`` = 5 other utterances of the same test split by speakers other than the
  utterance's own, each at unit RMS, from :func:`casnat.data.augment.babble`), added at SNR dB
  (speech power over noise power over the whole utterance, exact on the result before
  clipping);
- ``reverb:RT60``: convolution with a synthetic room impulse response
  (:func:`casnat.data.augment.synthetic_rir`: direct path + exponential tail, RT60 seconds,
  direct-to-reverberant ratio ``drr_db`` = 3 dB);
- ``telephone``: 300-3400 Hz band-pass, 8 kHz round trip and 8-bit mu-law
  (:func:`casnat.data.augment.telephone`).

Every random draw comes from a generator seeded by ``(seed, condition spec, cut id)``, so a
condition is the same audio in every run, whichever models, modes or other conditions are
benchmarked with it.

Efficiency: conditions are built one at a time (the waveforms of one condition, not of all,
are held in memory); for each, features are computed once per distinct feature config among
the columns (two models with the same front end share them; level normalization on and off
are two configs), then every (model, level, mode) column decodes them in length-sorted
padded batches, the encoder and CTC head run once per batch for all of a model's modes (as
:func:`casnat.decode.runner.decode_batch` runs them), then each mode's search. The clean
waveforms of the split are loaded once.

>>> conds = parse_conditions(["clean", "gain:-20", "babble:10", "reverb:0.6", "telephone"])
>>> [c.label for c in conds]
['clean', 'gain -20 dB', 'babble SNR 10 dB', 'reverb RT60 0.6 s', 'telephone']
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from casnat.config import ConfigError, FeatureConfig
from casnat.data.augment import (
    add_noise,
    apply_gain,
    babble,
    coloured_noise,
    reverberate,
    synthetic_rir,
    telephone,
)
from casnat.data.features import load_audio_checked, make_extractor, waveform_features
from casnat.data.level import DEFAULT_LEVEL_DBFS, speech_level_dbfs
from casnat.decode.modes import DecodeOptions, check_mode, get_mode
from casnat.decode.scoring import score_wer
from casnat.errors import UserError

if TYPE_CHECKING:
    from casnat.inference import Recognizer

log = logging.getLogger(__name__)

KINDS = ("clean", "gain", "white", "babble", "reverb", "telephone")
#: The default grid: issue 17's gains, SNRs, two rooms and the telephone channel (14 conditions).
DEFAULT_CONDITIONS = (
    "clean",
    "gain:-30",
    "gain:-20",
    "gain:-10",
    "gain:10",
    "white:20",
    "white:10",
    "white:5",
    "babble:20",
    "babble:10",
    "babble:5",
    "reverb:0.3",
    "reverb:0.6",
    "telephone",
)


class ConditionError(UserError, ValueError):
    """A condition cannot be made: a malformed spec, or babble without another speaker; the
    message says which and why."""


@dataclass(frozen=True)
class Condition:
    """One test condition: ``kind`` (see :data:`KINDS`) and its ``value`` (dB of gain, SNR dB,
    RT60 seconds; None for clean and telephone)."""

    kind: str
    value: float | None = None

    @property
    def spec(self) -> str:
        """``kind[:value]`` as parsed by :func:`parse_condition`; also the seed's name."""
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"

    @property
    def label(self) -> str:
        """Row name in the table."""
        if self.kind == "gain":
            return f"gain {self.value:+g} dB".replace("+-", "-")
        if self.kind in ("white", "babble"):
            return f"{self.kind} SNR {self.value:g} dB"
        if self.kind == "reverb":
            return f"reverb RT60 {self.value:g} s"
        return self.kind


def parse_condition(spec: str) -> Condition:
    """``clean``, ``telephone``, ``gain:DB``, ``white:SNR``, ``babble:SNR``, ``reverb:RT60``."""
    kind, _, raw = spec.strip().partition(":")
    if kind not in KINDS:
        raise ConditionError(
            f"condition '{spec}': unknown kind '{kind}' (valid: {', '.join(KINDS)})"
        )
    if kind in ("clean", "telephone"):
        if raw:
            raise ConditionError(f"condition '{spec}': {kind} takes no value")
        return Condition(kind)
    try:
        value = float(raw)
    except ValueError:
        raise ConditionError(
            f"condition '{spec}': expected {kind}:NUMBER (e.g. {kind}:10)"
        ) from None
    if not math.isfinite(value) or (kind == "reverb" and value <= 0):
        raise ConditionError(f"condition '{spec}': the value must be finite (RT60 > 0 s)")
    return Condition(kind, value)


def parse_conditions(specs: Iterable[str]) -> list[Condition]:
    """Parsed conditions in the given order, duplicates dropped."""
    out: list[Condition] = []
    for spec in specs:
        c = parse_condition(spec)
        if c not in out:
            out.append(c)
    if not out:
        raise ConditionError("no conditions given")
    return out


def condition_rng(seed: int, cond: Condition, cut_id: str) -> np.random.Generator:
    """Generator that depends only on ``(seed, cond.spec, cut_id)`` (stable hashes, not
    Python's salted ``hash``)."""
    words = [int(seed) & 0xFFFFFFFF]
    for text in (cond.spec, cut_id):
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
        words.append(int.from_bytes(digest, "little"))
    return np.random.default_rng(np.random.SeedSequence(words))


def _speaker(cut: Any) -> str | None:
    sups = getattr(cut, "supervisions", None) or []
    return sups[0].speaker if sups else None


class ConditionBuilder:
    """Makes the waveform of every test cut under every condition, from those cuts alone.

    ``cuts``: the test split (lhotse cuts with recordings); their audio is read once, at
    ``sampling_rate``, and kept. Babble for a cut is mixed from other cuts of this same split
    whose speaker differs (all other cuts when speakers are unknown), so no audio outside the
    test split enters a condition. Cuts whose audio is unusable are left out with a warning
    naming the file (:attr:`skipped`).
    """

    def __init__(
        self,
        cuts: Sequence[Any],
        sampling_rate: int,
        seed: int = 0,
        babble_talkers: int = 5,
        drr_db: float = 3.0,
    ) -> None:
        self.sampling_rate = sampling_rate
        self.seed = seed
        self.babble_talkers = babble_talkers
        self.drr_db = drr_db
        self.cuts: dict[str, Any] = {}
        self.clean: dict[str, np.ndarray] = {}
        self.skipped: list[str] = []
        for cut in cuts:
            c = cut if cut.sampling_rate == sampling_rate else cut.resample(sampling_rate)
            try:
                self.clean[cut.id] = load_audio_checked(c)
            except ValueError as e:
                log.warning("bench-robust: leaving out %s", e)
                self.skipped.append(str(e))
                continue
            self.cuts[cut.id] = cut
        self._ids = sorted(self.cuts)

    def babble_sources(self, cut_id: str, rng: np.random.Generator) -> list[str]:
        """Ids of up to ``babble_talkers`` other cuts of the split, by other speakers, drawn
        with ``rng``."""
        spk = _speaker(self.cuts[cut_id])
        pool = [
            i for i in self._ids if i != cut_id and (spk is None or _speaker(self.cuts[i]) != spk)
        ]
        k = min(self.babble_talkers, len(pool))
        if k == 0:
            return []
        return [pool[j] for j in sorted(rng.choice(len(pool), size=k, replace=False))]

    def apply(self, cond: Condition, cut_id: str) -> np.ndarray:
        """(S,) float32 waveform of cut ``cut_id`` under ``cond``, clipped to [-1, 1]."""
        x = self.clean[cut_id].astype(np.float64)
        sr = self.sampling_rate
        rng = condition_rng(self.seed, cond, cut_id)
        if cond.kind == "gain":
            x = apply_gain(x, float(cond.value))
        elif cond.kind == "white":
            x = add_noise(x, coloured_noise(x.size, 0.0, rng), float(cond.value))
        elif cond.kind == "babble":
            ids = self.babble_sources(cut_id, rng)
            if not ids:
                raise ConditionError(
                    f"babble for {cut_id}: no other speaker's cut in the test split to mix from"
                )
            noise = babble(x.size, [self.clean[i] for i in ids], rng)
            x = add_noise(x, noise, float(cond.value))
        elif cond.kind == "reverb":
            x = reverberate(x, synthetic_rir(sr, float(cond.value), self.drr_db, rng))
        elif cond.kind == "telephone":
            x = telephone(x, sr, use_mu_law=True)
        return np.clip(x, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- columns, the run


def level_setting(text: str) -> str | float:
    """``--level-dbfs`` value: ``model`` (the model's own features.level_dbfs), ``off``,
    ``on`` (= :data:`casnat.data.level.DEFAULT_LEVEL_DBFS`) or a level in dBFS."""
    t = str(text).strip().lower()
    if t in ("model", "off"):
        return t
    if t == "on":
        return DEFAULT_LEVEL_DBFS
    try:
        value = float(t)
    except ValueError:
        raise ConfigError(
            f"--level-dbfs '{text}': expected model, off, on or a level in dBFS (e.g. -25)"
        ) from None
    FeatureConfig(level_dbfs=value)  # the config's own range check
    return value


def level_label(level_dbfs: float | None) -> str:
    return "level off" if level_dbfs is None else f"level {level_dbfs:g} dBFS"


@dataclass
class Column:
    """One (model, input level, mode) column of the table."""

    model: str
    rec: Recognizer
    features: FeatureConfig
    mode: str

    @property
    def title(self) -> str:
        return f"{self.model} {level_label(self.features.level_dbfs)} {self.mode}"


@dataclass(frozen=True)
class RobustConfig:
    """What ``casnat bench-robust`` measures; ``opts`` holds the search options (its ``mode``
    is replaced by each of ``modes``)."""

    cuts: Path
    exp_dirs: tuple[Path, ...]
    checkpoints: tuple[Path | None, ...] = ()
    modes: tuple[str, ...] = ("ctc_greedy", "cassnat")
    levels: tuple[str | float, ...] = ("model",)
    conditions: tuple[Condition, ...] = field(
        default_factory=lambda: tuple(parse_conditions(DEFAULT_CONDITIONS))
    )
    seed: int = 0
    max_utts: int | None = None
    batch_size: int = 32
    max_duration: float = 200.0  # padded seconds of audio per batch
    device: str = "cpu"
    opts: DecodeOptions = field(default_factory=DecodeOptions)
    babble_talkers: int = 5
    drr_db: float = 3.0


@dataclass
class RobustResult:
    """WER (fraction) per condition label and column title, plus what the header says."""

    header: str
    conditions: list[Condition]
    columns: list[str]
    wer: dict[tuple[str, str], float]
    level_dbfs: dict[str, float] = field(default_factory=dict)  # condition -> median level

    def markdown(self) -> str:
        """The header and one table: a row per condition (with the median speech level of its
        audio), a column per (model, level, mode), WER %; then the worst gain condition's WER
        as a multiple of clean (issue 17's level target: within 1.5x)."""
        names = ["speech level dBFS", *self.columns]
        lines = [self.header, "", "| condition | " + " | ".join(names) + " |"]
        lines.append("|---|" + "---:|" * len(names))
        for c in self.conditions:
            level = self.level_dbfs.get(c.label, float("nan"))
            wers = [f"{100 * self.wer[c.label, col]:.2f}" for col in self.columns]
            cells = [f"{level:.1f}", *wers]
            lines.append(f"| {c.label} | " + " | ".join(cells) + " |")
        gains = [c for c in self.conditions if c.kind == "gain"]
        if gains and any(c.kind == "clean" for c in self.conditions):
            cells = []
            for col in self.columns:
                worst = max(self.wer[c.label, col] for c in gains)
                clean = self.wer["clean", col]
                cells.append(
                    f"{worst / clean:.2f}x" if clean > 0 else ("1.00x" if worst == 0 else "inf")
                )
            lines.append("| worst gain / clean | | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _model_names(exp_dirs: Sequence[Path]) -> list[str]:
    """Column names: the exp dirs' names, with parents added where two names clash."""
    names = [p.name or str(p) for p in exp_dirs]
    if len(set(names)) < len(names):
        names = [str(p) for p in exp_dirs]
    return names


def _columns(cfg: RobustConfig, recs: list[Recognizer]) -> list[Column]:
    cols: list[Column] = []
    for name, rec in zip(_model_names(cfg.exp_dirs), recs, strict=True):
        own = rec.cfg.features
        settings: list[FeatureConfig] = []
        for lv in cfg.levels:
            target = own.level_dbfs if lv == "model" else (None if lv == "off" else float(lv))
            fc = dataclasses.replace(own, level_dbfs=target)
            if fc not in settings:
                settings.append(fc)
        for fc in settings:
            for mode in cfg.modes:
                try:
                    check_mode(rec.model, mode)
                except ValueError as e:
                    log.warning("bench-robust: %s: skipping mode %s: %s", name, mode, e)
                    continue
                cols.append(Column(name, rec, fc, mode))
    if not cols:
        raise UserError("bench-robust: no (model, mode) to decode with")
    return cols


def _groups(cols: list[Column]) -> list[tuple[Recognizer, FeatureConfig, list[Column]]]:
    """Columns grouped by (model, feature config), in column order: each group's modes share
    one encoder pass."""
    out: list[tuple[Recognizer, FeatureConfig, list[Column]]] = []
    for col in cols:
        for rec, fc, group in out:
            if rec is col.rec and fc == col.features:
                group.append(col)
                break
        else:
            out.append((col.rec, col.features, [col]))
    return out


def _load_cuts(path: Path, max_utts: int | None) -> list[Any]:
    from lhotse import CutSet

    if not path.is_file():
        raise UserError(f"cuts manifest not found: {path}")
    if "test" not in path.name:
        log.warning(
            "bench-robust: %s does not look like a test split; conditions (babble too) "
            "are built from the cuts given, so give the recipe's test split",
            path,
        )
    cuts = []
    for cut in CutSet.from_file(path):
        if getattr(cut, "recording", None) is None:
            raise UserError(
                f"{path}: cut {cut.id} has no recording: the conditions are made "
                "from the waveform, so the manifest must point at the audio"
            )
        cuts.append(cut)
    if not cuts:
        raise UserError(f"{path}: no cuts")
    return cuts[:max_utts] if max_utts else cuts


def _median_level(waves: Iterable[np.ndarray], sr: int) -> float:
    """Median speech level (casnat.data.level.speech_level_dbfs) of the condition's audio, as
    the model's input sees it before any normalization: a check that the gains are what they
    say."""
    values = [v for v in (speech_level_dbfs(w, sr) for w in waves) if math.isfinite(v)]
    return float(np.median(values)) if values else float("-inf")


def _features(
    waves: dict[str, np.ndarray], sr: int, ext: Any, fc: FeatureConfig, min_frames: int
) -> dict[str, torch.Tensor]:
    """Features of every waveform long enough for the encoder, on one torch thread: fbank of
    one utterance is many small ops, and more threads only add synchronization (measured on
    this 2-core machine under load: 2.2 s with 2 threads against 0.34 s with 1 for 100
    utterances)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        feats: dict[str, torch.Tensor] = {}
        for cid, w in waves.items():
            f = waveform_features(w, sr, ext, fc, source=cid)
            if f.shape[0] >= min_frames:
                feats[cid] = torch.from_numpy(f)
        return feats
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def _decode(
    rec: Recognizer, modes: Sequence[str], feats: dict[str, torch.Tensor], cfg: RobustConfig
) -> dict[str, dict[str, str]]:
    """Hypothesis texts per mode, per cut id: length-sorted padded batches; the encoder and
    CTC head run once per batch for all ``modes`` (what :func:`decode_batch` does per mode),
    then each mode's search."""
    from casnat.decode.benchmark import Utterance, make_batches

    utts = [Utterance(i, "", f) for i, f in feats.items()]
    max_frames = cfg.max_duration / rec.cfg.features.frame_shift
    hyps: dict[str, dict[str, str]] = {m: {} for m in modes}
    for group, x, lens in make_batches(utts, cfg.batch_size, max_frames, rec.device):
        enc = rec.model.encode(x, lens)
        log_probs = rec.model.ctc(enc.out)
        for mode in modes:
            opts = dataclasses.replace(cfg.opts, mode=mode)
            out = get_mode(mode).search(rec.model, enc.out, enc.lens, log_probs, opts)
            for u, h in zip(group, out, strict=True):
                hyps[mode][u.cut_id] = rec.tokenizer.decode(h.tokens)
    return hyps


def run_robustness(cfg: RobustConfig, recs: list[Recognizer] | None = None) -> RobustResult:
    """Load the models (unless given as ``recs``, one per exp dir) and the test cuts, then
    decode every condition with every column; logs progress per condition."""
    for mode in cfg.modes:  # a misspelt mode is an error naming the known ones, not a skip
        get_mode(mode)
    if recs is None:
        from casnat.inference import load_model

        ckpts = list(cfg.checkpoints) + [None] * (len(cfg.exp_dirs) - len(cfg.checkpoints))
        if len(ckpts) > len(cfg.exp_dirs):
            raise UserError("bench-robust: more --checkpoint than --exp-dir values")
        recs = [load_model(d, c, cfg.device) for d, c in zip(cfg.exp_dirs, ckpts, strict=True)]
    cols = _columns(cfg, recs)
    cuts = _load_cuts(cfg.cuts, cfg.max_utts)
    sr = cols[0].features.sample_rate
    builder = ConditionBuilder(cuts, sr, cfg.seed, cfg.babble_talkers, cfg.drr_db)
    refs = {
        cid: " ".join(s.text for s in c.supervisions if s.text) for cid, c in builder.cuts.items()
    }
    min_frames = max(r.model.encoder.min_input_frames for r in recs)
    extractors = {}
    wer: dict[tuple[str, str], float] = {}
    levels: dict[str, float] = {}
    t_start = time.perf_counter()
    for k, cond in enumerate(cfg.conditions, 1):
        t0 = time.perf_counter()
        waves = {cid: builder.apply(cond, cid) for cid in refs}
        levels[cond.label] = _median_level(waves.values(), sr)
        t1 = time.perf_counter()
        feats_by_cfg: dict[FeatureConfig, dict[str, torch.Tensor]] = {}
        decode_s = 0.0
        for rec, fc, group in _groups(cols):
            if fc not in feats_by_cfg:
                ext = extractors.setdefault(fc, make_extractor(fc))
                feats_by_cfg[fc] = _features(waves, sr, ext, fc, min_frames)
            td = time.perf_counter()
            hyps = _decode(rec, [c.mode for c in group], feats_by_cfg[fc], cfg)
            decode_s += time.perf_counter() - td
            for col in group:
                wer[cond.label, col.title] = score_wer(refs, hyps[col.mode]).wer
        feat_s = time.perf_counter() - t1 - decode_s
        log.info(
            "bench-robust [%d/%d] %s: audio %.1f s, features %.1f s, decoding %.1f s; WER %s",
            k,
            len(cfg.conditions),
            cond.label,
            t1 - t0,
            feat_s,
            decode_s,
            " ".join(f"{100 * wer[cond.label, c.title]:.1f}" for c in cols),
        )
    audio_s = sum(w.size for w in builder.clean.values()) / sr
    header = (
        f"Robustness benchmark: {len(refs)} utterances ({audio_s:.1f} s of audio) of "
        f"{cfg.cuts.name}, {len(cfg.conditions)} conditions made from this split only "
        f"(babble: {cfg.babble_talkers} talkers of other test speakers; reverb: synthetic RIR, "
        f"DRR {cfg.drr_db:g} dB; telephone: 300-3400 Hz, 8 kHz, mu-law), seed {cfg.seed}; "
        f"WER % per condition; {time.perf_counter() - t_start:.0f} s on {cfg.device}."
    )
    if builder.skipped:
        header += f" {len(builder.skipped)} cuts left out (unreadable audio)."
    return RobustResult(header, list(cfg.conditions), [c.title for c in cols], wer, levels)
