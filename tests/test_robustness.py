"""casnat.robustness / ``casnat bench-robust``: each condition is what its name says, measured on
the result; draws depend only on (seed, condition, cut); babble comes from other speakers of
the given split only; the CLI prints one table with every condition and column."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet

from casnat.cli import main
from casnat.robustness import (
    DEFAULT_CONDITIONS,
    Condition,
    ConditionBuilder,
    ConditionError,
    condition_rng,
    level_setting,
    parse_condition,
    parse_conditions,
)
from casnat.testing import FSDD_RECORDINGS as FSDD
from casnat.testing import make_cut, tiny_config

needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD recordings not found at {FSDD}")
CLIPS = ["3_george_0", "5_jackson_1", "7_lucas_2", "1_nicolas_3", "8_theo_4", "0_yweweler_0"]
SR = 16000


def _cuts(names: list[str] = CLIPS) -> list:
    cuts = []
    for name in names:
        cut = make_cut(FSDD / f"{name}.wav", name.split("_")[0])
        sup = replace(cut.supervisions[0], speaker=name.split("_")[1])
        cuts.append(replace(cut, supervisions=[sup]))
    return cuts


def _db(a: np.ndarray, b: np.ndarray) -> float:
    """10 log10 of the power ratio of a to b."""
    return float(10 * np.log10(np.mean(np.square(a, dtype=np.float64)) / np.mean(np.square(b))))


@pytest.fixture(scope="module")
def builder() -> ConditionBuilder:
    if not FSDD.is_dir():
        pytest.skip(f"FSDD recordings not found at {FSDD}")
    return ConditionBuilder(_cuts(), SR, seed=0)


def test_condition_specs_parse_and_bad_ones_say_why() -> None:
    conds = parse_conditions(DEFAULT_CONDITIONS)
    assert len(conds) == 14 and len({c.label for c in conds}) == 14
    assert parse_condition("gain:+10") == Condition("gain", 10.0)
    assert parse_condition("gain:10").label == "gain +10 dB"
    assert parse_condition("gain:-30").spec == "gain:-30"
    assert parse_conditions(["clean", "white:5", "white:5.0"]) == [
        Condition("clean"),
        Condition("white", 5.0),
    ]
    for bad, why in [
        ("pink:10", "unknown kind"),
        ("white", "white:NUMBER"),
        ("gain:loud", "gain:NUMBER"),
        ("reverb:0", "RT60"),
        ("clean:3", "no value"),
    ]:
        with pytest.raises(ConditionError, match=why):
            parse_condition(bad)


def test_level_settings() -> None:
    assert level_setting("off") == "off" and level_setting("model") == "model"
    assert level_setting("on") == -25.0 and level_setting("-30") == -30.0
    for bad in ("loud", "6"):
        with pytest.raises(ValueError, match="level"):
            level_setting(bad)


@needs_fsdd
def test_gains_are_exact_and_clip_at_full_scale(builder: ConditionBuilder) -> None:
    for cid, x in builder.clean.items():
        for g in (-30.0, -20.0, -10.0):
            y = builder.apply(Condition("gain", g), cid)
            assert abs(_db(y, x) - g) < 0.01
        loud = builder.apply(Condition("gain", 10.0), cid)
        assert np.abs(loud).max() <= 1.0
        if np.abs(x).max() * 10**0.5 > 1.0:  # it would pass full scale: clipped, as an ADC
            assert np.isclose(np.abs(loud).max(), 1.0) and _db(loud, x) < 10.0
        else:
            assert abs(_db(loud, x) - 10.0) < 0.01


@needs_fsdd
@pytest.mark.parametrize("kind", ["white", "babble"])
@pytest.mark.parametrize("snr", [20.0, 10.0, 5.0])
def test_noise_is_added_at_the_stated_snr(builder: ConditionBuilder, kind: str, snr: float) -> None:
    for cid, x in builder.clean.items():
        y = builder.apply(Condition(kind, snr), cid)
        assert y.shape == x.shape and y.dtype == np.float32
        assert abs(_db(x, y.astype(np.float64) - x) - snr) < 0.05


@needs_fsdd
def test_babble_comes_from_other_speakers_of_the_split_only(builder: ConditionBuilder) -> None:
    speakers = {c.id: c.supervisions[0].speaker for c in builder.cuts.values()}
    for cid in builder.cuts:
        ids = builder.babble_sources(cid, condition_rng(0, Condition("babble", 10.0), cid))
        assert len(ids) == 5 and len(set(ids)) == 5
        assert set(ids) <= set(builder.cuts) and cid not in ids
        assert all(speakers[i] != speakers[cid] for i in ids)
    # two cuts of one speaker and nobody else: no babble source, a clear error
    alone = ConditionBuilder(_cuts(["3_george_0", "4_george_1"]), SR)
    with pytest.raises(ValueError, match="no other speaker"):
        alone.apply(Condition("babble", 10.0), next(iter(alone.cuts)))


@needs_fsdd
def test_conditions_are_deterministic_per_seed_and_independent_of_order(
    builder: ConditionBuilder,
) -> None:
    conds = parse_conditions(["white:10", "babble:5", "reverb:0.6"])
    again = ConditionBuilder(list(reversed(_cuts())), SR, seed=0)
    other = ConditionBuilder(_cuts(), SR, seed=1)
    cid = CLIPS[2]
    for c in conds:
        a = builder.apply(c, cid)
        np.testing.assert_array_equal(a, builder.apply(c, cid))
        np.testing.assert_array_equal(a, again.apply(c, cid))  # cut order does not matter
        assert not np.array_equal(a, other.apply(c, cid))
    # clean and the fixed channel need no draw
    np.testing.assert_array_equal(builder.apply(Condition("clean"), cid), builder.clean[cid])


@needs_fsdd
def test_reverb_keeps_the_direct_path_and_adds_a_tail(builder: ConditionBuilder) -> None:
    cid = CLIPS[0]
    x = builder.clean[cid]
    short = builder.apply(Condition("reverb", 0.3), cid)
    long = builder.apply(Condition("reverb", 0.6), cid)
    for y in (short, long):
        assert y.shape == x.shape
        assert np.corrcoef(x, y)[0, 1] > 0.3  # the dry speech is still there, in place
    # the tail (wet - dry) carries about DRR = 3 dB less energy than the dry speech
    for y in (short, long):
        assert -6.0 < _db(y - x, x) < -1.5
    assert not np.allclose(short, long)


@needs_fsdd
def test_telephone_removes_the_band_above_3400_hz(builder: ConditionBuilder) -> None:
    cid = CLIPS[1]
    y = builder.apply(Condition("telephone"), cid)
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(y.size, 1 / SR)
    assert spec[f > 3600].sum() < 1e-3 * spec[(f > 300) & (f < 3400)].sum()


@pytest.fixture(scope="module")
def tiny_exp(tiny_fsdd, tmp_path_factory) -> Path:
    """A tiny CTC experiment trained for a few steps."""
    from casnat.train.trainer import train

    exp = tmp_path_factory.mktemp("robust") / "exp"
    train(tiny_config(tiny_fsdd, "ctc", max_steps=2, max_epochs=1), exp, device="cpu")
    return exp


def test_bench_robust_cli_prints_one_table_with_every_condition(
    tiny_exp: Path, tiny_fsdd: Path, tmp_path: Path, capsys
) -> None:
    cuts = tiny_fsdd / "cuts_test.jsonl.gz"
    out = tmp_path / "robust.md"
    argv = ["bench-robust", "--exp-dir", str(tiny_exp), "--cuts", str(cuts), "--max-utts", "3"]
    argv += ["--modes", "ctc_greedy", "cassnat", "--level-dbfs", "off", "on", "--out", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert out.read_text() == table
    rows = [ln for ln in table.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    # the CTC model has no cassnat head: that mode is skipped, both levels are kept
    assert header == [
        "condition",
        "speech level dBFS",
        "exp level off ctc_greedy",
        "exp level -25 dBFS ctc_greedy",
    ]
    labels = [r.split("|")[1].strip() for r in rows[1:]]
    assert labels == [c.label for c in parse_conditions(DEFAULT_CONDITIONS)] + [
        "worst gain / clean"
    ]
    level = {}
    for r in rows[1:-1]:
        cells = r.strip("|").split("|")
        wers = [float(v) for v in cells[2:]]
        assert len(wers) == 2 and all(w >= 0 for w in wers)
        level[cells[0].strip()] = float(cells[1])
    assert abs(level["gain -20 dB"] - level["clean"] + 20) < 0.01  # measured on the audio
    assert abs(level["gain -10 dB"] - level["clean"] + 10) < 0.01
    assert "3 utterances" in table and "made from this split only" in table
    n = len(CutSet.from_file(cuts))
    assert n > 3  # --max-utts took effect


def test_bench_robust_cli_errors_name_the_problem(tiny_exp: Path, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "cuts_test.jsonl.gz"
    assert main(["bench-robust", "--exp-dir", str(tiny_exp), "--cuts", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    argv = ["bench-robust", "--exp-dir", str(tiny_exp), "--cuts", str(missing)]
    assert main(argv + ["--conditions", "gain:loud"]) == 2
    assert "gain:loud" in capsys.readouterr().err
