"""What an encoder is to the rest of casnat, and the registry that builds one from the config.

An encoder maps ``feats (N, T, F), feat_lens (N,)`` to an :class:`EncoderOutput` at a lower
frame rate. Everything downstream (CTC, the decoders, the timestamps, the shortest decodable
input) reads the encoder's geometry from its :class:`Encoder` properties, never from a constant,
so an encoder with another front end gives correct timestamps without other changes.

A new encoder is one module defining an ``nn.Module`` with this interface, plus one line in
:data:`ENCODERS`; ``model.encoder.type`` in the config selects it.

>>> from casnat.config import EncoderConfig
>>> enc = build_encoder(EncoderConfig(d_model=16, num_heads=2, ffn_dim=32, num_layers=2))
>>> type(enc).__name__, enc.d_model, enc.subsampling_factor, enc.min_input_frames
('ConformerEncoder', 16, 4, 7)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from casnat.config import ConfigError, EncoderConfig
from casnat.nn.masks import lengths_to_mask


@dataclass
class EncoderOutput:
    """Encoder result.

    Attributes:
        out: (N, T', D) final layer output.
        lens: (N,) valid frames per utterance.
        inter: (N, T', D) output of an intermediate layer (InterCTC), or None.
    """

    out: Tensor
    lens: Tensor
    inter: Tensor | None = None

    @property
    def mask(self) -> Tensor:
        """(N, T') bool, True = valid frame."""
        return lengths_to_mask(self.lens, self.out.size(1))


@runtime_checkable
class Encoder(Protocol):
    """The interface ``ASRModel`` needs of an encoder (which must also be an ``nn.Module``)."""

    @property
    def d_model(self) -> int:
        """Width D of the output frames."""
        ...

    @property
    def subsampling_factor(self) -> int:
        """Input feature frames per output frame: an output frame lasts
        ``subsampling_factor x`` the feature frame shift."""
        ...

    @property
    def min_input_frames(self) -> int:
        """Fewest input feature frames that give at least one output frame."""
        ...

    def __call__(self, feats: Tensor, feat_lens: Tensor) -> EncoderOutput:
        """feats (N, T, F), feat_lens (N,) -> EncoderOutput (out (N, T', D), lens (N,))."""
        ...


EncoderBuilder = Callable[[EncoderConfig], Encoder]

#: ``model.encoder.type`` -> its builder (called with the ``EncoderConfig``), or the builder as
#: ``"module:attribute"``: the built-in encoders are named by string so that this module does not
#: import them (they import :class:`EncoderOutput` from here) until one is built.
ENCODERS: dict[str, EncoderBuilder | str] = {
    "conformer": "casnat.models.conformer:ConformerEncoder",
}


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    """The encoder ``cfg.type`` names, built from ``cfg``.

    Raises:
        ConfigError: ``cfg.type`` is not in :data:`ENCODERS` (the message lists the known ones),
            or the builder returned something that is not an ``nn.Module`` :class:`Encoder`.
    """
    builder = ENCODERS.get(cfg.type)
    if builder is None:
        raise ConfigError(
            f"model.encoder.type: unknown encoder '{cfg.type}' (known: {', '.join(ENCODERS)})"
        )
    if isinstance(builder, str):
        module, _, attr = builder.partition(":")
        builder = getattr(importlib.import_module(module), attr)
    enc = builder(cfg)
    if not isinstance(enc, nn.Module) or not isinstance(enc, Encoder):
        raise ConfigError(
            f"model.encoder.type '{cfg.type}': the builder returned {type(enc).__name__}, "
            "expected an nn.Module with d_model, subsampling_factor and min_input_frames"
        )
    return enc


def __getattr__(name: str) -> Any:
    # ``from casnat.models.encoder import ConformerEncoder`` (the class lived here before the
    # Conformer got its own module) still works, imported on first use to avoid an import cycle.
    if name in ("ConformerEncoder", "ConformerBlock"):
        from casnat.models import conformer

        return getattr(conformer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ENCODERS", "Encoder", "EncoderBuilder", "EncoderOutput", "build_encoder"]
