from pathlib import Path

import pytest

from casnat.config import TokenizerConfig
from casnat.data.tokenizer import Tokenizer

TEXTS = ["three one four", "one five nine two six", "five three five", "eight nine seven nine",
         "zero", "three two three eight four six"] * 5


@pytest.mark.parametrize("kind", ["char", "unigram", "bpe"])
def test_round_trip_and_layout(tmp_path: Path, kind: str) -> None:
    tok = Tokenizer.train(TEXTS, TokenizerConfig(kind, 256), tmp_path / "tok")
    tok2 = Tokenizer.load(tmp_path / "tok")
    assert tok2.vocab_size == tok.vocab_size
    for text in TEXTS[:6]:
        ids = tok2.encode(text)
        assert ids == tok.encode(text)
        assert all(2 <= i <= tok.vocab_size - 2 for i in ids)
        assert tok2.decode(ids) == text
    assert tok.blank_id == 0 and tok.unk_id == 1
    assert tok.sos_id == tok.eos_id == tok.vocab_size - 1
    assert tok.id_to_piece(0) == "<blank>" and tok.id_to_piece(tok.vocab_size - 1) == "<sos/eos>"
    # blank, eos and padding are dropped by decode
    assert tok.decode([0, *tok.encode("one"), tok.eos_id, -1]) == "one"


def test_sentencepiece_small_vocab_clamped(tmp_path: Path) -> None:
    tok = Tokenizer.train(TEXTS, TokenizerConfig("unigram", 5000), tmp_path / "tok")
    assert tok.vocab_size < 5000  # tiny text: soft limit instead of an error


def test_char_unknown(tmp_path: Path) -> None:
    tok = Tokenizer.train(["ab ba"], TokenizerConfig("char"), tmp_path / "tok")
    assert tok.encode("az") == [tok.encode("a")[0], tok.unk_id]


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        Tokenizer.load(tmp_path)


def test_word_tokenizer_one_id_per_word_and_unk(tmp_path):
    from casnat.config import TokenizerConfig
    from casnat.data.tokenizer import Tokenizer

    tok = Tokenizer.train(["three one four", "one zero"], TokenizerConfig(kind="word"), tmp_path)
    ids = tok.encode("one four seven")
    assert len(ids) == 3 and ids[2] == tok.unk_id and tok.vocab_size == 2 + 4 + 1
    assert tok.decode(tok.encode("zero three")) == "zero three"
    again = Tokenizer.load(tmp_path)
    assert again.encode("three one") == tok.encode("three one") and again.kind == "word"
