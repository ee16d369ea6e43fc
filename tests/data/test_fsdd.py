from pathlib import Path

import pytest
from lhotse import CutSet

from casnat.data.corpora.fsdd import WORDS, prepare_fsdd
from casnat.testing import FSDD_RECORDINGS as FSDD

pytestmark = pytest.mark.skipif(not FSDD.is_dir(), reason=f"{FSDD} not present")


def _index(clip: str) -> int:
    return int(clip.split(".")[0].split("_")[2])


def test_fsdd_split_rule(tmp_path: Path) -> None:
    paths = prepare_fsdd(FSDD.parent, tmp_path, num_train=30, num_dev=10, num_test=8,
                         speakers=["jackson", "theo"], seed=3)
    cuts = {k: CutSet.from_file(v) for k, v in paths.items()}
    clips = {k: {c for cut in cs for c in cut.custom["source_clips"]} for k, cs in cuts.items()}
    assert all(_index(c) <= 4 for c in clips["test"] | clips["test_isolated"])
    assert all(5 <= _index(c) <= 49 for c in clips["train"] | clips["dev"])
    assert not clips["train"] & clips["dev"]
    # dev_isolated: every held-out dev clip (the connected dev set draws from them), one digit each
    assert clips["dev"] <= clips["dev_isolated"]
    assert all(5 <= _index(c) <= 49 for c in clips["dev_isolated"])
    assert not clips["dev_isolated"] & clips["train"]
    assert len(cuts["dev_isolated"]) == 2 * 10 * 4  # round(0.1 * 45) clips per speaker and digit
    assert all(len(c.supervisions[0].text.split()) == 1 for c in cuts["dev_isolated"])
    assert len(cuts["test_isolated"]) == 100  # 2 speakers x 10 digits x 5 indices
    assert [len(cuts[k]) for k in ("train", "dev", "test")] == [30, 10, 8]
    for cut in cuts["train"]:
        words = cut.supervisions[0].text.split()
        assert 1 <= len(words) <= 7 and set(words) <= set(WORDS)
        assert [WORDS[int(c[0])] for c in cut.custom["source_clips"]] == words
        assert cut.sampling_rate == 16000
    audio = cuts["test"][0].load_audio()
    assert audio.shape[1] == pytest.approx(cuts["test"][0].duration * 16000, abs=2)


def test_fsdd_deterministic(tmp_path: Path) -> None:
    kw = dict(num_train=5, num_dev=2, num_test=2, speakers=["theo"], seed=1)
    a = prepare_fsdd(FSDD.parent, tmp_path / "a", **kw)
    b = prepare_fsdd(FSDD.parent, tmp_path / "b", **kw)
    ta = [c.supervisions[0].text for c in CutSet.from_file(a["train"])]
    tb = [c.supervisions[0].text for c in CutSet.from_file(b["train"])]
    assert ta == tb


def test_fsdd_missing_corpus(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere") as e:
        prepare_fsdd(tmp_path / "nowhere", tmp_path / "out")
    assert "free-spoken-digit-dataset" in str(e.value)  # says where to get the corpus
