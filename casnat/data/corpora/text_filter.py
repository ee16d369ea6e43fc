"""Choose train / dev / test sentences for a synthetic corpus, optionally on a closed vocabulary.

Why: random sentences from an open vocabulary (14k word types in the shared text) make a task a
small model cannot learn in a 20-minute budget, so every decoding mode scores badly and the
comparison between modes says nothing. Like WSJ's 5k closed task, the closed default keeps only
sentences made of the ``vocab_size`` most frequent words of the *train* text; test sentences are
new, their words are not: every dev / test word occurs in the chosen training sentences (with
``num_train`` capping them, in the filtered train text not held out).

Dev / test come from the source's own dev / test sentences, filtered the same way. Few of those
survive a small vocabulary (N=1000: 43 of 300 dev), so the shortfall is topped up from *held-out*
train sentences: filtered train sentences set aside before training sentences are chosen, never
trained on (``SentenceSplits.topped_up`` lists them). Pure functions, no I/O: easy to test.

>>> src = {"train": ["a b", "b a", "a c", "c d e"], "dev": ["b b"], "test": ["a a"]}
>>> s = select_sentences(src, SelectionConfig(vocab_size=2, num_dev=1, num_test=1))
>>> s.vocab, s.dev, s.test
(frozenset({'a', 'b'}), ['b b'], ['a a'])
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from casnat.errors import UserError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class SelectionConfig:
    """How to pick sentences. ``vocab_size=0``: open vocabulary (no word filter).

    ``max_words=0``: no length cap. ``num_train=0``: every surviving train sentence (less the
    held-out top-up), since on a closed vocabulary the surviving train text is the scarce part.
    """

    vocab_size: int = 1000
    max_words: int = 0
    num_train: int = 0
    num_dev: int = 100
    num_test: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_words", "num_train", "num_dev", "num_test"):
            if getattr(self, name) < 0:
                raise UserError(
                    f"sentence selection: {name} must be >= 0, got {getattr(self, name)}"
                )


@dataclass
class SentenceSplits:
    """The chosen sentences. ``vocab``: the top-N words (``None`` when open).

    ``topped_up``: split -> held-out train sentences moved into dev / test (documented so that a
    reader of the corpus knows which test sentences come from the train file).
    """

    train: list[str]
    dev: list[str]
    test: list[str]
    vocab: frozenset[str] | None
    topped_up: dict[str, list[str]] = field(default_factory=dict)
    survivors: dict[str, int] = field(default_factory=dict)  # filtered pool size per source split


def top_words(sentences: Iterable[str], n: int) -> frozenset[str]:
    """The ``n`` most frequent whitespace words; ties broken alphabetically, so deterministic."""
    counts = Counter(w for s in sentences for w in s.split())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return frozenset(w for w, _ in ranked[:n])


def keep_sentence(sentence: str, vocab: frozenset[str] | set[str] | None, max_words: int) -> bool:
    """True when ``sentence`` has <= ``max_words`` words (0: any) all in ``vocab`` (None: any)."""
    words = sentence.split()
    if not words or (max_words and len(words) > max_words):
        return False
    return vocab is None or all(w in vocab for w in words)


def _unique(sentences: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(s.strip() for s in sentences if s.strip()))


def select_sentences(sources: dict[str, Sequence[str]], cfg: SelectionConfig) -> SentenceSplits:
    """Pick disjoint train / dev / test sentences from ``sources`` (split -> sentences).

    Deterministic for a given ``cfg.seed``. Raises :class:`UserError` when the filtered text is
    too small for the requested dev / test sizes even after the top-up, naming the numbers.
    """
    missing = [s for s in SPLITS if s not in sources]
    if missing:
        raise UserError(f"sentence selection: no {', '.join(missing)} sentences given")
    vocab = top_words(sources["train"], cfg.vocab_size) if cfg.vocab_size else None
    rng = random.Random(cfg.seed)
    train_pool = [s for s in _unique(sources["train"]) if keep_sentence(s, vocab, cfg.max_words)]
    in_train = set(train_pool)
    pools = {
        split: [
            s
            for s in _unique(sources[split])
            if s not in in_train and keep_sentence(s, vocab, cfg.max_words)
        ]
        for split in ("dev", "test")
    }
    pools["test"] = [s for s in pools["test"] if s not in set(pools["dev"])]
    survivors = {"train": len(train_pool), **{k: len(v) for k, v in pools.items()}}
    rng.shuffle(train_pool)
    for split in ("dev", "test"):
        rng.shuffle(pools[split])
    wanted = {"dev": cfg.num_dev, "test": cfg.num_test}
    # Held-out top-up: reserve `reserve` train sentences; on a closed vocabulary dev / test may
    # only use words of the training sentences, which depend on the reserve, so grow it until
    # the filtered candidates suffice (a few rounds at most).
    reserve = sum(max(0, wanted[s] - len(pools[s])) for s in wanted)
    while True:
        if reserve >= len(train_pool):
            raise UserError(
                f"sentence selection: only {len(train_pool)} train sentences survive "
                f"vocab_size={cfg.vocab_size} max_words={cfg.max_words}, too few for "
                f"{cfg.num_dev} dev + {cfg.num_test} test (source dev/test keep "
                f"{survivors['dev']}/{survivors['test']}); raise --vocab-size or --max-words, "
                "or lower --num-dev / --num-test"
            )
        held_out, rest = train_pool[:reserve], train_pool[reserve:]
        train = rest[: cfg.num_train] if cfg.num_train else rest
        # Words dev / test may use: those of the training sentences; with a num_train cap, those
        # of every non-held-out survivor (a few capped sentences cover too few words to test).
        seen = {w for s in (rest if cfg.num_train else train) for w in s.split()}
        seen = seen if vocab is not None else None
        ok = {k: [s for s in v if keep_sentence(s, seen, 0)] for k, v in pools.items()}
        extra = [s for s in held_out if keep_sentence(s, seen, 0)]
        short = sum(max(0, wanted[s] - len(ok[s])) for s in wanted) - len(extra)
        if short <= 0:
            break
        reserve += short
    out: dict[str, list[str]] = {}
    topped: dict[str, list[str]] = {}
    for split in ("dev", "test"):
        own = ok[split][: wanted[split]]
        need = wanted[split] - len(own)
        topped[split], extra = extra[:need], extra[need:]
        out[split] = own + topped[split]
    return SentenceSplits(train, out["dev"], out["test"], vocab, topped, survivors)
