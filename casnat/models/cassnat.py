"""The CASS-NAT path: CTC path -> segments -> token-level acoustic embeddings -> NAT decoder.

The one forward of the CASS-NAT decoder, used by training (on the Viterbi alignment to the
reference, :meth:`casnat.models.asr.ASRModel.forward`) and by every decoder (on the greedy path
or on ESA's sampled paths, :mod:`casnat.decode.cassnat`). A frame-level path cuts the encoder
output into one segment per token (:func:`casnat.align.alignment_to_segments`, widened by the
config's trigger frames); the TAE extractor turns each segment into one embedding; the NAT
decoder emits every position (tokens, then eos) in one pass.

ESA decodes K paths per utterance against the same encoder output: :func:`source_kv` projects the
source-attention keys/values once per utterance and :meth:`SourceKV.index` repeats them per path,
instead of projecting ``B*K`` copies of the encoder output.

The phases are marked for :class:`casnat.profiling.PhaseRecorder` (no cost without one).

Shapes: ``enc_out (R, T, D)`` (or ``(B, T, D)`` with a :class:`SourceKV` indexed to the R
rows), ``enc_lens (R,)``, ``paths (R, T)``; ``U`` = most tokens in a row.

>>> from casnat.config import NATDecoderConfig
>>> cfg = NATDecoderConfig(num_sa_layers=1, num_mixed_layers=1, num_heads=2, ffn_dim=32)
>>> tae, dec = TAEExtractor(16, 2, 32, 0.0), NATDecoder(cfg, 16, 10)
>>> fwd = nat_forward(tae, dec, torch.randn(1, 6, 16), torch.tensor([6]),
...                   torch.tensor([[0, 5, 5, 0, 7, 0]]), blank=0)
>>> fwd.segments.tokens.tolist(), fwd.output.log_probs.shape
([[5, 7]], torch.Size([1, 3, 10]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from casnat.align import Segments, alignment_to_segments
from casnat.models.nat_decoder import NATDecoder, NATOutput
from casnat.models.tae import TAEExtractor
from casnat.nn.attention import KV, index_kv
from casnat.nn.masks import lengths_to_mask
from casnat.profiling import phase


@dataclass(frozen=True)
class SourceKV:
    """Source-attention keys/values of an encoder output, for the TAE extractor and for each
    mixed-attention block of the NAT decoder (each ``(N, H, T, dk)``)."""

    tae: KV
    nat: list[KV]

    def index(self, rows: Tensor) -> SourceKV:
        """Rows ``rows (R,)`` of every projection: one row per utterance -> one per path."""
        (tae,) = index_kv([self.tae], rows)
        return SourceKV(tae=tae, nat=index_kv(self.nat, rows))


@dataclass(frozen=True)
class NATForward:
    """Result of :func:`nat_forward`.

    Attributes:
        segments: the collapsed paths and their trigger mask ``(R, U+1, T)``.
        tae_mask: ``(R, U+1)`` bool, True on real decoder positions (tokens and eos).
        output: the NAT decoder's ``log_probs (R, U+1, V)`` (and ``inter_log_probs``).
    """

    segments: Segments
    tae_mask: Tensor
    output: NATOutput


def source_kv(tae: TAEExtractor, decoder: NATDecoder, enc_out: Tensor) -> SourceKV:
    """Project ``enc_out (B, T, D)`` once for every source attention of the CASS-NAT path."""
    with phase("source keys/values (once per utterance)"):
        return SourceKV(tae=tae.src_attn.project_kv(enc_out), nat=decoder.memory_kv(enc_out))


def nat_forward(
    tae: TAEExtractor,
    decoder: NATDecoder,
    enc_out: Tensor,
    enc_lens: Tensor,
    paths: Tensor,
    blank: int,
    source: SourceKV | None = None,
    with_inter: bool = True,
) -> NATForward:
    """Run the CASS-NAT decoder on frame-level CTC paths.

    Args:
        tae, decoder: the model's TAE extractor and NAT decoder (``decoder.cfg`` gives the
            trigger frames).
        enc_out: ``(R, T, D)`` encoder output per row, or, with ``source``, any encoder output
            whose projections ``source`` holds (then ``enc_out`` is not attended).
        enc_lens: ``(R,)`` valid frames per row.
        paths: ``(R, T)`` integer label per frame (a Viterbi alignment, a greedy or a sampled
            path); negative = padding.
        blank: the CTC blank id.
        source: :func:`source_kv` indexed to the R rows (ESA), or None to attend ``enc_out``.
        with_inter: also return the first mixed block's log-probs (the InterCE loss).

    Returns:
        :class:`NATForward`; position ``u < U`` of row r predicts token u, position
        ``segments.token_lens[r]`` predicts eos.
    """
    nd = decoder.cfg
    t = paths.size(1)
    with phase("segments / trigger mask"):
        segs = alignment_to_segments(
            paths, enc_lens, blank=blank, left_trigger=nd.left_trigger,
            right_trigger=nd.right_trigger,
        )
        pos = torch.arange(segs.trigger_mask.size(1), device=enc_out.device).unsqueeze(0)
        tae_mask = pos <= segs.token_lens.unsqueeze(1)
        enc_mask = lengths_to_mask(enc_lens, t)
    with phase("TAE extractor"):
        emb = tae(enc_out, segs.trigger_mask, None if source is None else source.tae)
    with phase("NAT decoder"):
        out = decoder(
            emb, tae_mask, enc_out, enc_mask, with_inter=with_inter,
            mem_kv=None if source is None else source.nat,
        )
    return NATForward(segments=segs, tae_mask=tae_mask, output=out)


__all__ = ["NATForward", "SourceKV", "nat_forward", "source_kv"]
