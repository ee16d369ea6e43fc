import json
import shutil
from pathlib import Path

import pytest
from lhotse import CutSet

from casnat.data.corpora.synth_en import prepare_synth_en
from casnat.data.corpora.text_filter import (
    SelectionConfig,
    keep_sentence,
    select_sentences,
    top_words,
)
from casnat.errors import UserError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng not installed (run egs/synth_en/local/install_tts.sh)",
)

# A source where frequent words (a, b, c) and rare ones (x, y, z, ...) mix, big enough for a
# closed-vocabulary split with a top-up.
TRAIN = [f"{w1} {w2} {w3}" for w1 in "abc" for w2 in "abc" for w3 in "abc"] + [
    "a x",
    "b y",
    "c z",
    "q r s",
    "a b c d",
    "d d",
]
SOURCE = {
    "train": TRAIN,
    "dev": ["a b", "b x", "c c", "a b c"],  # 'b x' out of vocab; 'a b c' is also train text
    "test": ["b a", "z z", "c a a b"],
}


def words(sentences: list[str]) -> set[str]:
    return {w for s in sentences for w in s.split()}


def test_top_words_counts_train_and_breaks_ties_alphabetically() -> None:
    assert top_words(["a b b", "c b a", "d"], 2) == {"a", "b"}
    assert top_words(["z y", "y z"], 1) == {"y"}  # tie: alphabetical, not input order
    assert keep_sentence("a b", {"a", "b"}, 0) and not keep_sentence("a q", {"a", "b"}, 0)
    assert not keep_sentence("a a a", None, 2) and keep_sentence("a a", None, 2)


def test_closed_vocab_keeps_only_top_n_words_and_splits_are_disjoint() -> None:
    cfg = SelectionConfig(vocab_size=3, num_dev=3, num_test=3, seed=1)
    s = select_sentences(SOURCE, cfg)
    assert s.vocab == {"a", "b", "c"}
    for split in (s.train, s.dev, s.test):
        assert words(split) <= {"a", "b", "c"}
    assert not set(s.train) & set(s.dev) and not set(s.train) & set(s.test)
    assert not set(s.dev) & set(s.test)
    assert "a b c" not in s.dev  # a source dev sentence that is also train text is not "new"
    assert words(s.dev) | words(s.test) <= words(s.train)  # every test word seen in training
    assert len(s.dev) == 3 and len(s.test) == 3
    # 2 source dev + 2 source test survive: the rest comes from held-out train, not trained on
    assert len(s.topped_up["dev"]) == 1 and len(s.topped_up["test"]) == 1
    assert set(s.topped_up["dev"] + s.topped_up["test"]) <= set(TRAIN) - set(s.train)
    assert s.survivors == {"train": 27, "dev": 2, "test": 2}
    assert len(s.train) == 27 - 2 and "a b c d" not in s.train


def test_vocab_size_zero_is_open_vocabulary_and_max_words_caps_length() -> None:
    s = select_sentences(SOURCE, SelectionConfig(vocab_size=0, num_dev=3, num_test=3))
    assert s.vocab is None and not s.topped_up["dev"] and not s.topped_up["test"]
    assert "a x" in s.train and "q r s" in s.train and "b x" in s.dev and "z z" in s.test
    short = select_sentences(
        SOURCE, SelectionConfig(vocab_size=0, max_words=2, num_dev=0, num_test=1)
    )
    assert short.train and all(len(t.split()) <= 2 for t in short.train + short.test)


def test_selection_is_deterministic_under_a_seed() -> None:
    def pick(seed: int) -> tuple[list[str], list[str], list[str]]:
        s = select_sentences(
            SOURCE, SelectionConfig(vocab_size=3, num_train=10, num_dev=2, num_test=2, seed=seed)
        )
        return s.train, s.dev, s.test

    assert pick(0) == pick(0)
    assert pick(0) != pick(1)
    assert len(pick(0)[0]) == 10


def test_too_few_sentences_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="train sentences survive vocab_size=3"):
        select_sentences(SOURCE, SelectionConfig(vocab_size=3, num_dev=20, num_test=20))
    with pytest.raises(UserError, match="num_dev must be >= 0"):
        SelectionConfig(num_dev=-1)


