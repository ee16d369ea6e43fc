"""Text <-> token ids: sentencepiece (unigram / bpe), characters or words, with casnat's id layout.

``word`` suits closed-vocabulary tasks (connected digits): one token per word, so the CASS-NAT
decoder has one segment per word; unseen words map to ``<unk>``.

Id layout (shared by CTC, the decoders and decoding): ``0`` = CTC blank, ``1`` = ``<unk>``,
``2 .. V-2`` = units, ``V-1`` = ``<sos/eos>``; ``vocab_size`` = V counts all of them.
sentencepiece is trained with only ``<unk>`` (its id 0) reserved, so casnat id = sp id + 1.

A trained tokenizer is a directory: ``tokenizer.json`` (kind, vocab size), ``units.txt``
(one ``piece id`` line per id, for people and for other tools) and, for sentencepiece,
``sp.model``.

>>> tok = Tokenizer.train(["three one four", "one five"], TokenizerConfig("char"), "/tmp/tk")
>>> tok.decode(tok.encode("one four"))
'one four'
>>> tok.blank_id, tok.unk_id, tok.eos_id == tok.vocab_size - 1
(0, 1, True)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from casnat.config import TokenizerConfig

log = logging.getLogger(__name__)

BLANK, UNK, SOS_EOS = "<blank>", "<unk>", "<sos/eos>"
SPACE = "▁"  # word boundary unit of the char tokenizer (sentencepiece's marker)


class Tokenizer:
    """Maps text to casnat ids and back; build with :meth:`train` or :meth:`load`."""

    def __init__(self, kind: str, units: list[str], sp_model: Path | None = None):
        self.kind = kind
        self.units = units  # units[i] = piece of id i, incl. blank, unk and sos/eos
        self._sp = None
        if sp_model is not None:
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_file=str(sp_model))
        self._char_ids = {u: i for i, u in enumerate(units)}  # char or word -> id

    # ids -----------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.units)

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def sos_id(self) -> int:
        return self.vocab_size - 1

    @property
    def eos_id(self) -> int:
        return self.vocab_size - 1

    # conversion ----------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` (units only: no blank, no sos/eos)."""
        if self._sp is not None:
            return [i + 1 for i in self._sp.encode(text, out_type=int)]
        if self.kind == "word":
            return [self._char_ids.get(w, self.unk_id) for w in text.split()]
        chars = SPACE.join(text.split())
        return [self._char_ids.get(c, self.unk_id) for c in chars]

    def decode(self, ids: Sequence[int] | Iterable[int]) -> str:
        """Text of ``ids``; blank, sos/eos and padding (-1) are dropped."""
        keep = [int(i) for i in ids if 1 <= int(i) < self.vocab_size - 1]
        if self._sp is not None:
            return self._sp.decode([i - 1 for i in keep])
        if self.kind == "word":
            return " ".join(self.units[i] for i in keep)
        return "".join(self.units[i] for i in keep).replace(SPACE, " ").strip()

    def id_to_piece(self, i: int) -> str:
        return self.units[i]

    # persistence ---------------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], cfg: TokenizerConfig, out_dir: str | Path) -> Tokenizer:
        """Train on ``texts`` (one transcript each) and save into ``out_dir``.

        For sentencepiece, ``cfg.vocab_size`` is the total V; when the text cannot fill it
        (FSDD has 10 words) sentencepiece stops early (soft limit) and a warning says so.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        texts = [" ".join(t.split()) for t in texts if t.strip()]
        if not texts:
            raise ValueError(f"no training text for the tokenizer in {out_dir}")
        if cfg.kind == "char":
            chars = sorted({c for t in texts for c in t.replace(" ", SPACE)})
            units = [BLANK, UNK, *chars, SOS_EOS]
            if len(units) != cfg.vocab_size:
                log.info(
                    "char tokenizer: %d units (vocab_size %d in the config is ignored)",
                    len(units),
                    cfg.vocab_size,
                )
            tok = cls("char", units)
        elif cfg.kind == "word":
            words = sorted({w for t in texts for w in t.split()})
            tok = cls("word", [BLANK, UNK, *words, SOS_EOS])
        elif cfg.kind in ("unigram", "bpe"):
            tok = cls._train_sp(texts, cfg, out_dir)
        else:
            raise ValueError(
                f"unknown tokenizer kind '{cfg.kind}' (expected unigram, bpe, char, word)"
            )
        tok.save(out_dir)
        return tok

    @classmethod
    def _train_sp(cls, texts: list[str], cfg: TokenizerConfig, out_dir: Path) -> Tokenizer:
        import sentencepiece as spm

        num_chars = len({c for t in texts for c in t.replace(" ", "")})
        want = cfg.vocab_size - 2  # sentencepiece size = V minus blank and sos/eos
        sp_size = max(want, num_chars + 2)  # sp needs every character + <unk> + the space mark
        if sp_size != want:
            log.warning(
                "tokenizer: vocab_size %d is below the %d characters of the text; raised to %d",
                cfg.vocab_size,
                num_chars,
                sp_size + 2,
            )
        text_file = out_dir / "train_text.txt"
        text_file.write_text("\n".join(texts) + "\n")
        spm.SentencePieceTrainer.train(
            input=str(text_file),
            model_prefix=str(out_dir / "sp"),
            model_type=cfg.kind,
            vocab_size=sp_size,
            hard_vocab_limit=False,
            character_coverage=1.0,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            minloglevel=2,
        )
        text_file.unlink()
        sp = spm.SentencePieceProcessor(model_file=str(out_dir / "sp.model"))
        units = [BLANK] + [sp.id_to_piece(i) for i in range(sp.get_piece_size())] + [SOS_EOS]
        units[1] = UNK
        if len(units) < cfg.vocab_size:
            log.warning(
                "tokenizer: the text supports only %d units; vocab_size %d -> %d",
                len(units) - 3,
                cfg.vocab_size,
                len(units),
            )
        return cls(cfg.kind, units, out_dir / "sp.model")

    def save(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "vocab_size": self.vocab_size}
        (out_dir / "tokenizer.json").write_text(json.dumps(meta, indent=1) + "\n")
        (out_dir / "units.txt").write_text("".join(f"{u} {i}\n" for i, u in enumerate(self.units)))

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load the tokenizer saved in directory ``path``."""
        path = Path(path)
        meta_file = path / "tokenizer.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"no tokenizer in {path} (missing {meta_file.name})")
        meta = json.loads(meta_file.read_text())
        units = [line.rsplit(" ", 1)[0] for line in (path / "units.txt").read_text().splitlines()]
        if len(units) != meta["vocab_size"]:
            raise ValueError(
                f"{path}/units.txt has {len(units)} units, tokenizer.json says {meta['vocab_size']}"
            )
        sp_model = path / "sp.model" if meta["kind"] in ("unigram", "bpe") else None
        return cls(meta["kind"], units, sp_model)
