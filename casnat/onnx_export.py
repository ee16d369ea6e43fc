"""ONNX export of the encoder + CTC head, for greedy CTC decoding without PyTorch.

What is exported: ``(feats (B, T, F), lens (B,)) -> (log_probs (B, T', V), out_lens (B,))``, the
conformer encoder (CMVN included) and the CTC projection, with dynamic batch and time axes. The
CASS-NAT and AT decoders are **not** exported: the NAT decoder cuts the encoder output with
casnat's own CTC-alignment ops (``casnat._C``), which ONNX has no kernels for; greedy CTC is the
mode an ONNX runtime can serve on its own (on FSDD its WER equals the CASS-NAT mode's).

The ``.onnx`` file is self-contained: its metadata holds the tokenizer (units, kind and, for
sentencepiece kinds, the model bytes in base64), the feature config and the frame timing, so
:class:`OnnxRecognizer` needs nothing else. Export checks itself: onnxruntime must reproduce the
PyTorch log-probs on an input of a different length and batch size than the traced one, else the
export fails (a graph that silently baked in a shape is worse than none).

    casnat export-onnx egs/fsdd/exp/cassnat -o fsdd.onnx
    OnnxRecognizer("fsdd.onnx").transcribe(["a.wav"])[0].text
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from casnat.atomic import atomic_write_with
from casnat.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "casnat-onnx-ctc"
VERSION = 1


def _need(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise UserError(
            f"ONNX export and decoding need {name}: pip install onnx onnxruntime "
            "(or pip install casnat[onnx])"
        ) from e


class _EncoderCTC(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.model.encode(feats, lens)
        return self.model.ctc(enc.out), enc.lens


def export_onnx(
    model: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    opset: int = 17,
    atol: float = 1e-3,
) -> dict[str, Any]:
    """Export the encoder + CTC of an experiment dir or one-file model to ``out`` (atomically);
    returns the metadata written. Raises UserError when onnxruntime disagrees with PyTorch."""
    onnx = _need("onnx")
    ort = _need("onnxruntime")
    from casnat.inference import load_model

    rec = load_model(model, checkpoint, "cpu")
    net = _EncoderCTC(rec.model).eval()
    dim = rec.cfg.features.num_mel_bins
    g = torch.Generator().manual_seed(0)
    example = (torch.randn(1, 200, dim, generator=g), torch.tensor([200]))
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            net,
            example,
            buf,
            input_names=["feats", "lens"],
            output_names=["log_probs", "out_lens"],
            dynamic_axes={
                "feats": {0: "batch", 1: "frames"},
                "lens": {0: "batch"},
                "log_probs": {0: "batch", 1: "enc_frames"},
                "out_lens": {0: "batch"},
            },
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency
        )
    proto = onnx.load_from_string(buf.getvalue())
    tok = rec.tokenizer
    sp_bytes = b""
    if tok.kind in ("unigram", "bpe") and tok._sp is not None:
        sp_bytes = tok._sp.serialized_model_proto()
    meta = {
        "format": FORMAT,
        "version": str(VERSION),
        "tokenizer_kind": tok.kind,
        "tokenizer_units": json.dumps(tok.units, ensure_ascii=False),
        "tokenizer_sp_model": base64.b64encode(sp_bytes).decode(),
        "features": json.dumps(dataclasses.asdict(rec.cfg.features)),
        "frame_seconds": repr(rec.frame_seconds),
        "min_input_frames": str(rec.model.min_input_frames),
        "blank_id": str(rec.model.blank_id),
        "model_type": rec.cfg.model.type,
    }
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    data = proto.SerializeToString()

    # Self-check on a batch of 3 with another length than the traced one.
    x = torch.randn(3, 331, dim, generator=g)
    lens = torch.tensor([331, 250, 120])
    with torch.no_grad():
        want, want_lens = net(x, lens)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got, got_lens = sess.run(None, {"feats": x.numpy(), "lens": lens.numpy()})
    if not np.array_equal(got_lens, want_lens.numpy()):
        raise UserError(f"ONNX export of {model}: output lengths differ from PyTorch")
    diff = max(
        float(np.abs(got[b, :n] - want[b, :n].numpy()).max())
        for b, n in enumerate(want_lens.tolist())
    )
    if diff > atol:
        raise UserError(f"ONNX export of {model}: log-probs differ from PyTorch by {diff:.2e}")
    atomic_write_with(out, lambda f: f.write(data))
    log.info("wrote %s (max |diff| vs PyTorch %.1e)", out, diff)
    return {k: v for k, v in meta.items() if not k.startswith("tokenizer_")} | {
        "max_abs_diff": diff
    }


class OnnxRecognizer:
    """Greedy CTC transcription with onnxruntime from an :func:`export_onnx` file.

    Features are computed by casnat's own feature path (:class:`casnat.inference.FeatureMaker`),
    so they are those of training and ``casnat transcribe``."""

    def __init__(self, path: str | Path, providers: list[str] | None = None) -> None:
        ort = _need("onnxruntime")
        from casnat.config import FeatureConfig, from_dict
        from casnat.data.tokenizer import Tokenizer
        from casnat.inference import FeatureMaker

        path = Path(path)
        if not path.is_file():
            raise UserError(f"ONNX model not found: {path}")
        try:
            self.session = ort.InferenceSession(
                str(path), providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise UserError(f"{path}: not a loadable ONNX model ({e})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise UserError(f"{path}: not a casnat ONNX export (no '{FORMAT}' metadata)")
        units = json.loads(meta["tokenizer_units"])
        sp = base64.b64decode(meta.get("tokenizer_sp_model", ""))
        if sp:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "sp.model").write_bytes(sp)
                self.tokenizer = Tokenizer(meta["tokenizer_kind"], units, Path(tmp) / "sp.model")
        else:
            self.tokenizer = Tokenizer(meta["tokenizer_kind"], units)
        feats_cfg = from_dict(FeatureConfig, json.loads(meta["features"]), where=str(path))
        self.features = FeatureMaker(feats_cfg, int(meta["min_input_frames"]))
        self.frame_seconds = float(meta["frame_seconds"])
        self.blank_id = int(meta["blank_id"])

    def transcribe(self, audio: Iterable[Any], batch_size: int = 16) -> list:
        """Transcripts (:class:`casnat.inference.Transcript`) of paths, ``(samples, rate)`` pairs
        or cuts, in order; an input that cannot be read gets ``error``."""
        from casnat.decode.ctc import ctc_greedy_search
        from casnat.inference import Transcript
        from casnat.inputs import as_inputs
        from casnat.words import pieces_to_words, token_pieces

        inputs = as_inputs(audio)
        results: list[Any] = [None] * len(inputs)
        ok: list[tuple[int, torch.Tensor]] = []
        for i, inp in enumerate(inputs):
            try:
                ok.append((i, self.features(inp)))
            except UserError as e:
                results[i] = Transcript(inp.source, "", error=str(e), id=inp.id)
        for b in range(0, len(ok), batch_size):
            batch = ok[b : b + batch_size]
            lens = torch.tensor([f.shape[0] for _, f in batch])
            padded = torch.nn.utils.rnn.pad_sequence([f for _, f in batch], batch_first=True)
            lp, out_lens = self.session.run(None, {"feats": padded.numpy(), "lens": lens.numpy()})
            hyps = ctc_greedy_search(
                torch.from_numpy(lp), torch.from_numpy(out_lens), self.blank_id
            )
            for (i, _), h in zip(batch, hyps, strict=True):
                inp = inputs[i]
                pieces = token_pieces(
                    self.tokenizer,
                    h.tokens,
                    h.token_starts,
                    h.token_ends,
                    h.confidences,
                    self.frame_seconds,
                )
                results[i] = Transcript(
                    inp.source,
                    self.tokenizer.decode(h.tokens),
                    id=inp.id,
                    duration=inp.duration,
                    words=pieces_to_words(pieces, self.tokenizer.kind == "word"),
                )
        return results


__all__ = ["OnnxRecognizer", "export_onnx"]
