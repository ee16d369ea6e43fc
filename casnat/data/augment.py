"""On-the-fly waveform augmentation of training cuts: room, noise, channel and level.

Recordings that users bring differ from a training set in loudness, background noise, room
and microphone. :class:`Augmenter` simulates those differences on the waveform of each
training cut, before features are computed, as the chain

    reverberation -> additive noise -> telephone channel -> gain -> clip to [-1, 1]

Each step fires with its own probability from :class:`casnat.config.AugmentConfig`:

- **reverberation**: convolution with a synthetic room impulse response
  (:func:`synthetic_rir`: a unit direct path, then exponentially decaying Gaussian noise with
  energy falling 60 dB in ``rt60`` seconds, scaled to a direct-to-reverberant ratio). The
  direct path has gain 1 at lag 0, so the dry speech keeps its level and its timing (the
  alignment to the transcript does not move); the reverberant tail adds energy on top.
  lhotse's ``ReverbWithImpulseResponse`` generates RIRs only with torchaudio and rescales the
  output to the input's power, so we make the RIR here and use lhotse's FFT ``convolve1d``.
- **additive noise** at an SNR drawn in ``snr_db``: coloured noise with a 1/f^alpha power
  spectrum (:func:`coloured_noise`: white 0, pink 1, brown 2) or babble, a sum of 3-7 other
  cuts of the same mini-batch by other speakers (:func:`babble`): all made on this machine from
  the training set itself, nothing downloaded. The SNR is speech power over noise power over
  the whole cut, and holds exactly on the result (``10 log10(|x|^2 / |y - x|^2)``) unless a
  later step changes it (the telephone band-pass removes out-of-band noise; clipping).
- **telephone channel** (:func:`telephone`): a 300-3400 Hz band-pass, a round trip through
  8 kHz (lhotse's ``Resample``) and, with ``mu_law_prob``, 8-bit mu-law quantization.
- **gain** in dB (lhotse's ``Volume``); the result is then hard-clipped to [-1, 1], as an ADC
  saturates: a +10 dB gain on a loud cut clips its peaks, a real failure mode worth training on.

Determinism: every draw comes from generators seeded by ``(seed, epoch, cut id)``
(:func:`cut_generators`), one independent stream per step, so the same cut in the same epoch
gets the same audio in any process, a resumed run reproduces it, DataLoader workers need no
shared state, and switching one step on or off does not change the others' draws. The epoch
reaches the dataset on the cuts themselves: :func:`tag_epochs` makes the sampler (which runs
in the main process) write its epoch into each cut it yields. Babble also depends on which cuts
share the mini-batch; a resumed sampler (``load_state_dict``) rebuilds the same batches.

Cost (120 FSDD cuts, 69 s of audio, one core, gain 0.8 / noise 0.8 / reverb 0.5 / telephone
0.3): 1.0 s with augmentation against 0.37 s for loading and fbank alone, i.e. about 10 ms per
second of audio, mostly resampling (babble sources, the telephone round trip) and the RIR FFT.

>>> cfg = AugmentConfig(gain_prob=1.0, noise_prob=0.5, noise_types=("white", "pink"))
>>> aug = Augmenter(cfg, seed=0)                                              # doctest: +SKIP
>>> y = aug(samples, 16000, cut, batch=cuts)  # (S,) float32, same length   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft
import torch
from lhotse.augmentation import Resample, Volume
from lhotse.augmentation.utils import convolve1d

from casnat.config import AugmentConfig, ConfigError
from casnat.data.features import AudioCache, load_audio_checked

log = logging.getLogger(__name__)

NOISE_ALPHA = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^alpha
EPOCH_KEY = "augment_epoch"  # custom field of a cut: the sampler's epoch when it was drawn
TELEPHONE_BAND = (300.0, 3400.0)
TELEPHONE_RATE = 8000


# --------------------------------------------------------------------------- single transforms


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def apply_gain(samples: np.ndarray, gain_db: float) -> np.ndarray:
    """``samples * 10^(gain_db / 20)`` with lhotse's ``Volume``; no clipping (the
    :class:`Augmenter` clips once, at the end of its chain)."""
    return Volume(factor=10.0 ** (gain_db / 20.0))(samples, 0)


def coloured_noise(num_samples: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """(num_samples,) zero-mean, unit-RMS float64 noise whose power spectrum falls as 1/f^alpha
    (drawn and shaped in float32, twice as fast; noise needs no more precision).

    Shaped in the frequency domain: white Gaussian noise, its rFFT scaled by f^(-alpha/2), the
    DC bin zeroed. alpha 0 = white, 1 = pink, 2 = brown (random-walk-like).

    Coloured noise is shaped at ``scipy.fft.next_fast_len(num_samples)`` and cut to length: a
    cut's length is arbitrary, and an FFT of a length with a large prime factor costs 10-25x
    more (it was a third of the augmentation's CPU time in training's DataLoader worker).
    """
    if alpha == 0.0 or num_samples < 4:
        x = rng.standard_normal(num_samples, dtype=np.float32)
    else:
        m = scipy.fft.next_fast_len(num_samples, real=True)
        spec = scipy.fft.rfft(rng.standard_normal(m, dtype=np.float32))
        f = np.arange(spec.size, dtype=np.float32)
        f[0] = 1.0
        scale = f ** np.float32(-alpha / 2.0)
        scale[0] = 0.0
        x = scipy.fft.irfft(spec * scale, n=m)[:num_samples]
    x = x.astype(np.float64)
    x -= x.mean()
    r = rms(x)
    return x / r if r > 0 else x


def babble(num_samples: int, sources: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(num_samples,) unit-RMS sum of ``sources`` (other utterances): each scaled to unit RMS,
    started at a random offset and repeated to cover ``num_samples``, so every talker is heard
    throughout, as in a crowd."""
    out = np.zeros(num_samples)
    for src in sources:
        src = np.asarray(src, dtype=np.float64).reshape(-1)
        r = rms(src)
        if r == 0:
            continue
        reps = -(-(num_samples + src.size) // src.size)
        tiled = np.tile(src / r, reps)
        start = int(rng.integers(0, src.size))
        out += tiled[start : start + num_samples]
    r = rms(out)
    return out / r if r > 0 else out


def add_noise(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``samples + c * noise`` with ``c`` chosen so that the speech-to-noise power ratio over the
    whole cut is ``snr_db`` (silence in the cut counts as speech power 0, as in lhotse's
    ``CutSet.mix``). A silent cut is returned unchanged."""
    ps, pn = rms(samples) ** 2, rms(noise) ** 2
    if ps == 0 or pn == 0:
        return samples.copy()
    c = np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))
    return samples + c * noise


def synthetic_rir(
    sampling_rate: int, rt60: float, drr_db: float, rng: np.random.Generator,
    predelay: float = 0.002,
) -> np.ndarray:
    """(L,) room impulse response: ``h[0] = 1`` (direct path), zeros for ``predelay`` seconds,
    then Gaussian noise whose energy decays 60 dB in ``rt60`` s, scaled so that
    ``10 log10(h[0]^2 / sum(tail^2)) = drr_db``. ``L = 1.2 * rt60 * sampling_rate``.

    >>> h = synthetic_rir(16000, 0.5, 6.0, np.random.default_rng(0))
    >>> h[0], h.size
    (1.0, 9600)
    """
    n = max(int(round(1.2 * rt60 * sampling_rate)), 2)
    t = np.arange(n) / sampling_rate
    tail = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60)  # amplitude: energy -60 dB at rt60
    tail[: max(1, int(round(predelay * sampling_rate)))] = 0.0
    energy = float(np.sum(tail**2))
    if energy > 0:
        tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / energy)
    tail[0] = 1.0
    return tail


def reverberate(samples: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``samples`` convolved with ``rir`` (lhotse's FFT convolution), cut to the input length.
    With the direct path at lag 0 the dry signal keeps its level and position."""
    wet = convolve1d(torch.from_numpy(np.asarray(samples, dtype=np.float64)),
                     torch.from_numpy(np.asarray(rir, dtype=np.float64))).numpy()
    return wet[: samples.size]


def band_limit(
    samples: np.ndarray, sampling_rate: int, band: tuple[float, float] = TELEPHONE_BAND,
    ramp_hz: float = 100.0,
) -> np.ndarray:
    """Zero-phase band-pass in the frequency domain: nothing outside ``band`` survives (bins
    below ``band[0]`` or above ``band[1]`` are zeroed), with raised-cosine ramps of ``ramp_hz``
    just inside the band edges against ringing.

    The FFT runs at ``scipy.fft.next_fast_len`` (zero-padded, then cut back): exact when the
    length is already fast; otherwise cutting the padded result back leaks a little energy out
    of the band (under -35 dB of the total over 200 random lengths, like a real filter's
    stopband), while an
    awkward length (a large prime factor) would cost 10-25x more."""
    n = samples.size
    m = scipy.fft.next_fast_len(n, real=True) if n else n
    spec = scipy.fft.rfft(samples, n=m)
    f = np.fft.rfftfreq(m, 1.0 / sampling_rate)
    lo, hi = band
    gain = np.ones_like(f)
    gain[(f < lo) | (f > hi)] = 0.0
    up = (f >= lo) & (f < lo + ramp_hz)
    gain[up] = 0.5 - 0.5 * np.cos(np.pi * (f[up] - lo) / ramp_hz)
    down = (f > hi - ramp_hz) & (f <= hi)
    gain[down] = 0.5 - 0.5 * np.cos(np.pi * (hi - f[down]) / ramp_hz)
    return scipy.fft.irfft(spec * gain, n=m)[:n]


def mu_law(samples: np.ndarray, mu: int = 255) -> np.ndarray:
    """Round trip through ``mu + 1``-level mu-law (G.711-like 8-bit) quantization; input is
    clipped to [-1, 1] first, as a codec would."""
    x = np.clip(samples, -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((y + 1.0) / 2.0 * mu) / mu * 2.0 - 1.0
    return np.sign(q) * ((1.0 + mu) ** np.abs(q) - 1.0) / mu


def telephone(samples: np.ndarray, sampling_rate: int, use_mu_law: bool) -> np.ndarray:
    """Telephone channel: 300-3400 Hz band-pass, then down to 8 kHz (lhotse ``Resample``),
    optionally mu-law, and back to ``sampling_rate``; same length as the input."""
    x = band_limit(samples, sampling_rate)
    if sampling_rate != TELEPHONE_RATE:
        x = Resample(sampling_rate, TELEPHONE_RATE)(x[None].astype(np.float32), sampling_rate)[0]
    if use_mu_law:
        x = mu_law(x)
    if sampling_rate != TELEPHONE_RATE:
        x = Resample(TELEPHONE_RATE, sampling_rate)(x[None].astype(np.float32), TELEPHONE_RATE)[0]
    x = np.asarray(x, dtype=np.float64)
    if x.size < samples.size:
        x = np.pad(x, (0, samples.size - x.size))
    return x[: samples.size]


# --------------------------------------------------------------------------- seeding, epochs


@dataclass(frozen=True)
class CutGenerators:
    """One independent random stream per step of the chain."""

    reverb: np.random.Generator
    noise: np.random.Generator
    channel: np.random.Generator
    gain: np.random.Generator


def cut_generators(seed: int, epoch: int, cut_id: str) -> CutGenerators:
    """Generators that depend only on ``(seed, epoch, cut_id)`` (a stable hash of the id, not
    Python's salted ``hash``), so any process draws the same augmentation for a cut."""
    digest = hashlib.blake2b(cut_id.encode("utf-8"), digest_size=8).digest()
    words = [int(seed) & 0xFFFFFFFF, int(epoch), int.from_bytes(digest, "little")]
    ss = np.random.SeedSequence(words)
    return CutGenerators(*(np.random.default_rng(s) for s in ss.spawn(4)))


class EpochTagger:
    """Sampler transform writing ``sampler.epoch`` into each cut it yields (custom field
    ``augment_epoch``). It runs in the main process when a batch is drawn, so it is right with
    DataLoader workers and after ``sampler.load_state_dict`` on resume."""

    def __init__(self, sampler: Any):
        self.sampler = sampler

    def __call__(self, cuts: Any) -> Any:
        epoch = int(getattr(self.sampler, "epoch", 0))
        for cut in cuts:
            setattr(cut, EPOCH_KEY, epoch)
        return cuts


def tag_epochs(sampler: Any) -> Any:
    """Make a lhotse sampler tag every cut with its epoch (see :class:`EpochTagger`); returns the
    sampler. Call once where the training sampler is built."""
    return sampler.map(EpochTagger(sampler))


def cut_epoch(cut: Any) -> int | None:
    """The epoch :func:`tag_epochs` wrote into ``cut``, or None when untagged."""
    custom = getattr(cut, "custom", None) or {}
    value = custom.get(EPOCH_KEY)
    return None if value is None else int(value)


# --------------------------------------------------------------------------- the chain


def _speaker(cut: Any) -> str | None:
    sups = getattr(cut, "supervisions", None) or []
    return sups[0].speaker if sups else None


class Augmenter:
    """The seeded augmentation chain of one training dataset (see the module docstring)."""

    def __init__(self, cfg: AugmentConfig, seed: int):
        self.cfg = cfg
        self.seed = seed
        self._warned_untagged = False
        # The dataset's casnat.data.features.AudioCache, if any: babble reads other cuts of the
        # batch, and those are in it (or will be, for their own features).
        self.audio_cache: AudioCache | None = None

    def __call__(
        self, samples: np.ndarray, sampling_rate: int, cut: Any, batch: Iterable[Any] = (),
    ) -> np.ndarray:
        """Augmented copy of ``samples`` (S,) of ``cut``; (S,) float32 in [-1, 1].

        ``batch``: the cuts of the same mini-batch, the pool babble is mixed from (the cut itself
        and cuts of its speaker are left out); with none left, babble falls back to pink noise.
        """
        cfg = self.cfg
        epoch = cut_epoch(cut)
        if epoch is None:
            if not self._warned_untagged:
                log.warning("augment: cut %s has no '%s' tag, so every epoch augments a cut the "
                            "same way (wrap the sampler with casnat.data.augment.tag_epochs)",
                            cut.id, EPOCH_KEY)
                self._warned_untagged = True
            epoch = 0
        g = cut_generators(self.seed, epoch, cut.id)
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if g.reverb.random() < cfg.reverb_prob:
            rir = synthetic_rir(sampling_rate, g.reverb.uniform(*cfg.rt60),
                                g.reverb.uniform(*cfg.drr_db), g.reverb)
            x = reverberate(x, rir)
        if g.noise.random() < cfg.noise_prob:
            kind = cfg.noise_types[int(g.noise.integers(len(cfg.noise_types)))]
            snr = g.noise.uniform(*cfg.snr_db)
            x = add_noise(x, self._noise(kind, x.size, sampling_rate, cut, batch, g.noise), snr)
        if g.channel.random() < cfg.telephone_prob:
            x = telephone(x, sampling_rate, use_mu_law=g.channel.random() < cfg.mu_law_prob)
        if g.gain.random() < cfg.gain_prob:
            x = apply_gain(x, g.gain.uniform(*cfg.gain_db))
        return np.clip(x, -1.0, 1.0).astype(np.float32)

    def _noise(
        self, kind: str, n: int, sampling_rate: int, cut: Any, batch: Iterable[Any],
        rng: np.random.Generator,
    ) -> np.ndarray:
        if kind != "babble":
            return coloured_noise(n, NOISE_ALPHA[kind], rng)
        spk = _speaker(cut)
        pool = sorted((c for c in batch if c.id != cut.id and (spk is None or _speaker(c) != spk)),
                      key=lambda c: c.id)
        lo, hi = self.cfg.babble_speakers
        k = min(int(rng.integers(lo, hi + 1)), len(pool))
        picks = [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))] if k else []
        sources = [s for s in (_load(c, sampling_rate, self.audio_cache) for c in picks)
                   if s is not None]
        if not sources:
            log.debug("augment: no babble source for cut %s, using pink noise", cut.id)
            return coloured_noise(n, NOISE_ALPHA["pink"], rng)
        return babble(n, sources, rng)


def _load(cut: Any, sampling_rate: int, cache: AudioCache | None = None) -> np.ndarray | None:
    """Audio of a babble source at ``sampling_rate`` (read-only when it comes from ``cache``),
    or None if unreadable (it is left out)."""
    try:
        if cut.sampling_rate != sampling_rate:
            cut = cut.resample(sampling_rate)
        return load_audio_checked(cut, cache)
    except ValueError as e:
        log.debug("augment: babble source left out: %s", e)
        return None


def make_augmenter(cfg: AugmentConfig | None, seed: int, on_the_fly: bool) -> Augmenter | None:
    """The training dataset's augmenter, or None when ``cfg`` is None or all off. Raises
    ConfigError at start-up when augmentation is asked for on stored features."""
    if cfg is None or not cfg.enabled:
        return None
    if not on_the_fly:
        raise ConfigError("data.augment needs data.on_the_fly_feats: true (augmentation works "
                          "on the waveform; stored features cannot be augmented)")
    return Augmenter(cfg, seed)
