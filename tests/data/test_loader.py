from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet

from casnat.config import DataConfig, TokenizerConfig
from casnat.data.loader import make_eval_loader, make_train_loader
from casnat.data.tokenizer import Tokenizer
from casnat.testing import make_cut


@pytest.fixture
def many_cuts(tmp_path: Path) -> CutSet:
    rng = np.random.default_rng(0)
    cuts = []
    for i in range(24):
        path = tmp_path / f"u{i:02d}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int((0.2 + 0.05 * i) * 16000))).astype(
            np.float32), 16000)
        cuts.append(make_cut(path, "one two" if i % 2 else "three"))
    return CutSet.from_cuts(cuts)


@pytest.fixture
def tok(tmp_path: Path) -> Tokenizer:
    return Tokenizer.train(["one two", "three"], TokenizerConfig("char"), tmp_path / "tok")


CFG = DataConfig(max_duration=2.0, num_buckets=2, on_the_fly_feats=True, spec_augment=None)


def _ids(loader) -> list[list[str]]:
    return [b.cut_ids for b in loader]


def test_ranks_get_disjoint_batches(many_cuts: CutSet, tok: Tokenizer) -> None:
    l0, _ = make_train_loader(many_cuts, tok, CFG, seed=0, world_size=2, rank=0)
    l1, _ = make_train_loader(many_cuts, tok, CFG, seed=0, world_size=2, rank=1)
    ids0 = {i for b in _ids(l0) for i in b}
    ids1 = {i for b in _ids(l1) for i in b}
    assert ids0 and ids1 and not ids0 & ids1
    for b in _ids(l0):
        assert sum(many_cuts[i].duration for i in b) <= CFG.max_duration + 1e-6


def test_sampler_resume_exact(many_cuts: CutSet, tok: Tokenizer) -> None:
    loader, sampler = make_train_loader(many_cuts, tok, CFG, seed=3)
    sampler.set_epoch(1)
    full = _ids(loader)
    loader2, sampler2 = make_train_loader(many_cuts, tok, CFG, seed=3)
    sampler2.set_epoch(1)
    it = iter(loader2)
    first = [next(it).cut_ids for _ in range(2)]
    state = sampler2.state_dict()
    loader3, sampler3 = make_train_loader(many_cuts, tok, CFG, seed=3)
    sampler3.load_state_dict(state)
    rest = _ids(loader3)
    assert first + rest == full


def test_eval_loader_keeps_order(many_cuts: CutSet, tok: Tokenizer) -> None:
    loader = make_eval_loader(many_cuts, tok, max_duration=3.0, on_the_fly=True)
    assert [i for b in _ids(loader) for i in b] == [c.id for c in many_cuts]
