"""Test helpers that ship with the package: tiny configs and a tiny real-speech corpus.

Used by casnat's own tests and usable by anyone extending casnat.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from casnat.config import (
    ATDecoderConfig,
    DataConfig,
    EncoderConfig,
    ExperimentConfig,
    ModelConfig,
    NATDecoderConfig,
    TokenizerConfig,
    TrainConfig,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """``$CASNAT_SHARED_DATA`` or ``../shared/data`` beside the repository, if it exists."""
    env = os.environ.get("CASNAT_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


def fsdd_dir() -> Path | None:
    d = shared_data_dir()
    return d / "fsdd" if d is not None and (d / "fsdd" / "recordings").is_dir() else None


def tiny_parts(
    d_model: int = 64,
    ffn_dim: int = 128,
    conv_kernel: int = 7,
    subsampling_channels: int | None = None,
    num_mixed_layers: int = 1,
) -> tuple[EncoderConfig, ATDecoderConfig, NATDecoderConfig]:
    """Encoder, AT and NAT decoder configs of a tiny model (2 heads, 2 encoder layers, InterCTC
    at layer 1, one decoder layer of each kind, no dropout): the sizes the tests train."""
    enc = EncoderConfig(
        d_model=d_model,
        num_heads=2,
        ffn_dim=ffn_dim,
        num_layers=2,
        conv_kernel=conv_kernel,
        dropout=0.0,
        inter_ctc_layer=1,
        subsampling_channels=subsampling_channels,
    )
    at = ATDecoderConfig(num_layers=1, num_heads=2, ffn_dim=ffn_dim, dropout=0.0)
    nat = NATDecoderConfig(
        num_sa_layers=1, num_mixed_layers=num_mixed_layers, num_heads=2, ffn_dim=ffn_dim,
        dropout=0.0,
    )
    return enc, at, nat


def tiny_config(data_dir: Path, model_type: str = "ctc", **train_overrides) -> ExperimentConfig:
    """A model small enough to train a few steps in seconds on a CPU."""
    enc, at, nat = tiny_parts()
    model = ModelConfig(
        type=model_type,  # type: ignore[arg-type]
        encoder=enc,
        at_decoder=at if model_type in ("at", "cassnat") else None,
        nat_decoder=nat if model_type == "cassnat" else None,
    )
    train = TrainConfig(
        peak_lr=2e-3,
        warmup_steps=10,
        max_epochs=1,
        log_interval=2,
        checkpoint_every_steps=3,
        num_threads=1,
    )
    train = replace(train, **train_overrides)
    data = DataConfig(
        train_cuts=str(data_dir / "cuts_train.jsonl.gz"),
        dev_cuts=str(data_dir / "cuts_dev.jsonl.gz"),
        max_duration=20.0,
        num_buckets=2,
    )
    return ExperimentConfig(
        tokenizer=TokenizerConfig(kind="char"), data=data, model=model, train=train
    )


def make_tiny_fsdd(
    out_dir: Path,
    num_train: int = 24,
    num_dev: int = 6,
    num_test: int = 6,
    speakers: tuple[str, ...] = ("jackson", "george"),
) -> Path:
    """Connected-digit manifests + features from a 2-speaker FSDD subset; returns the fbank dir."""
    from casnat.data.corpora.fsdd import prepare_fsdd
    from casnat.data.features import compute_features

    src = fsdd_dir()
    if src is None:
        raise FileNotFoundError(
            "FSDD not found (set CASNAT_SHARED_DATA or place ../shared/data/fsdd)"
        )
    manifests = prepare_fsdd(
        src,
        out_dir / "manifests",
        num_train=num_train,
        num_dev=num_dev,
        num_test=num_test,
        speakers=list(speakers),
        max_digits=3,
    )
    fbank = out_dir / "fbank"
    for split, path in manifests.items():
        if split == "test_isolated":
            continue
        compute_features(path, fbank, speed_perturb=None, num_jobs=1)
    return fbank
