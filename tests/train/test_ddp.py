"""2-process DDP on CPU (gloo) via torchrun: ranks see different batches, end with equal weights
(the trainer checks that across ranks and logs it), and the checkpoint holds both ranks' state."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from casnat.checkpoint import load_checkpoint, step_checkpoints
from casnat.config import save_config
from casnat.testing import tiny_config


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_torchrun_two_ranks(tiny_fsdd, tmp_path):
    cfg = tiny_config(tiny_fsdd, max_steps=4, max_epochs=4, checkpoint_every_steps=2)
    conf = tmp_path / "conf.yaml"
    save_config(cfg, conf)
    exp = tmp_path / "exp"
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "casnat.bin.train",
            "--config",
            str(conf),
            "--exp-dir",
            str(exp),
            "--device",
            "cpu",
            "--dump-batch-ids",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    b0 = (exp / "batches.rank0.txt").read_text().split("\n")
    b1 = (exp / "batches.rank1.txt").read_text().split("\n")
    ids0 = {i for line in b0 for i in line.split()[1:]}
    ids1 = {i for line in b1 for i in line.split()[1:]}
    assert ids0 and ids1 and not (ids0 & ids1), "ranks must read disjoint shards"
    log = (exp / "train.log").read_text()
    assert "weights identical on all 2 ranks" in log
    assert "weights differ" not in log
    assert not list(exp.glob("weights.rank*.pt"))
    # Numeric order (a string sort would put ckpt-10 before ckpt-2): the last is the final step.
    steps = step_checkpoints(exp)
    assert [int(p.stem.split("-")[1]) for p in steps] == sorted(
        int(p.stem.split("-")[1]) for p in exp.glob("ckpt-*.pt")
    )
    ck = load_checkpoint(steps[-1])
    assert ck["step"] == 4
    assert len(ck["samplers"]) == 2 and ck["samplers"][1]["rank"] == 1
    assert len(ck["skipped_audio"]) == 2 and len(ck["dataset_rng"]) == 2
    assert not torch.equal(ck["dataset_rng"][0], ck["dataset_rng"][1])  # seeded per rank
