"""Everything a training run needs besides the model: tokenizer, CMVN statistics, data loaders.

The tokenizer and CMVN are fitted on the training data once, by rank 0, and saved in the experiment
directory (``tokenizer/``, ``cmvn.pt``), so a resumed run reads exactly the same ones. Decoding
reads ``tokenizer/`` too, but not ``cmvn.pt``: the trainer copies the statistics into the model
(``ASRModel.set_cmvn``), so every checkpoint carries them in its model state.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lhotse import CutSet

from casnat.atomic import atomic_torch_save
from casnat.checkpoint import load_checkpoint
from casnat.config import ExperimentConfig
from casnat.data.cmvn import compute_global_cmvn
from casnat.data.loader import make_eval_loader, make_train_loader
from casnat.data.tokenizer import Tokenizer
from casnat.data.validate import ManifestError, read_cuts_checked
from casnat.errors import UserError
from casnat.train.distributed import DistInfo

log = logging.getLogger(__name__)

_SPEED_SUFFIX = re.compile(r"_sp[0-9.]+$")  # lhotse's perturb_speed id suffix


@dataclass
class Experiment:
    tokenizer: Tokenizer
    cmvn_mean: torch.Tensor
    cmvn_std: torch.Tensor
    train_loader: Any
    sampler: Any
    train_dataset: Any
    valid_loader: Any | None


def _barrier(info: DistInfo) -> None:
    if info.world_size > 1 and dist.is_initialized():
        dist.barrier()


def _open_cuts(path_str: str, what: str, check: bool = True) -> CutSet:
    path = Path(path_str)
    if not path.is_file():
        raise UserError(
            f"data.{what}: cuts manifest not found: {path} (run the recipe's data stages)"
        )
    if not check:  # data.check_manifests: false
        return CutSet.from_jsonl_lazy(path)
    try:  # a malformed line: one line naming it, not a traceback from inside the loader
        return read_cuts_checked(path, lazy=True)  # checked, then read lazily
    except ManifestError as e:
        raise UserError(f"data.{what}: {e}") from None


def _texts(cuts: CutSet) -> list[str]:
    """Transcripts of the unperturbed cuts (speed-perturbed copies repeat the same text)."""
    out = []
    for cut in cuts:
        if _SPEED_SUFFIX.search(cut.id):
            continue
        out.extend(s.text for s in cut.supervisions if s.text)
    if not out:  # every cut was perturbed or ids follow another scheme: use all of them
        out = [s.text for cut in cuts for s in cut.supervisions if s.text]
    return out


def prepare_experiment(cfg: ExperimentConfig, exp_dir: Path, info: DistInfo) -> Experiment:
    train_cuts = _open_cuts(cfg.data.train_cuts, "train_cuts", cfg.data.check_manifests)
    tok_dir = exp_dir / "tokenizer"
    cmvn_path = exp_dir / "cmvn.pt"
    if info.is_main:
        if not tok_dir.is_dir():
            log.info(
                f"training a {cfg.tokenizer.kind} tokenizer (vocab {cfg.tokenizer.vocab_size})"
            )
            # Trained into a temporary directory, then renamed: a run killed meanwhile must not
            # leave a half-written tokenizer/ that its --resume would then take as finished.
            tmp_dir = exp_dir / ".tokenizer.tmp"
            shutil.rmtree(tmp_dir, ignore_errors=True)
            Tokenizer.train(_texts(train_cuts), cfg.tokenizer, tmp_dir)
            os.replace(tmp_dir, tok_dir)
        if not cmvn_path.exists():
            log.info("computing global CMVN on the training features")
            mean, std = compute_global_cmvn(train_cuts, feature_cfg=cfg.features)
            atomic_torch_save({"mean": mean, "std": std}, cmvn_path)
    _barrier(info)
    tokenizer = Tokenizer.load(tok_dir)
    cmvn = load_checkpoint(cmvn_path)
    loader, sampler = make_train_loader(
        train_cuts,
        tokenizer,
        cfg.data,
        seed=cfg.train.seed,
        world_size=info.world_size,
        rank=info.rank,
        feature_cfg=cfg.features,
    )
    valid_loader = None
    if cfg.data.dev_cuts:
        dev_cuts = _open_cuts(cfg.data.dev_cuts, "dev_cuts", cfg.data.check_manifests)
        valid_loader = make_eval_loader(
            dev_cuts,
            tokenizer,
            cfg.data.max_duration,
            on_the_fly=cfg.data.on_the_fly_feats,
            feature_cfg=cfg.features,
        )
    return Experiment(
        tokenizer=tokenizer,
        cmvn_mean=cmvn["mean"].float(),
        cmvn_std=cmvn["std"].float(),
        train_loader=loader,
        sampler=sampler,
        train_dataset=loader.dataset,
        valid_loader=valid_loader,
    )