def test_shared_text_default_selection() -> None:
    """The recipe's default on the shared text: sizes the recipe comments rely on."""
    text = Path("/work/shared/data/text")
    if not (text / "sentences_train.txt").is_file():
        pytest.skip(f"shared text not found: {text}")
    src = {
        k: (text / f"sentences_{k}.txt").read_text().splitlines() for k in ("train", "dev", "test")
    }
    s = select_sentences(src, SelectionConfig(vocab_size=1000, max_words=12))
    assert (len(s.train), len(s.dev), len(s.test)) == (1780, 100, 200)
    assert words(s.dev) | words(s.test) <= words(s.train)
    # a tiny capped corpus (bench-train, recipe smoke tests) still finds dev / test sentences
    tiny = select_sentences(
        src, SelectionConfig(vocab_size=1000, max_words=12, num_train=2, num_dev=1, num_test=2)
    )
    assert (len(tiny.train), len(tiny.dev), len(tiny.test)) == (2, 1, 2)


@needs_espeak
def test_synth_three_sentences_two_voices(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.mkdir()
    (text / "sentences_train.txt").write_text("hello there\nthe cat sat down\n")
    (text / "sentences_dev.txt").write_text("a dog ran\n")
    (text / "sentences_test.txt").write_text("good morning\n")
    paths = prepare_synth_en(
        text,
        tmp_path / "out",
        num_train=2,
        num_dev=0,
        num_test=1,
        train_voices=["espeak:en-us+m1"],
        test_only_voices=["espeak:en-us+f2"],
        num_jobs=1,
        vocab_size=0,
        max_words=0,
        voices_per_sentence=1,
    )
    train, test = CutSet.from_file(paths["train"]), CutSet.from_file(paths["test"])
    assert sorted(c.supervisions[0].text for c in train) == ["hello there", "the cat sat down"]
    assert {c.supervisions[0].speaker for c in train} == {"espeak:en-us+m1"}
    assert [c.supervisions[0].speaker for c in test] == ["espeak:en-us+f2"]
    assert test[0].custom["unseen_voice"] is True
    for c in list(train) + list(test):
        assert c.sampling_rate == 16000 and 0.3 < c.duration < 5
        assert c.load_audio().shape[1] == c.num_samples


@needs_espeak
def test_closed_vocab_corpus_two_voices_per_sentence_marks_unseen(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.mkdir()
    (text / "sentences_train.txt").write_text("go on\non go\ngo go\nstop now please\n")
    (text / "sentences_dev.txt").write_text("on on\n")
    (text / "sentences_test.txt").write_text("go on on\nsome other words\n")
    voices = ["espeak:en-us+m1", "espeak:en-gb+f3"]
    paths = prepare_synth_en(
        text,
        tmp_path / "out",
        num_dev=1,
        num_test=2,
        train_voices=voices,
        test_only_voices=["espeak:en-us+f2"],
        num_jobs=1,
        vocab_size=2,
        max_words=3,
        voices_per_sentence=2,
    )
    train = CutSet.from_file(paths["train"])
    test = CutSet.from_file(paths["test"])
    by_text: dict[str, set[str]] = {}
    for c in train:
        by_text.setdefault(c.supervisions[0].text, set()).add(c.supervisions[0].speaker)
        assert c.custom["unseen_voice"] is False
    assert all(v == set(voices) for v in by_text.values())  # each sentence in both voices
    assert set(by_text) | {c.supervisions[0].text for c in test} <= {
        "go on",
        "on go",
        "go go",
        "go on on",
    }
    unseen = [c.custom["unseen_voice"] for c in test]
    assert unseen == [True, False]  # test alternates held-out and train voices
    assert [c.supervisions[0].speaker for c in test][0] == "espeak:en-us+f2"
    sel = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert sel["vocab"] == ["go", "on"] and sel["sentences"]["test"] == 2
    assert len(sel["held_out_train_sentences_in"]["test"]) == 1


def test_missing_text(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sentences_train.txt"):
        prepare_synth_en(tmp_path, tmp_path / "out")
