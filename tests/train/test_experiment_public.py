"""Experiment set-up: the tokenizer and CMVN are fitted once and then reused, speed-perturbed
copies do not feed the tokenizer, and a missing manifest names its config key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from casnat.errors import UserError
from casnat.testing import tiny_config
from casnat.train.distributed import DistInfo
from casnat.train.experiment import prepare_experiment

SINGLE = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def _pieces(tokenizer) -> set[str]:
    return {tokenizer.id_to_piece(i) for i in range(2, tokenizer.vocab_size - 1)}


def _subset(tiny_fsdd: Path, out: Path, n: int = 4, perturbed_text: str | None = None,
            only_perturbed: bool = False) -> Path:
    """``n`` training cuts, plus (``perturbed_text``) a copy of each as lhotse's perturb_speed
    names it (``_sp1.1``) whose transcript is ``perturbed_text``."""
    cuts = list(CutSet.from_file(tiny_fsdd / "cuts_train.jsonl.gz"))[:n]
    extra = []
    if perturbed_text is not None:
        for c in cuts:
            sups = [replace(s, id=f"{s.id}_sp1.1", text=perturbed_text) for s in c.supervisions]
            extra.append(replace(c, id=f"{c.id}_sp1.1", supervisions=sups))
    path = out / "cuts_train.jsonl.gz"
    CutSet.from_cuts(extra if only_perturbed else cuts + extra).to_file(path)
    return path


@pytest.fixture(scope="module")
def small_train(tiny_fsdd, tmp_path_factory) -> Path:
    return _subset(tiny_fsdd, tmp_path_factory.mktemp("subset"))


def _cfg(train_cuts: Path, dev_cuts: str = ""):
    cfg = tiny_config(train_cuts.parent)
    return replace(cfg, data=replace(cfg.data, train_cuts=str(train_cuts), dev_cuts=dev_cuts))


def test_tokenizer_and_cmvn_are_fitted_once_then_reused(small_train, tmp_path):
    exp_dir = tmp_path / "exp"
    first = prepare_experiment(_cfg(small_train), exp_dir, SINGLE)
    assert (exp_dir / "tokenizer").is_dir() and (exp_dir / "cmvn.pt").is_file()
    assert first.cmvn_mean.shape == first.cmvn_std.shape == (80,)
    assert bool((first.cmvn_std > 0).all())
    tok_files = {p: p.stat().st_mtime_ns for p in (exp_dir / "tokenizer").iterdir()}
    # Replace the saved statistics: a second call must read them, not fit new ones.
    mean, std = torch.full((80,), 3.0), torch.full((80,), 0.5)
    torch.save({"mean": mean, "std": std}, exp_dir / "cmvn.pt")
    second = prepare_experiment(_cfg(small_train), exp_dir, SINGLE)
    assert torch.equal(second.cmvn_mean, mean) and torch.equal(second.cmvn_std, std)
    assert {p: p.stat().st_mtime_ns for p in (exp_dir / "tokenizer").iterdir()} == tok_files
    assert _pieces(second.tokenizer) == _pieces(first.tokenizer)


def test_experiment_has_train_and_dev_loaders(small_train, tiny_fsdd, tmp_path):
    exp = prepare_experiment(_cfg(small_train, str(tiny_fsdd / "cuts_dev.jsonl.gz")),
                             tmp_path / "exp", SINGLE)
    assert exp.valid_loader is not None
    assert exp.train_loader.dataset is exp.train_dataset
    no_dev = prepare_experiment(_cfg(small_train), tmp_path / "exp", SINGLE)
    assert no_dev.valid_loader is None


def test_speed_perturbed_cuts_do_not_feed_the_tokenizer(tiny_fsdd, tmp_path):
    """Speed-perturbed copies repeat their source's text; here they carry letters no digit word
    has, so any that leaked into the tokenizer's training text would show as units."""
    train = _subset(tiny_fsdd, tmp_path, perturbed_text="jackdaw quip")
    exp = prepare_experiment(_cfg(train), tmp_path / "exp", SINGLE)
    assert not {"j", "q", "k", "d", "p", "a"} & _pieces(exp.tokenizer)
    assert "o" in _pieces(exp.tokenizer)  # the digit words themselves are there


def test_only_perturbed_cuts_still_give_a_tokenizer(tiny_fsdd, tmp_path):
    train = _subset(tiny_fsdd, tmp_path, perturbed_text="jackdaw quip", only_perturbed=True)
    exp = prepare_experiment(_cfg(train), tmp_path / "exp", SINGLE)
    assert {"j", "q", "k", "d", "p", "a"} <= _pieces(exp.tokenizer)


def test_missing_manifest_names_its_config_key(tmp_path, small_train):
    with pytest.raises(UserError, match=r"data\.train_cuts.*nowhere"):
        prepare_experiment(_cfg(tmp_path / "nowhere" / "cuts.jsonl.gz"), tmp_path / "e", SINGLE)
    assert not (tmp_path / "e" / "cmvn.pt").exists()
    with pytest.raises(UserError, match=r"data\.dev_cuts.*no_dev"):
        prepare_experiment(_cfg(small_train, str(tmp_path / "no_dev.jsonl.gz")),
                           tmp_path / "e2", SINGLE)
