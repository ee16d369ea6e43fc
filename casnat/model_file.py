"""One-file models: an experiment's weights, config, tokenizer and model card in ``model.casnat``.

An experiment directory is what training leaves behind (many checkpoints, optimizer state, logs);
a user who only wants to transcribe needs one file that cannot be half-copied. The file is a zip
archive (stored, so members can be read without inflating the weights twice) with fixed members:

* ``casnat-model.json``: ``{"format": "casnat-model", "version": 1}``, checked first, so that a
  random zip fails with a clear message;
* ``model.safetensors``: the model state (CMVN statistics included), safetensors format: loading
  it never unpickles anything, unlike a ``torch.save`` checkpoint;
* ``config.yaml``: the experiment config (model shape, features);
* ``tokenizer/tokenizer.json``, ``tokenizer/units.txt`` and, for sentencepiece kinds,
  ``tokenizer/sp.model`` (the model bytes): the same files as an experiment's ``tokenizer/``;
* ``card.json``: a model card (recipe, training data, checkpoint, WER of the exp's decode
  results and its RESULTS.md, casnat version, weights sha256).

Only these names are read (never extracted by the archive's own paths), so a crafted archive
cannot write outside a temporary directory.

>>> # export_model("egs/fsdd/exp/cassnat", "fsdd.casnat"); load_model("fsdd.casnat")
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml

from casnat.atomic import atomic_write_with
from casnat.checkpoint import default_checkpoint, load_checkpoint
from casnat.config import ExperimentConfig, from_dict, load_config, to_dict
from casnat.data.tokenizer import Tokenizer
from casnat.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "casnat-model"
VERSION = 1
MANIFEST = "casnat-model.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
CARD = "card.json"
TOKENIZER_FILES = ("tokenizer.json", "units.txt", "sp.model")


class ModelFileError(UserError):
    """A one-file model is missing, not a casnat model, or damaged; the message names it."""


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError as e:
        raise UserError(
            "one-file models need the safetensors package: pip install safetensors "
            "(or pip install casnat[model-file])"
        ) from e
    return st


def model_card(exp_dir: Path, cfg: ExperimentConfig, checkpoint: Path) -> dict[str, Any]:
    """What the model is and how good it was: recipe, data, checkpoint and the WER of every
    ``decode_*/summary.json`` in the exp dir, plus the RESULTS.md beside it (exp dir, then the
    recipe directory ``egs/<recipe>/`` when the exp dir is ``egs/<recipe>/exp/<name>``)."""
    from casnat import __version__

    exp_dir = exp_dir.resolve()
    recipe = exp_dir.parent.parent.name if exp_dir.parent.name == "exp" else None
    results: dict[str, Any] = {}
    for s in sorted(exp_dir.glob("decode_*/summary.json")):
        try:
            d = json.loads(s.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("%s: unreadable, left out of the model card", s)
            continue
        results[s.parent.name.removeprefix("decode_")] = {
            k: d[k] for k in ("utterances", "wer", "cer", "rtf") if k in d
        }
    results_md = None
    for cand in [exp_dir / "RESULTS.md"] + (
        [exp_dir.parent.parent / "RESULTS.md"] if recipe else []
    ):
        if cand.is_file():
            results_md = cand.read_text()
            break
    return {
        "name": exp_dir.name,
        "recipe": recipe,
        "model_type": cfg.model.type,
        "tokenizer": cfg.tokenizer.kind,
        "train_data": cfg.data.train_cuts,
        "dev_data": cfg.data.dev_cuts,
        "checkpoint": checkpoint.name,
        "results": results,
        "results_md": results_md,
        "casnat_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def export_model(
    exp_dir: str | Path, out: str | Path, checkpoint: str | Path | None = None
) -> dict[str, Any]:
    """Pack ``exp_dir`` (its default checkpoint unless ``checkpoint``) into ``out``, written
    atomically; returns the model card."""
    st = _safetensors()
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"experiment directory not found: {exp_dir}")
    cfg = load_config(exp_dir / CONFIG)
    tok_dir = exp_dir / "tokenizer"
    Tokenizer.load(tok_dir)  # fail here, not at the user's first transcription
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint(exp_dir)
    state = load_checkpoint(ckpt, map_location="cpu")["model"]
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"{ckpt}: model state has non-tensor entries {bad[:5]}")
    # safetensors refuses shared or strided storage: give every tensor its own contiguous copy.
    weights = st.save(
        {k: v.detach().contiguous().clone() for k, v in state.items()}, metadata={"format": FORMAT}
    )
    card = model_card(exp_dir, cfg, ckpt)
    card["weights_sha256"] = hashlib.sha256(weights).hexdigest()

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr(MANIFEST, json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
            z.writestr(CONFIG, yaml.safe_dump(to_dict(cfg), sort_keys=False))
            for name in TOKENIZER_FILES:
                if (tok_dir / name).is_file():
                    z.writestr(f"tokenizer/{name}", (tok_dir / name).read_bytes())
            z.writestr(CARD, json.dumps(card, indent=1) + "\n")
            z.writestr(WEIGHTS, weights)

    atomic_write_with(out, write)
    log.info(
        "wrote %s (%s, %.1f MiB) from %s",
        out,
        cfg.model.type,
        Path(out).stat().st_size / 2**20,
        ckpt,
    )
    return card


def _member(z: zipfile.ZipFile, path: Path, name: str) -> bytes:
    try:
        return z.read(name)
    except KeyError:
        raise ModelFileError(f"{path}: damaged casnat model (no {name})") from None
    except (zipfile.BadZipFile, OSError, ValueError) as e:  # CRC errors, truncation
        raise ModelFileError(f"{path}: damaged casnat model ({name}: {e})") from e


def read_model_file(
    path: str | Path,
) -> tuple[dict[str, torch.Tensor], ExperimentConfig, Tokenizer, dict[str, Any]]:
    """Weights, config, tokenizer and card of a one-file model, without unpickling."""
    st = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelFileError(f"{path}: not a casnat model file ({e})") from e
    with z:
        if MANIFEST not in z.namelist():
            raise ModelFileError(
                f"{path}: not a casnat model file (no {MANIFEST}; make one "
                "with 'casnat export-model')"
            )
        try:
            manifest = json.loads(_member(z, path, MANIFEST))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelFileError(f"{path}: not a casnat model file ({MANIFEST}: {e})") from e
        if manifest.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not a casnat model file")
        if int(manifest.get("version", 0)) > VERSION:
            raise ModelFileError(
                f"{path}: model file version {manifest['version']} is newer "
                f"than this casnat reads ({VERSION}); upgrade casnat"
            )
        try:
            raw = yaml.safe_load(_member(z, path, CONFIG).decode()) or {}
        except yaml.YAMLError as e:
            raise ModelFileError(f"{path}: damaged config.yaml ({e})") from e
        cfg = from_dict(ExperimentConfig, raw, where=f"{path}:{CONFIG}")
        try:
            state = st.load(_member(z, path, WEIGHTS))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error type
            raise ModelFileError(f"{path}: damaged weights ({e})") from e
        card = json.loads(_member(z, path, CARD)) if CARD in z.namelist() else {}
        with tempfile.TemporaryDirectory(prefix="casnat-tok-") as tmp:
            for name in TOKENIZER_FILES:
                member = f"tokenizer/{name}"
                if member in z.namelist():
                    (Path(tmp) / name).write_bytes(_member(z, path, member))
            try:
                tokenizer = Tokenizer.load(tmp)  # sentencepiece reads its model right away
            except (FileNotFoundError, ValueError, OSError, RuntimeError) as e:
                raise ModelFileError(f"{path}: damaged tokenizer ({e})") from e
    return state, cfg, tokenizer, card


def load_model_file(path: str | Path):
    """``(ASRModel, Tokenizer, ExperimentConfig, card)`` of a one-file model (model on CPU)."""
    from casnat.models.asr import ASRModel

    state, cfg, tokenizer, card = read_model_file(path)
    model = ASRModel(cfg.model, tokenizer.vocab_size, cfg.features.num_mel_bins)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:200]
        raise ModelFileError(f"{path}: weights do not fit the config ({first})") from e
    return model, tokenizer, cfg, card


def is_model_file(path: str | Path) -> bool:
    """A zip whose manifest says casnat-model (cheap: reads only the manifest)."""
    path = Path(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return MANIFEST in z.namelist()


__all__ = [
    "ModelFileError",
    "export_model",
    "is_model_file",
    "load_model_file",
    "model_card",
    "read_model_file",
]
