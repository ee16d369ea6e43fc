"""The decoding-mode registry: every mode is declared here once, and everything else reads it.

A mode is a :class:`DecodingMode`: a name, the heads it needs (``at_decoder``, ``nat_decoder``),
a search function, a one-line description, and whether the recipes decode with it by default.
``MODES`` (the names, in registration order), :func:`supported_modes`, :func:`check_mode`,
``casnat.decode.runner.decode_batch``, the ``--mode`` choices and ``--list-modes`` of the CLI,
the benchmark's ``--modes`` default and the recipes' default set (``egs/decode_modes.sh``) all
come from it, so a new mode is one search function plus one :func:`register_mode` call.

:class:`DecodeOptions` is the one home of the search options: their defaults and help texts
(field metadata) are what ``casnat decode``, ``transcribe`` and ``bench-decode`` turn into flags
(``casnat.bin.search_args``: kebab-case of the field name, ``Literal`` types -> choices).

>>> "cassnat_esa" in MODES
True
>>> [m.name for m in recipe_default_modes()]
['ctc_greedy', 'at_beam', 'joint_ctc_at', 'attention_rescoring', 'cassnat', 'cassnat_esa']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor

from casnat.config import ModelConfig
from casnat.decode.at_beam import at_beam_search
from casnat.decode.cassnat import cassnat_search
from casnat.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search
from casnat.decode.joint import joint_beam_search, with_ctc_timing
from casnat.decode.rescore import attention_rescoring
from casnat.decode.results import Hypothesis
from casnat.errors import UnsupportedModeError, UserError
from casnat.models.asr import ASRModel, has_at_decoder, has_nat_decoder, make_pad_mask

Head = Literal["at_decoder", "nat_decoder"]

# What each head is called in errors, and how a saved config tells whether the model has it.
HEADS: dict[str, tuple[str, Callable[[ModelConfig], bool]]] = {
    "at_decoder": ("an AT decoder", has_at_decoder),
    "nat_decoder": ("a CASS-NAT decoder", has_nat_decoder),
}


def _mode_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def _mode_descriptions() -> dict[str, str]:
    return {name: m.description for name, m in _REGISTRY.items()}


@dataclass(frozen=True)
class DecodeOptions:
    """Search options of every mode; each field becomes a CLI flag (``--max-len-ratio``).

    ``metadata["help"]`` is the flag's help text; ``metadata["choices"]``, when given, is a
    callable returning the allowed values at parser-build time (the registered modes), and
    ``metadata["choice_help"]`` one returning a description of each.
    """

    mode: str = field(
        default="ctc_greedy",
        metadata={
            "help": "decoding mode",
            "choices": _mode_names,
            "choice_help": _mode_descriptions,
        },
    )
    beam: int = field(
        default=10,
        metadata={
            "help": "beam size of ctc_prefix_beam, at_beam and joint_ctc_at; the CTC n-best size "
            "of attention_rescoring"
        },
    )
    num_samples: int = field(default=16, metadata={"help": "cassnat_esa: K alignments"})
    threshold: float = field(
        default=0.9,
        metadata={"help": "cassnat_esa: frames whose top posterior is below this are resampled"},
    )
    ranker: Literal["auto", "at", "nat"] = field(
        default="auto",
        metadata={"help": "cassnat_esa ranker (auto: the AT decoder if the model has one)"},
    )
    seed: int = field(
        default=0,
        metadata={
            "help": "cassnat_esa sampling seed (flips seeded per frame: an utterance's result "
            "does not depend on the batch it is decoded in)"
        },
    )
    max_len_ratio: float = field(
        default=1.0,
        metadata={"help": "at_beam / joint_ctc_at: max output length = this x encoder frames"},
    )
    # 0 ranks by the raw sum, which favours ending early (the AT's usual deletion error).
    length_penalty: float = field(
        default=0.0,
        metadata={
            "help": "at_beam / joint_ctc_at: rank finished hypotheses by score / (tokens + 1) "
            "** this (0 = raw sum)"
        },
    )
    # Defaults tuned on FSDD dev (tools/at_diagnose.py, casnat decode --ctc-weight ...): this
    # project's CTC head is far stronger than its AT decoder, so CTC gets the larger share, unlike
    # ESPnet's 0.3 (there the attention decoder is the stronger one).
    ctc_weight: float = field(
        default=0.7,
        metadata={
            "help": "joint_ctc_at: score = (1 - w) log P_att + w log P_ctc (prefix scores per "
            "step, the full-sequence CTC score at eos); 0 = at_beam, 1 = CTC only"
        },
    )
    at_weight: float = field(
        default=0.3,
        metadata={
            "help": "attention_rescoring: the CTC n-best ranked by w log P_att(y, eos) + (1 - w) "
            "log P_ctc(y), both summed over the hypothesis; 0 = the CTC prefix beam's best"
        },
    )
    esa_ctc_weight: float = field(
        default=0.5,
        metadata={
            "help": "cassnat_esa: rank by (1 - w) ranker score + w log P_ctc(y) / (tokens + 1), "
            "both per token (0 = the ranker alone, the behaviour before this option)"
        },
    )
    # bf16 runs the encoder (most of a NAT decode's time) under autocast; its output is cast
    # back to fp32, so CTC, the alignment ops and every decoder see fp32 as in training's losses.
    dtype: Literal["fp32", "bf16"] = field(
        default="fp32",
        metadata={"help": "encoder precision: bf16 autocast (CPUs with native bf16, GPUs) or fp32"},
    )

    def __post_init__(self) -> None:
        # Weights outside [0, 1] would silently flip what a score rewards: refuse them here,
        # where the CLI, bench-decode and the API all pass.
        for name in ("ctc_weight", "at_weight", "esa_ctc_weight"):
            w = getattr(self, name)
            if not 0.0 <= w <= 1.0:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} must be in [0, 1], got {w}")


# search(model, enc_out (N, T, D), enc_lens (N,), ctc_log_probs (N, T, V), opts) -> best per utt
SearchFn = Callable[[ASRModel, Tensor, Tensor, Tensor, DecodeOptions], list[Hypothesis]]


@dataclass(frozen=True)
class DecodingMode:
    """One decoding mode: what it is called, what it needs and how it searches."""

    name: str
    search: SearchFn
    description: str
    needs: tuple[Head, ...] = ()
    recipe_default: bool = False  # recipes (and bench-decode) decode with it unless told

    def __post_init__(self) -> None:
        unknown = [h for h in self.needs if h not in HEADS]
        if unknown:
            raise ValueError(f"mode '{self.name}': unknown heads {unknown} (known: {list(HEADS)})")


_REGISTRY: dict[str, DecodingMode] = {}


class ModeNames(Sequence[str]):
    """Live, read-only view of the registered mode names, in registration order.

    Compares equal to a tuple or list of the same names, so ``supported_modes(cfg) == MODES``
    reads as it did when ``MODES`` was a tuple, and a mode registered later shows up in it.
    """

    def __getitem__(self, i):  # type: ignore[override]
        return _mode_names()[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(_mode_names())

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ModeNames | tuple | list):
            return _mode_names() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MODES{_mode_names()!r}"


MODES = ModeNames()


def register_mode(mode: DecodingMode) -> DecodingMode:
    """Add ``mode`` to the registry (after the modes registered before it)."""
    if mode.name in _REGISTRY:
        raise ValueError(f"decoding mode '{mode.name}' is already registered")
    _REGISTRY[mode.name] = mode
    return mode


def unregister_mode(name: str) -> None:
    """Remove a mode (tests that register a toy mode undo it with this)."""
    get_mode(name)
    del _REGISTRY[name]


def get_mode(name: str) -> DecodingMode:
    """The registered mode called ``name``; an unknown name is an error naming the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedModeError(
            f"unknown decoding mode '{name}' (choose from {', '.join(_REGISTRY)})"
        ) from None


