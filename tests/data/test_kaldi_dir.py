from pathlib import Path

import pytest

from casnat.data.kaldi_dir import load_kaldi_dir, write_kaldi_dir_cuts
from casnat.testing import FSDD_RECORDINGS as FSDD

pytestmark = pytest.mark.skipif(not FSDD.is_dir(), reason=f"{FSDD} not present")


def _write_dir(d: Path, segments: bool) -> None:
    d.mkdir()
    (d / "wav.scp").write_text(f"r1 {FSDD}/3_jackson_0.wav\nr2 {FSDD}/4_theo_1.wav\n")
    if segments:
        (d / "segments").write_text("u1 r1 0.0 0.2\nu2 r2 0.05 0.2\n")
        (d / "text").write_text("u1 three\nu2 four\n")
        (d / "utt2spk").write_text("u1 jackson\nu2 theo\n")
    else:
        (d / "text").write_text("r1 three\nr2 four\n")
        (d / "utt2spk").write_text("r1 jackson\nr2 theo\n")


def test_kaldi_dir_without_segments(tmp_path: Path) -> None:
    _write_dir(tmp_path / "d", segments=False)
    cuts = load_kaldi_dir(tmp_path / "d")
    assert [c.supervisions[0].text for c in cuts] == ["three", "four"]
    assert [c.supervisions[0].speaker for c in cuts] == ["jackson", "theo"]
    assert all(c.sampling_rate == 16000 for c in cuts)


def test_kaldi_dir_with_segments(tmp_path: Path) -> None:
    _write_dir(tmp_path / "d", segments=True)
    out = write_kaldi_dir_cuts(tmp_path / "d", tmp_path / "cuts.jsonl.gz")
    from lhotse import CutSet

    cuts = {c.id: c for c in CutSet.from_file(out)}
    assert set(cuts) == {"u1", "u2"}
    assert cuts["u2"].start == pytest.approx(0.05) and cuts["u2"].duration == pytest.approx(0.15)
    assert cuts["u2"].load_audio().shape == (1, 2400)  # 0.15 s at 16 kHz
    assert cuts["u1"].supervisions[0].text == "three"


def test_kaldi_dir_missing_file_named(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="wav.scp"):
        load_kaldi_dir(tmp_path / "d")
