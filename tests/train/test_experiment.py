"""casnat/train/experiment.py: tokenizer and CMVN fitted once on the training cuts and reused,
CMVN statistics that match the features, and a missing manifest named."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from lhotse import CutSet

from casnat.checkpoint import load_checkpoint
from casnat.errors import UserError
from casnat.testing import tiny_config
from casnat.train.distributed import DistInfo
from casnat.train.experiment import prepare_experiment

ONE_PROCESS = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_fits_tokenizer_and_cmvn_once_and_reuses_them(tiny_fsdd, tmp_path):
    cfg = tiny_config(tiny_fsdd)
    exp = prepare_experiment(cfg, tmp_path, ONE_PROCESS)
    assert (tmp_path / "tokenizer").is_dir() and (tmp_path / "cmvn.pt").is_file()
    feats = np.concatenate(
        [c.load_features() for c in CutSet.from_file(cfg.data.train_cuts)]
    ).astype(np.float64)
    torch.testing.assert_close(exp.cmvn_mean, torch.from_numpy(feats.mean(0)).float(),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(exp.cmvn_std, torch.from_numpy(feats.std(0)).float(),
                               rtol=1e-3, atol=1e-3)
    assert exp.tokenizer.decode(exp.tokenizer.encode("one two")) == "one two"
    assert exp.valid_loader is not None and exp.train_dataset is exp.train_loader.dataset

    # A second run (a resume) reads the saved files instead of fitting again.
    marker = {"mean": torch.zeros_like(exp.cmvn_mean), "std": torch.full_like(exp.cmvn_std, 2.0)}
    torch.save(marker, tmp_path / "cmvn.pt")
    again = prepare_experiment(cfg, tmp_path, ONE_PROCESS)
    assert torch.equal(again.cmvn_std, marker["std"])
    assert torch.equal(load_checkpoint(tmp_path / "cmvn.pt")["mean"], marker["mean"])


def test_missing_train_manifest_names_key_and_file(tiny_fsdd, tmp_path):
    cfg = tiny_config(tiny_fsdd)
    cfg = replace(cfg, data=replace(cfg.data, train_cuts=str(tmp_path / "nope.jsonl.gz")))
    with pytest.raises(UserError, match=r"data.train_cuts.*nope.jsonl.gz"):
        prepare_experiment(cfg, tmp_path / "exp", ONE_PROCESS)


def test_manifest_check_can_be_skipped_for_large_checked_corpora(tmp_path):
    """data.check_manifests: a malformed line is one error naming file:line when checked;
    unchecked, the manifest is opened lazily without reading it (the cost is start-up time)."""
    import gzip

    from casnat.errors import UserError
    from casnat.train.experiment import _open_cuts

    bad = tmp_path / "cuts.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write("{not json\n")
    with pytest.raises(UserError, match=r"cuts.jsonl.gz:1: not valid JSON"):
        _open_cuts(str(bad), "train_cuts", check=True)
    _open_cuts(str(bad), "train_cuts", check=False)  # no read, no error