def recipe_default_modes() -> tuple[DecodingMode, ...]:
    """The modes recipes and ``casnat bench-decode`` decode with unless told otherwise."""
    return tuple(m for m in _REGISTRY.values() if m.recipe_default)


def supported_modes(cfg: ModelConfig, recipe_defaults_only: bool = False) -> tuple[str, ...]:
    """The modes a model of this (saved) config can decode with, in ``MODES`` order.

    Reads only the config, so ``casnat decode --list-modes`` needs no checkpoint.
    """
    return tuple(
        m.name
        for m in _REGISTRY.values()
        if all(HEADS[h][1](cfg) for h in m.needs) and (m.recipe_default or not recipe_defaults_only)
    )


def check_mode(model: ASRModel, mode: str) -> None:
    """Fail early, with the reason, when ``mode`` is unknown or the model lacks a head it needs."""
    spec = get_mode(mode)
    for head in spec.needs:
        if getattr(model, head, None) is None:
            raise UnsupportedModeError(
                f"mode '{mode}' needs {HEADS[head][0]}; this model (type '{model.cfg.type}') "
                f"decodes with {', '.join(supported_modes(model.cfg))}"
            )


# The built-in modes -----------------------------------------------------------------------------
def _ctc_greedy(model, enc_out, enc_lens, log_probs, opts):
    return ctc_greedy_search(log_probs, enc_lens, blank=model.blank_id)


