"""The recognizer: CMVN + encoder + CTC, optionally an AT and a CASS-NAT decoder.

One class serves all three model types of the config (``ctc``, ``at``, ``cassnat``) so that one
trained model can be decoded in every mode and compared side by side; which heads exist is decided
once, at construction, from the config, and ``forward`` runs exactly the heads that exist. The
encoder is built by ``model.encoder.type`` (:func:`casnat.models.encoder.build_encoder`); the
CASS-NAT path (:mod:`casnat.models.cassnat`) is one forward, :meth:`ASRModel.nat_forward`, for the
training loss and every decoder alike.

Shapes: ``feats (N, T, F)``, ``feat_lens (N,)``, ``tokens (N, U)`` padded -1, ``token_lens (N,)``.

>>> from casnat.config import ModelConfig
>>> model = ASRModel(ModelConfig(), vocab_size=12)
>>> losses = model(torch.randn(2, 100, 80), torch.tensor([100, 80]),
...                torch.tensor([[2, 3], [4, -1]]), torch.tensor([2, 1]))
>>> losses.total.shape
torch.Size([])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from casnat.align import ctc_viterbi_align
from casnat.config import ModelConfig
from casnat.models.at_decoder import ATDecoder
from casnat.models.cassnat import NATForward, SourceKV, nat_forward, source_kv
from casnat.models.ctc import CTCHead
from casnat.models.encoder import Encoder, EncoderOutput, build_encoder
from casnat.models.nat_decoder import NATDecoder
from casnat.models.tae import TAEExtractor
from casnat.nn.masks import lengths_to_mask


@dataclass(frozen=True)
class Losses:
    """Weighted total and its parts (parts are detached, for logging). Absent heads give 0."""

    total: Tensor
    ctc: Tensor
    inter_ctc: Tensor
    at: Tensor
    ce: Tensor
    inter_ce: Tensor
    num_utts: int
    num_tokens: int
    num_unaligned: int = (
        0  # utterances whose reference has no CTC path (too short): NAT loss skipped
    )

    def parts(self) -> dict[str, float]:
        return {
            "total": float(self.total.detach()),
            "ctc": float(self.ctc),
            "inter_ctc": float(self.inter_ctc),
            "at": float(self.at),
            "ce": float(self.ce),
            "inter_ce": float(self.inter_ce),
        }


def label_smoothing_loss(log_probs: Tensor, targets: Tensor, smoothing: float) -> Tensor:
    """Sum over valid positions of the label-smoothed NLL.

    log_probs (N, L, V), targets (N, L) with -1 = ignore. Smoothing mass is spread uniformly over V.
    """
    valid = targets >= 0
    safe = targets.clamp(min=0)
    nll = -log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    uniform = -log_probs.mean(dim=-1)
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    return (loss * valid).sum()


#: Old name of :func:`casnat.nn.masks.lengths_to_mask`, kept for ``casnat.decode.runner``.
make_pad_mask = lengths_to_mask


def has_at_decoder(cfg: ModelConfig) -> bool:
    """Whether a model of this config has an AT decoder (the ``at`` model, or a CASS-NAT model
    with an ``at_decoder`` section as its ESA ranker). Decoders ask this of a saved config."""
    return cfg.type == "at" or (cfg.type == "cassnat" and cfg.at_decoder is not None)


def has_nat_decoder(cfg: ModelConfig) -> bool:
    """Whether a model of this config has the TAE extractor and the CASS-NAT decoder."""
    return cfg.type == "cassnat"


class ASRModel(nn.Module):
    """CMVN -> encoder -> {CTC, InterCTC, AT decoder, TAE + NAT decoder}."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, feat_dim: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.blank_id = 0
        self.sos_id = self.eos_id = vocab_size - 1
        feat_dim = feat_dim or cfg.encoder.input_dim
        # Global CMVN lives in the model so a checkpoint decodes raw fbank without side files.
        self.register_buffer("cmvn_mean", torch.zeros(feat_dim))
        self.register_buffer("cmvn_istd", torch.ones(feat_dim))
        self.encoder: Encoder = build_encoder(cfg.encoder)
        d = self.encoder.d_model
        self.ctc = CTCHead(d, vocab_size)
        self.at_decoder: ATDecoder | None = None
        if has_at_decoder(cfg):
            if cfg.at_decoder is None:
                raise ValueError("model.type 'at' needs a model.at_decoder section")
            self.at_decoder = ATDecoder(cfg.at_decoder, d, vocab_size)
        self.tae: TAEExtractor | None = None
        self.nat_decoder: NATDecoder | None = None
        if has_nat_decoder(cfg):
            if cfg.nat_decoder is None:
                raise ValueError("model.type 'cassnat' needs a model.nat_decoder section")
            nd = cfg.nat_decoder
            self.tae = TAEExtractor(d, nd.num_heads, nd.ffn_dim, nd.dropout)
            self.nat_decoder = NATDecoder(nd, d, vocab_size)

    @property
    def subsampling_factor(self) -> int:
        """Feature frames per encoder frame (the encoder's): timestamps are
        ``frame * subsampling_factor * frame_shift``."""
        return self.encoder.subsampling_factor

    @property
    def min_input_frames(self) -> int:
        """Fewest feature frames the encoder accepts (shorter audio cannot be decoded)."""
        return self.encoder.min_input_frames

    def nat_source_kv(self, enc_out: Tensor) -> SourceKV:
        """Source-attention keys/values of ``enc_out (B, T, D)`` for :meth:`nat_forward`, projected
        once per utterance; ``.index(rows)`` repeats them for several paths per utterance (ESA)."""
        tae, dec = self._nat_parts()
        return source_kv(tae, dec, enc_out)

    def nat_forward(
        self,
        enc_out: Tensor,
        enc_lens: Tensor,
        paths: Tensor,
        source: SourceKV | None = None,
        with_inter: bool = True,
    ) -> NATForward:
        """The CASS-NAT path on frame-level CTC paths ``(R, T)``: segments, TAEs, NAT decoder.

        See :func:`casnat.models.cassnat.nat_forward`; training passes the Viterbi alignment to
        the reference, decoding the greedy or the sampled paths.
        """
        tae, dec = self._nat_parts()
        return nat_forward(tae, dec, enc_out, enc_lens, paths, self.blank_id, source, with_inter)

    def _nat_parts(self) -> tuple[TAEExtractor, NATDecoder]:
        if self.tae is None or self.nat_decoder is None:
            raise ValueError(
                f"model.type '{self.cfg.type}' has no CASS-NAT decoder (needs model.type cassnat)"
            )
        return self.tae, self.nat_decoder

    def set_cmvn(self, mean: Tensor, std: Tensor) -> None:
        self.cmvn_mean.copy_(mean)
        self.cmvn_istd.copy_(1.0 / std.clamp(min=1e-5))

    def encode(self, feats: Tensor, feat_lens: Tensor) -> EncoderOutput:
        """Normalize and encode. feats (N, T, F) -> out (N, T', D), lens (N,)."""
        x = (feats - self.cmvn_mean) * self.cmvn_istd
        return self.encoder(x, feat_lens)

    def forward(
        self, feats: Tensor, feat_lens: Tensor, tokens: Tensor, token_lens: Tensor
    ) -> Losses:
        lc = self.cfg.loss
        n = feats.size(0)
        enc = self.encode(feats, feat_lens)
        zero = enc.out.new_zeros(())
        log_probs = self.ctc(enc.out)
        ctc_loss = self.ctc.loss(log_probs, enc.lens, tokens, token_lens)
        inter_ctc = zero
        total = ctc_loss
        if enc.inter is not None:
            # InterCTC shares the CTC projection: it pulls the lower layers toward the same targets.
            inter_ctc = self.ctc.loss(self.ctc(enc.inter), enc.lens, tokens, token_lens)
            total = lc.ctc * ctc_loss + lc.inter_ctc * inter_ctc
        enc_mask = lengths_to_mask(enc.lens, enc.out.size(1))
        at_loss = zero
        if self.at_decoder is not None:
            ys_in, ys_out = ATDecoder.add_sos_eos(tokens, token_lens, self.sos_id, self.eos_id)
            at_lp = self.at_decoder(ys_in, token_lens + 1, enc.out, enc_mask)
            at_loss = label_smoothing_loss(at_lp, ys_out, lc.label_smoothing) / n
            weight = 1.0 if self.cfg.type == "at" else lc.at
            total = total + weight * at_loss
        ce = inter_ce = zero
        unaligned = 0
        if self.nat_decoder is not None:
            ce, inter_ce, unaligned = self._nat_loss(log_probs, enc, tokens, token_lens)
            total = total + lc.ce * ce + lc.inter_ce * inter_ce
        return Losses(
            total=total,
            ctc=ctc_loss.detach(),
            inter_ctc=inter_ctc.detach(),
            at=at_loss.detach(),
            ce=ce.detach(),
            inter_ce=inter_ce.detach(),
            num_utts=n,
            num_tokens=int(token_lens.sum()),
            num_unaligned=unaligned,
        )

    def _nat_loss(
        self,
        log_probs: Tensor,
        enc: EncoderOutput,
        tokens: Tensor,
        token_lens: Tensor,
    ) -> tuple[Tensor, Tensor, int]:
        """CE of the NAT decoder on segments cut by the Viterbi alignment to the reference."""
        with torch.no_grad():
            alignment, scores = ctc_viterbi_align(
                log_probs.detach().float(),
                enc.lens,
                tokens.clamp(min=0),
                token_lens,
                blank=self.blank_id,
            )
        fwd = self.nat_forward(enc.out, enc.lens, alignment)
        ok = torch.isfinite(scores)
        n = tokens.size(0)
        u_max = fwd.segments.trigger_mask.size(1)
        # Targets: the reference then eos at position U (a Viterbi path collapses to the reference).
        ys = torch.full((n, u_max), -1, dtype=torch.long, device=tokens.device)
        ys[:, : min(tokens.size(1), u_max)] = tokens[:, :u_max]
        pos = torch.arange(u_max, device=tokens.device).unsqueeze(0)
        ys = torch.where(pos < token_lens.unsqueeze(1), ys, torch.full_like(ys, -1))
        ys = torch.where(pos == token_lens.unsqueeze(1), torch.full_like(ys, self.eos_id), ys)
        ys[~ok] = -1
        out = fwd.output
        ls = self.cfg.loss.label_smoothing
        ce = label_smoothing_loss(out.log_probs, ys, ls) / n
        inter = enc.out.new_zeros(())
        if out.inter_log_probs is not None:
            inter = label_smoothing_loss(out.inter_log_probs, ys, ls) / n
        return ce, inter, int((~ok).sum())


__all__ = ["ASRModel", "Losses", "label_smoothing_loss", "make_pad_mask"]
