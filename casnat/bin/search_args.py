"""Flags shared by ``casnat decode``, ``transcribe`` and ``bench-decode``.

The search flags are derived from :class:`casnat.decode.modes.DecodeOptions`, the one home of
their defaults and help texts: each field ``max_len_ratio`` becomes ``--max-len-ratio`` with the
field's type, default and ``metadata["help"]``; a ``Literal`` type gives the flag its choices,
and ``metadata["choices"]`` (a callable) gives them at parser-build time (``--mode``: the modes
registered in casnat.decode.modes, each described in the help from ``metadata["choice_help"]``).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable
from pathlib import Path


def add_model_arguments(p: argparse.ArgumentParser, exp_dir_required: bool = True) -> None:
    """``--exp-dir`` (required unless ``exp_dir_required=False``: ``casnat decode --backend
    onnx`` needs only its ONNX file), ``--checkpoint``, ``--device``, ``--num-threads``."""
    p.add_argument(
        "--exp-dir", type=Path, required=exp_dir_required, help="trained experiment directory"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="default: EXP_DIR/avg-*.pt if present, else the newest epoch checkpoint",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")


def flag_name(field_name: str) -> str:
    """``max_len_ratio`` -> ``--max-len-ratio``."""
    return "--" + field_name.replace("_", "-")


def _flag_kwargs(f: dataclasses.Field, hint: object) -> dict:
    kwargs: dict = {"default": f.default, "help": f.metadata.get("help", "")}
    choices = f.metadata.get("choices")
    if typing.get_origin(hint) is typing.Literal:
        values = typing.get_args(hint)
        kwargs.update(type=type(values[0]), choices=values)
    elif hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif hint in (int, float, str):
        kwargs["type"] = hint
    else:
        raise TypeError(f"DecodeOptions.{f.name}: no CLI flag for type {hint!r}")
    if choices is not None:
        kwargs["choices"] = tuple(choices())
    choice_help = f.metadata.get("choice_help")
    if choice_help is not None:
        described = "; ".join(f"{k}: {v}" for k, v in choice_help().items())
        kwargs["help"] = f"{kwargs['help']} ({described})"
    kwargs["help"] += (" " if kwargs["help"] else "") + "(default: %(default)s)"
    return kwargs


def add_search_arguments(p: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> None:
    """One flag per ``DecodeOptions`` field, except those named in ``exclude``."""
    from casnat.decode.modes import DecodeOptions

    hints = typing.get_type_hints(DecodeOptions)
    skip = set(exclude)
    for f in dataclasses.fields(DecodeOptions):
        if f.name not in skip:
            p.add_argument(flag_name(f.name), dest=f.name, **_flag_kwargs(f, hints[f.name]))


def search_options(args: argparse.Namespace, **overrides):
    """The ``DecodeOptions`` the parsed flags describe (fields not on ``args`` keep their
    defaults; ``overrides``, e.g. ``mode=...``, win)."""
    from casnat.decode.modes import DecodeOptions

    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(DecodeOptions)
        if hasattr(args, f.name)
    }
    values.update(overrides)
    return DecodeOptions(**values)


def load_recognizer(args: argparse.Namespace):
    import torch

    from casnat.inference import load_model

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    return load_model(args.exp_dir, args.checkpoint, args.device)
