import shutil
from pathlib import Path

import pytest
from lhotse import CutSet

from casnat.data.corpora.synth_en import prepare_synth_en

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng not installed (run egs/synth_en/local/install_tts.sh)",
)


def test_synth_three_sentences_two_voices(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.mkdir()
    (text / "sentences_train.txt").write_text("hello there\nthe cat sat down\n")
    (text / "sentences_dev.txt").write_text("a dog ran\n")
    (text / "sentences_test.txt").write_text("good morning\n")
    paths = prepare_synth_en(text, tmp_path / "out", num_train=2, num_dev=0, num_test=1,
                             train_voices=["espeak:en-us+m1"],
                             test_only_voices=["espeak:en-us+f2"], num_jobs=1)
    train, test = CutSet.from_file(paths["train"]), CutSet.from_file(paths["test"])
    assert sorted(c.supervisions[0].text for c in train) == ["hello there", "the cat sat down"]
    assert {c.supervisions[0].speaker for c in train} == {"espeak:en-us+m1"}
    assert [c.supervisions[0].speaker for c in test] == ["espeak:en-us+f2"]
    assert test[0].custom["unseen_voice"] is True
    for c in list(train) + list(test):
        assert c.sampling_rate == 16000 and 0.3 < c.duration < 5
        assert c.load_audio().shape[1] == c.num_samples


def test_missing_text(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sentences_train.txt"):
        prepare_synth_en(tmp_path, tmp_path / "out")
