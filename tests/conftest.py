"""Shared fixtures: a tiny real-speech corpus (2 FSDD speakers, with features), built once."""

from __future__ import annotations

import pytest
import torch

from casnat.testing import fsdd_dir, make_tiny_fsdd


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests are small; one intra-op thread keeps them fast and deterministic on 2 cores."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as the trainer does; denormals make CPU math 10-100x slower


@pytest.fixture(scope="session")
def tiny_fsdd(tmp_path_factory):
    """Path of a fbank dir with cuts_{train,dev,test}.jsonl.gz (features stored with lhotse)."""
    if fsdd_dir() is None:
        pytest.skip("FSDD data not found: set CASNAT_SHARED_DATA or provide ../shared/data/fsdd")
    return make_tiny_fsdd(tmp_path_factory.mktemp("fsdd"))
