"""casnat.data.augment / casnat.data.level: each transform does what it says, measured on the
result; draws depend only on (seed, epoch, cut id); dev/eval batches are never augmented."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from casnat.config import (
    AugmentConfig,
    ConfigError,
    DataConfig,
    ExperimentConfig,
    TokenizerConfig,
    from_dict,
    load_config,
    save_config,
)
from casnat.data.augment import (
    EPOCH_KEY,
    Augmenter,
    band_limit,
    coloured_noise,
    cut_epoch,
    mu_law,
    reverberate,
    synthetic_rir,
    tag_epochs,
    telephone,
)
from casnat.data.dataset import AsrDataset
from casnat.data.features import load_audio_checked
from casnat.data.level import normalize_level, speech_level_dbfs
from casnat.data.tokenizer import Tokenizer
from casnat.testing import FSDD_RECORDINGS as FSDD
from casnat.testing import make_cut

needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")
CLIPS = ["3_george_0", "5_jackson_1", "7_lucas_2", "1_nicolas_3", "8_theo_4", "0_yweweler_5",
         "2_george_6", "9_jackson_7"]


def _db(a: float, b: float) -> float:
    return float(10 * np.log10(a / b))


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def fsdd_cuts(names: list[str] = CLIPS, epoch: int | None = None) -> list:
    """FSDD clips (8 kHz) as cuts with their speaker set, optionally tagged with ``epoch``."""
    cuts = []
    for name in names:
        cut = make_cut(FSDD / f"{name}.wav", name.split("_")[0])
        cut = replace(cut, supervisions=[replace(cut.supervisions[0], speaker=name.split("_")[1])])
        if epoch is not None:
            setattr(cut, EPOCH_KEY, epoch)
        cuts.append(cut)
    return cuts


def _audio(cut, peak: float = 0.1) -> np.ndarray:
    x = load_audio_checked(cut).astype(np.float64)
    return x * (peak / np.abs(x).max())


@needs_fsdd
def test_gain_changes_level_by_the_drawn_db_and_clips_at_full_scale() -> None:
    cut = fsdd_cuts(CLIPS[:1], epoch=0)[0]
    x = _audio(cut, peak=0.1)
    for g in (-30.0, -6.0, 10.0):
        y = Augmenter(AugmentConfig(gain_prob=1.0, gain_db=(g, g)), seed=0)(x, 8000, cut)
        assert abs(_db(_power(y), _power(x)) - g) < 0.01
    loud = _audio(cut, peak=0.8)
    y = Augmenter(AugmentConfig(gain_prob=1.0, gain_db=(10.0, 10.0)), seed=0)(loud, 8000, cut)
    assert np.abs(y).max() == 1.0 and np.mean(np.abs(y) == 1.0) > 0.001  # hard-clipped
    drawn = [_db(_power(Augmenter(AugmentConfig(gain_prob=1.0), seed=s)(x, 8000, cut)), _power(x))
             for s in range(20)]
    assert -20.01 < min(drawn) < max(drawn) < 10.01 and max(drawn) - min(drawn) > 10


@needs_fsdd
@pytest.mark.parametrize("kind", ["white", "pink", "brown", "babble"])
def test_noise_snr_measured_on_result(kind: str) -> None:
    cuts = fsdd_cuts(epoch=1)
    cut, x = cuts[0], _audio(cuts[0], peak=0.05)
    for snr in (0.0, 10.0, 25.0):
        cfg = AugmentConfig(noise_prob=1.0, noise_types=(kind,), snr_db=(snr, snr))
        y = Augmenter(cfg, seed=3)(x, 8000, cut, batch=cuts)
        noise = y - x
        assert abs(_db(_power(x), _power(noise)) - snr) < 0.5
        assert np.abs(noise).max() > 0


@needs_fsdd
def test_babble_mixes_other_speakers_of_the_batch() -> None:
    cuts = fsdd_cuts(epoch=0)
    cut, x = cuts[0], _audio(cuts[0])  # george
    cfg = AugmentConfig(noise_prob=1.0, noise_types=("babble",), snr_db=(5.0, 5.0))
    aug = Augmenter(cfg, seed=0)
    same_speaker = [cut, cuts[6]]  # george only: nothing to mix, falls back to pink noise
    fallback = aug(x, 8000, cut, batch=())
    assert np.array_equal(aug(x, 8000, cut, batch=same_speaker), fallback)
    mixed = aug(x, 8000, cut, batch=cuts)
    assert not np.array_equal(mixed, fallback)
    assert np.array_equal(mixed, aug(x, 8000, cut, batch=list(reversed(cuts))))  # order-free
    # The babble is speech: its spectrum is concentrated below 1 kHz, unlike white noise.
    spec = np.abs(np.fft.rfft(mixed - x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / 8000)
    assert spec[f < 1000].sum() > 0.5 * spec.sum()


@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("n", [2**16, 2**16 + 1])  # the second is shaped at a padded length
def test_coloured_noise_has_a_1_over_f_alpha_spectrum(alpha: float, n: int) -> None:
    x = coloured_noise(n, alpha, np.random.default_rng(0))
    assert x.shape == (n,)
    assert abs(_power(x) - 1.0) < 1e-9 and abs(x.mean()) < 1e-9
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.arange(spec.size)
    band = (f > 50) & (f < spec.size - 50)
    slope = np.polyfit(np.log(f[band]), np.log(spec[band]), 1)[0]
    assert abs(slope + alpha) < 0.1


def _schroeder_rt60(h: np.ndarray, sr: int) -> float:
    """RT60 from the energy decay curve of the reverberant tail: a line fitted from -5 to
    -25 dB (T20), extrapolated to -60 dB."""
    tail = h[1:] ** 2
    edc = 10 * np.log10(np.cumsum(tail[::-1])[::-1] / tail.sum())
    t = np.arange(edc.size) / sr
    sel = (edc <= -5) & (edc >= -25)
    slope = np.polyfit(t[sel], edc[sel], 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("rt60,drr", [(0.25, 0.0), (0.5, 6.0), (0.8, 12.0)])
def test_synthetic_rir_decay_direct_path_and_energy(rt60: float, drr: float) -> None:
    sr = 16000
    h = synthetic_rir(sr, rt60, drr, np.random.default_rng(1))
    assert h[0] == 1.0 and abs(_db(1.0, float(np.sum(h[1:] ** 2))) - drr) < 1e-6
    assert abs(_schroeder_rt60(h, sr) - rt60) < 0.1 * rt60
    impulse = np.zeros(sr)
    impulse[100] = 1.0
    assert np.allclose(reverberate(impulse, h)[100 : 100 + h.size], h[: sr - 100])
    x = np.random.default_rng(2).standard_normal(4 * sr)
    y = reverberate(x, h)
    assert y.size == x.size
    assert abs(_power(y) / _power(x) - (1 + 10 ** (-drr / 10))) < 0.05 * (1 + 10 ** (-drr / 10))
    assert abs(np.dot(y, x) / np.dot(x, x) - 1.0) < 0.05  # the direct path keeps the level


@needs_fsdd
def test_reverb_in_the_chain_keeps_length_and_is_heard() -> None:
    cut = fsdd_cuts(CLIPS[:1], epoch=0)[0]
    x = _audio(cut)
    cfg = AugmentConfig(reverb_prob=1.0, rt60=(0.6, 0.6), drr_db=(0.0, 0.0))
    y = Augmenter(cfg, seed=0)(x, 8000, cut)
    assert y.shape == x.shape and _db(_power(y), _power(x)) > 1.0  # a 0 dB DRR tail is heard


def _fraction(x: np.ndarray, sr: int, mask) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    return float(spec[mask(np.fft.rfftfreq(x.size, 1 / sr))].sum() / spec.sum())


def test_band_limit_and_telephone_remove_energy_outside_the_band() -> None:
    sr = 16000
    x = 0.1 * np.random.default_rng(0).standard_normal(sr)
    assert _fraction(x, sr, lambda f: f > 3400) > 0.5
    assert _fraction(band_limit(x, sr), sr, lambda f: (f > 3400) | (f < 300)) < 1e-12
    y = telephone(x, sr, use_mu_law=False)
    assert y.shape == x.shape
    assert _fraction(y, sr, lambda f: (f > 3500) | (f < 250)) < 1e-3
    z = telephone(x, sr, use_mu_law=True)  # quantization noise stays below 4 kHz (8 kHz link)
    assert _fraction(z, sr, lambda f: f > 4000) < 1e-3 and not np.allclose(z, y)
    assert np.unique(mu_law(np.linspace(-1, 1, 10000))).size <= 256


@pytest.mark.parametrize("n", [16001, 31973, 48007])  # lengths with a large prime factor
def test_band_limit_at_awkward_lengths_keeps_the_band(n: int) -> None:
    """The FFT runs at a fast padded length there: the result keeps the input's length and
    leaks under -30 dB out of the band, and the band itself passes nearly unchanged."""
    sr = 16000
    x = 0.1 * np.random.default_rng(n).standard_normal(n)
    y = band_limit(x, sr)
    assert y.shape == x.shape
    assert _fraction(y, sr, lambda f: (f > 3400) | (f < 300)) < 1e-3
    spec_x, spec_y = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(n, 1 / sr)
    mid = (f > 500) & (f < 3200)
    assert abs(spec_y[mid].sum() / spec_x[mid].sum() - 1.0) < 0.05


@needs_fsdd
def test_same_seed_epoch_and_cut_give_the_same_audio_and_others_differ() -> None:
    cfg = AugmentConfig(gain_prob=1.0, noise_prob=1.0, reverb_prob=1.0, telephone_prob=1.0)
    cuts = fsdd_cuts(epoch=4)
    x = _audio(cuts[0])
    a = Augmenter(cfg, seed=7)(x, 8000, cuts[0], batch=cuts)
    assert np.array_equal(a, Augmenter(cfg, seed=7)(x, 8000, cuts[0], batch=cuts))
    assert not np.array_equal(a, Augmenter(cfg, seed=8)(x, 8000, cuts[0], batch=cuts))
    other_epoch = fsdd_cuts(CLIPS[:1], epoch=5)[0]
    assert not np.array_equal(a, Augmenter(cfg, seed=7)(x, 8000, other_epoch, batch=cuts))
    renamed = replace(cuts[0], id="another-id")
    assert not np.array_equal(a, Augmenter(cfg, seed=7)(x, 8000, renamed, batch=cuts))
    # One step switched off leaves the others' draws alone: the gain drawn is the same.
    g_only = Augmenter(AugmentConfig(gain_prob=1.0), seed=7)(x, 8000, cuts[0])
    g_and_t = Augmenter(AugmentConfig(gain_prob=1.0, telephone_prob=1.0, mu_law_prob=0.0),
                        seed=7)(x, 8000, cuts[0])
    assert abs(_db(_power(g_only), _power(x)) - _db(_power(g_and_t), _power(telephone(
        x, 8000, use_mu_law=False)))) < 0.01


@pytest.fixture
def tok(tmp_path: Path) -> Tokenizer:
    return Tokenizer.train([str(d) for d in range(10)], TokenizerConfig("char"), tmp_path / "tok")


ALL_ON = AugmentConfig(gain_prob=0.8, noise_prob=0.8, reverb_prob=0.5, telephone_prob=0.3)


def _epoch_batches(cuts: CutSet, epoch: int, tok: Tokenizer, state=None) -> dict:
    """{cut id: features} of one epoch from a fresh sampler and a fresh training dataset."""
    sampler = tag_epochs(SimpleCutSampler(cuts, max_cuts=3, shuffle=True, seed=0))
    sampler.set_epoch(epoch)
    if state is not None:
        sampler.load_state_dict(state)
    ds = AsrDataset(tok, train=True, spec_augment=None, on_the_fly=True, seed=11, augment=ALL_ON)
    out = {}
    for batch_cuts in sampler:
        assert {cut_epoch(c) for c in batch_cuts} == {epoch}
        b = ds[batch_cuts]
        out.update({i: b.feats[k, : b.feat_lens[k]] for k, i in enumerate(b.cut_ids)})
    return out


@needs_fsdd
def test_resumed_run_reproduces_the_augmentation_and_epochs_differ(tok: Tokenizer) -> None:
    cuts = CutSet.from_cuts(fsdd_cuts())
    e1 = _epoch_batches(cuts, 1, tok)
    again = _epoch_batches(cuts, 1, tok)  # fresh sampler and dataset: a resumed run
    assert e1.keys() == again.keys() and all(torch.equal(e1[k], again[k]) for k in e1)
    e2 = _epoch_batches(cuts, 2, tok)
    assert sum(not torch.equal(e1[k], e2[k]) for k in e1) >= len(e1) - 1
    # Mid-epoch resume: the sampler state after one batch, loaded into a fresh sampler.
    sampler = tag_epochs(SimpleCutSampler(cuts, max_cuts=3, shuffle=True, seed=0))
    sampler.set_epoch(1)
    next(iter(sampler))
    rest = _epoch_batches(cuts, 1, tok, state=sampler.state_dict())
    assert 0 < len(rest) < len(e1) and all(torch.equal(rest[k], e1[k]) for k in rest)


@needs_fsdd
def test_dev_and_eval_batches_are_never_augmented(tok: Tokenizer) -> None:
    cuts = CutSet.from_cuts(fsdd_cuts(epoch=0))
    clean = AsrDataset(tok, train=False, on_the_fly=True)[cuts]
    ev = AsrDataset(tok, train=False, on_the_fly=True, augment=ALL_ON)
    assert ev.augmenter is None and torch.equal(ev[cuts].feats, clean.feats)
    tr = AsrDataset(tok, train=True, spec_augment=None, on_the_fly=True, augment=ALL_ON)[cuts]
    assert torch.equal(tr.feat_lens, clean.feat_lens) and not torch.equal(tr.feats, clean.feats)
    off = AsrDataset(tok, train=True, spec_augment=None, on_the_fly=True,
                     augment=AugmentConfig())[cuts]
    assert torch.equal(off.feats, clean.feats)  # all probabilities 0: nothing changes


def test_augment_on_stored_features_is_a_start_up_error(tok: Tokenizer) -> None:
    with pytest.raises(ConfigError, match="on_the_fly_feats"):
        AsrDataset(tok, train=True, on_the_fly=False, augment=ALL_ON)
    AsrDataset(tok, train=False, on_the_fly=False, augment=ALL_ON)  # eval never augments


def test_augment_config_from_yaml_keys(tmp_path: Path) -> None:
    cfg = from_dict(DataConfig, {"on_the_fly_feats": True, "augment": {
        "gain_prob": 0.5, "gain_db": [-30, 10], "noise_types": ["white", "babble"]}})
    assert cfg.augment.gain_db == (-30, 10) and cfg.augment.noise_types == ("white", "babble")
    exp = ExperimentConfig(data=cfg)
    save_config(exp, tmp_path / "config.yaml")  # the copy a run writes beside its checkpoints
    assert load_config(tmp_path / "config.yaml") == exp
    assert DataConfig().augment is None and not AugmentConfig().enabled
    with pytest.raises(ConfigError, match="noise_prob"):
        AugmentConfig(noise_prob=1.5)
    with pytest.raises(ConfigError, match="snr_db"):
        AugmentConfig(snr_db=(20.0, 10.0))
    with pytest.raises(ConfigError, match="noise_types"):
        AugmentConfig(noise_types=("pinkk",))


@needs_fsdd
def test_normalize_level_removes_gain_and_ignores_silence() -> None:
    x = _audio(fsdd_cuts(CLIPS[:1])[0], peak=0.3)
    ref = speech_level_dbfs(x, 8000)
    padded = np.concatenate([np.zeros(8000), x, 1e-4 * np.ones(4000)])
    assert abs(speech_level_dbfs(padded, 8000) - ref) < 0.5  # silence does not lower it
    for g in (-30.0, -10.0, 0.0, 10.0):
        y = normalize_level(x * 10 ** (g / 20), 8000, target_dbfs=-26.0)
        assert abs(speech_level_dbfs(y, 8000) + 26.0) < 0.01 and np.abs(y).max() <= 1.0
    loud = normalize_level(x, 8000, target_dbfs=-1.0)  # would clip: the peak is capped at 1
    assert abs(np.abs(loud).max() - 1.0) < 1e-6 and speech_level_dbfs(loud, 8000) < -1.0
    assert np.array_equal(normalize_level(np.zeros(800), 8000), np.zeros(800, np.float32))
    faint = 1e-2 * x / np.abs(x).max()  # about -54 dBFS: the gain to -10 dBFS is capped at 20 dB
    quiet = normalize_level(faint, 8000, target_dbfs=-10.0, max_gain_db=20.0)
    assert abs(speech_level_dbfs(quiet, 8000) - speech_level_dbfs(faint, 8000) - 20.0) < 0.01