def _ctc_prefix_beam(model, enc_out, enc_lens, log_probs, opts):
    nbest = ctc_prefix_beam_search(log_probs, enc_lens, beam=opts.beam, blank=model.blank_id)
    return [nb[0] for nb in nbest]


def _at_beam(model, enc_out, enc_lens, log_probs, opts):
    mask = make_pad_mask(enc_lens, enc_out.size(1))
    max_len = (enc_lens.float() * opts.max_len_ratio).long().clamp(min=1)
    nbest = at_beam_search(
        model.at_decoder,
        enc_out,
        mask,
        beam=opts.beam,
        sos=model.sos_id,
        eos=model.eos_id,
        max_len=max_len,
        length_penalty=opts.length_penalty,
    )
    return [nb[0] for nb in nbest]


def _max_len(enc_lens: Tensor, opts: DecodeOptions) -> Tensor:
    return (enc_lens.float() * opts.max_len_ratio).long().clamp(min=1)


def _joint_ctc_at(model, enc_out, enc_lens, log_probs, opts):
    nbest = joint_beam_search(
        model.at_decoder,
        enc_out,
        make_pad_mask(enc_lens, enc_out.size(1)),
        log_probs,
        beam=opts.beam,
        sos=model.sos_id,
        eos=model.eos_id,
        blank=model.blank_id,
        max_len=_max_len(enc_lens, opts),
        ctc_weight=opts.ctc_weight,
        length_penalty=opts.length_penalty,
    )
    return with_ctc_timing([nb[0] for nb in nbest], log_probs, enc_lens, model.blank_id)


def _attention_rescoring(model, enc_out, enc_lens, log_probs, opts):
    return attention_rescoring(
        model.at_decoder,
        enc_out,
        make_pad_mask(enc_lens, enc_out.size(1)),
        log_probs,
        nbest=opts.beam,
        at_weight=opts.at_weight,
        blank=model.blank_id,
    )


def _cassnat(num_samples: Callable[[DecodeOptions], int]) -> SearchFn:
    def search(model, enc_out, enc_lens, log_probs, opts):
        return cassnat_search(
            model,
            enc_out,
            enc_lens,
            log_probs,
            num_samples=num_samples(opts),
            threshold=opts.threshold,
            ranker=opts.ranker,
            seed=opts.seed,
            ctc_weight=opts.esa_ctc_weight,
        )

    return search


register_mode(DecodingMode(
    "ctc_greedy", _ctc_greedy, "best CTC path, repeats merged and blanks dropped",
    recipe_default=True,
))
register_mode(DecodingMode(
    "ctc_prefix_beam", _ctc_prefix_beam, "CTC prefix beam search (--beam)",
))
register_mode(DecodingMode(
    "at_beam", _at_beam,
    "autoregressive decoder beam search (--beam, --length-penalty, --max-len-ratio)",
    needs=("at_decoder",), recipe_default=True,
))
register_mode(DecodingMode(
    "joint_ctc_at", _joint_ctc_at,
    "joint CTC/attention beam search: AT beam with CTC prefix scores (--beam, --ctc-weight, "
    "--length-penalty, --max-len-ratio)",
    needs=("at_decoder",), recipe_default=True,
))
register_mode(DecodingMode(
    "attention_rescoring", _attention_rescoring,
    "CTC prefix beam n-best rescored by the AT decoder (--beam, --at-weight)",
    needs=("at_decoder",), recipe_default=True,
))
register_mode(DecodingMode(
    "cassnat", _cassnat(lambda opts: 1),
    "CASS-NAT: all tokens in one pass on the greedy CTC alignment",
    needs=("nat_decoder",), recipe_default=True,
))
register_mode(DecodingMode(
    "cassnat_esa", _cassnat(lambda opts: opts.num_samples),
    "CASS-NAT on K sampled alignments, the best chosen by the ranker (--num-samples, "
    "--threshold, --ranker, --seed)",
    needs=("nat_decoder",), recipe_default=True,
))

__all__ = [
    "HEADS",
    "MODES",
    "DecodeOptions",
    "DecodingMode",
    "ModeNames",
    "SearchFn",
    "check_mode",
    "get_mode",
    "recipe_default_modes",
    "register_mode",
    "supported_modes",
    "unregister_mode",
]
