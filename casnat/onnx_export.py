"""ONNX export of the encoder + CTC and of the CASS-NAT decoder path, decoded with onnxruntime.

What is exported, with dynamic batch, frame and position axes:

* ``OUT`` (the encoder graph): ``(feats (B, T, F), lens (B,)) -> (log_probs (B, T', V),
  out_lens (B,), enc_out (B, T', D))``: CMVN, the encoder and the CTC projection.
* ``OUT`` with ``.onnx`` -> ``.nat.onnx`` (the NAT graph, CASS-NAT models only):
  ``(enc_out (B, T', D), enc_lens (B,), trigger_mask (B, U+1, T') bool, token_lens (B,)) ->
  nat_log_probs (B, U+1, V)``: the TAE extractor and the NAT decoder.

Why two graphs: between them lies the greedy CTC alignment and its segments (argmax, token runs,
trigger mask), integer bookkeeping with a data-dependent shape that casnat computes with its own
ops; :mod:`casnat.onnx_numpy` does it in NumPy, by the same rules, so decoding needs onnxruntime
and NumPy only. :class:`OnnxRecognizer` serves the modes ``ctc_greedy`` and ``cassnat`` (the
latter when the NAT graph is there); other modes (beams, AT decoder, ESA) raise an
:class:`casnat.errors.UnsupportedModeError` naming the mode.

The encoder file is self-contained for ``ctc_greedy``: its metadata holds the tokenizer (units,
kind and, for sentencepiece kinds, the model bytes in base64), the feature config, the frame
timing, the trigger frames and the NAT graph's file name. Export checks itself: onnxruntime must
reproduce PyTorch (log-probs of both graphs, the trigger masks of :mod:`casnat.onnx_numpy`
against ``alignment_to_segments``) on inputs of other lengths and batch sizes than the traced
ones, else the export fails (a graph that silently baked in a shape is worse than none).

``int8=True`` (``--int8``) writes the graphs after onnxruntime's dynamic int8 quantization of
their MatMul/Gemm weights (activations quantized per batch at run time): smaller files, faster
CPU matrix products, slightly different log-probs (measured by ``tools/bench_onnx.py``).

    casnat export-onnx egs/fsdd/exp/cassnat -o fsdd.onnx            (fsdd.onnx + fsdd.nat.onnx)
    OnnxRecognizer("fsdd.onnx", mode="cassnat").transcribe(["a.wav"])[0].text
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from casnat.atomic import atomic_write_with
from casnat.errors import UnsupportedModeError, UserError

log = logging.getLogger(__name__)

FORMAT = "casnat-onnx-ctc"
VERSION = 2  # 2: enc_out output, the NAT graph, int8; version 1 files still decode ctc_greedy
ONNX_MODES = ("ctc_greedy", "cassnat")


def _need(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise UserError(
            f"ONNX export and decoding need {name}: pip install onnx onnxruntime "
            "(or pip install casnat[onnx])"
        ) from e


def nat_graph_path(out: str | Path) -> Path:
    """Where the NAT graph of encoder file ``out`` goes: ``m.onnx`` -> ``m.nat.onnx``."""
    out = Path(out)
    stem = out.name[: -len(".onnx")] if out.name.endswith(".onnx") else out.name
    return out.with_name(stem + ".nat.onnx")


class _EncoderCTC(torch.nn.Module):
    """The encoder graph: the encoder output is an output too, for the NAT graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, feats: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        enc = self.model.encode(feats, lens)
        return self.model.ctc(enc.out), enc.lens, enc.out


class _NATGraph(torch.nn.Module):
    """The NAT graph: TAEs of the given segments, then the NAT decoder (no InterCE head).

    The masks are built in the graph from lengths, as :func:`casnat.models.cassnat.nat_forward`
    builds them, so the caller passes only what the alignment decides."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.tae, self.decoder = model.tae, model.nat_decoder

    def forward(
        self,
        enc_out: torch.Tensor,
        enc_lens: torch.Tensor,
        trigger_mask: torch.Tensor,
        token_lens: torch.Tensor,
    ) -> torch.Tensor:
        frames = torch.arange(enc_out.size(1), device=enc_out.device)
        enc_mask = frames[None, :] < enc_lens[:, None]
        pos = torch.arange(trigger_mask.size(1), device=enc_out.device)
        tae_mask = pos[None, :] <= token_lens[:, None]
        emb = self.tae(enc_out, trigger_mask)
        return self.decoder(emb, tae_mask, enc_out, enc_mask, with_inter=False).log_probs


def _trace(
    net: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    inputs: Sequence[str],
    outputs: Sequence[str],
    axes: dict[str, dict[int, str]],
    opset: int,
) -> bytes:
    """ONNX bytes of ``net`` traced on ``example`` with the dynamic ``axes``."""
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # Python-side shape checks in the model trace as constants (TracerWarning); harmless, as
        # the export's self-checks on other shapes than the traced ones prove.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")  # an optimisation note
        torch.onnx.export(
            net,
            example,
            buf,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency
        )
    return buf.getvalue()


def _session(data: bytes | str, num_threads: int | None = None, providers=None):
    ort = _need("onnxruntime")
    so = ort.SessionOptions()
    if num_threads:
        so.intra_op_num_threads = num_threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(
        data, sess_options=so, providers=providers or ["CPUExecutionProvider"]
    )


def _metadata(rec: Any, nat_file: str, int8: bool) -> dict[str, str]:
    """Everything :class:`OnnxRecognizer` needs besides the graphs."""
    tok = rec.tokenizer
    sp_bytes = b""
    if tok.kind in ("unigram", "bpe") and tok._sp is not None:
        sp_bytes = tok._sp.serialized_model_proto()
    nd = rec.cfg.model.nat_decoder
    return {
        "format": FORMAT,
        "version": str(VERSION),
        "tokenizer_kind": tok.kind,
        "tokenizer_units": json.dumps(tok.units, ensure_ascii=False),
        "tokenizer_sp_model": base64.b64encode(sp_bytes).decode(),
        "features": json.dumps(dataclasses.asdict(rec.cfg.features)),
        "frame_seconds": repr(rec.frame_seconds),
        "min_input_frames": str(rec.model.min_input_frames),
        "blank_id": str(rec.model.blank_id),
        "eos_id": str(rec.model.eos_id),
        "model_type": rec.cfg.model.type,
        "nat_graph": nat_file,
        "left_trigger": str(nd.left_trigger if nd else 0),
        "right_trigger": str(nd.right_trigger if nd else 0),
        "quantization": "int8-dynamic" if int8 else "fp32",
    }


def _with_metadata(data: bytes, meta: dict[str, str]) -> bytes:
    onnx = _need("onnx")
    proto = onnx.load_from_string(data)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    return proto.SerializeToString()


def quantize_int8(data: bytes) -> bytes:
    """Dynamic int8 quantization (onnxruntime's ``quantize_dynamic``) of the MatMul/Gemm
    weights of an ONNX graph. Why only those: they hold nearly all the weights and time, and
    the CPU provider's integer kernels for them are fast; quantized depthwise convolutions would
    cost accuracy for little speed."""
    _need("onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    # quantize_dynamic warns on the root logger that shape pre-processing was skipped: that step
    # (symbolic shape inference) cannot follow these graphs' dynamic lengths and is optional.
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
            src.write_bytes(data)
            quantize_dynamic(
                src, dst, op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8
            )
            return dst.read_bytes()
    finally:
        root.setLevel(level)


def _check_encoder(data: bytes, net: _EncoderCTC, dim: int, g: torch.Generator) -> float:
    """Max |log-prob diff| between onnxruntime and PyTorch on a batch of 3 of another length
    than the traced one; UserError when the output lengths differ."""
    x = torch.randn(3, 331, dim, generator=g)
    lens = torch.tensor([331, 250, 120])
    with torch.no_grad():
        want, want_lens, _ = net(x, lens)
    got, got_lens, _ = _session(data).run(None, {"feats": x.numpy(), "lens": lens.numpy()})
    if not np.array_equal(got_lens, want_lens.numpy()):
        raise UserError("ONNX export: encoder output lengths differ from PyTorch")
    return max(
        float(np.abs(got[b, :n] - want[b, :n].numpy()).max())
        for b, n in enumerate(want_lens.tolist())
    )


def _random_paths(b: int, t: int, lens: np.ndarray, vocab: int, seed: int) -> np.ndarray:
    """Frame-level paths with runs of tokens and blanks (-1 past each length), for checks."""
    rng = np.random.default_rng(seed)
    path = rng.integers(1, vocab - 1, size=(b, t))
    path = np.where(rng.random((b, t)) < 0.5, 0, path)
    path = np.repeat(path[:, : (t + 1) // 2], 2, axis=1)[:, :t]  # runs of 2 frames
    path[np.arange(t)[None, :] >= lens[:, None]] = -1
    return path.astype(np.int64)


def nat_feed(
    enc_out: np.ndarray, enc_lens: np.ndarray, seg: Any
) -> dict[str, np.ndarray]:
    """The NAT graph's inputs for segments ``seg`` (:class:`casnat.onnx_numpy.NPSegments`)."""
    return {
        "enc_out": np.ascontiguousarray(enc_out, dtype=np.float32),
        "enc_lens": enc_lens.astype(np.int64),
        "trigger_mask": seg.trigger_mask,
        "token_lens": seg.token_lens.astype(np.int64),
    }


def _check_nat(data: bytes, model: Any, shape: tuple[int, int], seed: int) -> float:
    """Max |log-prob diff| of the NAT graph against ``model.nat_forward`` on random paths of
    ``shape = (B, T)``; UserError when the NumPy segments differ from casnat's own."""
    from casnat.onnx_numpy import greedy_segments

    b, t = shape
    nd = model.nat_decoder.cfg
    lens = np.array([t] + [max(1, t - 7 * (i + 1)) for i in range(b - 1)], dtype=np.int64)
    path = _random_paths(b, t, lens, model.vocab_size, seed)
    g = torch.Generator().manual_seed(seed)
    enc = torch.randn(b, t, model.encoder.d_model, generator=g)
    with torch.no_grad():
        fwd = model.nat_forward(
            enc, torch.from_numpy(lens), torch.from_numpy(path), with_inter=False
        )
    seg = greedy_segments(path, lens, model.blank_id, nd.left_trigger, nd.right_trigger)
    if not np.array_equal(seg.trigger_mask, fwd.segments.trigger_mask.numpy()):
        raise UserError("ONNX export: NumPy segments differ from alignment_to_segments")
    (got,) = _session(data).run(None, nat_feed(enc.numpy(), lens, seg))
    want = fwd.output.log_probs.numpy()
    return max(
        float(np.abs(got[r, : n + 1] - want[r, : n + 1]).max())
        for r, n in enumerate(seg.token_lens.tolist())
    )


def _export_nat(model: Any, opset: int, atol: float) -> tuple[bytes, float]:
    """Trace the NAT graph and check it on two other (B, T) shapes than the traced one."""
    from casnat.onnx_numpy import greedy_segments

    nd = model.nat_decoder.cfg
    lens = np.array([40, 31], dtype=np.int64)
    path = _random_paths(2, 40, lens, model.vocab_size, seed=1)
    seg = greedy_segments(path, lens, model.blank_id, nd.left_trigger, nd.right_trigger)
    feed = nat_feed(np.random.default_rng(2).standard_normal((2, 40, model.encoder.d_model)),
                    lens, seg)
    example = tuple(torch.from_numpy(feed[k]) for k in
                    ("enc_out", "enc_lens", "trigger_mask", "token_lens"))
    data = _trace(
        _NATGraph(model).eval(), example,
        ["enc_out", "enc_lens", "trigger_mask", "token_lens"], ["nat_log_probs"],
        {
            "enc_out": {0: "batch", 1: "enc_frames"},
            "enc_lens": {0: "batch"},
            "trigger_mask": {0: "batch", 1: "positions", 2: "enc_frames"},
            "token_lens": {0: "batch"},
            "nat_log_probs": {0: "batch", 1: "positions"},
        },
        opset,
    )
    diff = max(_check_nat(data, model, (3, 57), seed=3), _check_nat(data, model, (1, 9), seed=4))
    if diff > atol:
        raise UserError(f"ONNX export: NAT log-probs differ from PyTorch by {diff:.2e}")
    return data, diff


def _export_encoder(rec: Any, opset: int, atol: float) -> tuple[bytes, float, Callable]:
    """Trace the encoder graph, check it on another shape; returns the bytes, the max |diff|
    and a checker of other bytes (the int8 graph) on the same input."""
    net = _EncoderCTC(rec.model).eval()
    dim = rec.cfg.features.num_mel_bins
    g = torch.Generator().manual_seed(0)
    example = (torch.randn(1, 200, dim, generator=g), torch.tensor([200]))
    data = _trace(
        net, example, ["feats", "lens"], ["log_probs", "out_lens", "enc_out"],
        {
            "feats": {0: "batch", 1: "frames"},
            "lens": {0: "batch"},
            "log_probs": {0: "batch", 1: "enc_frames"},
            "out_lens": {0: "batch"},
            "enc_out": {0: "batch", 1: "enc_frames"},
        },
        opset,
    )

    def check(d: bytes) -> float:
        return _check_encoder(d, net, dim, torch.Generator().manual_seed(1))

    diff = check(data)
    if diff > atol:
        raise UserError(f"ONNX export: encoder log-probs differ from PyTorch by {diff:.2e}")
    return data, diff, check


def export_onnx(
    model: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    opset: int = 17,
    atol: float = 1e-3,
    int8: bool = False,
    nat: bool = True,
) -> dict[str, Any]:
    """Export an experiment dir or one-file model to ``out`` (the encoder graph) and, for a
    CASS-NAT model with ``nat``, :func:`nat_graph_path` (the NAT graph), atomically; returns the
    metadata written and the max |diff| against PyTorch. Raises UserError when onnxruntime
    disagrees with PyTorch (checked in fp32, before any ``int8`` quantization, whose own
    differences are reported, not judged)."""
    _need("onnx")
    _need("onnxruntime")
    from casnat.inference import load_model

    rec = load_model(model, checkpoint, "cpu")
    enc_data, diff, check_enc = _export_encoder(rec, opset, atol)
    nat_data, nat_diff = None, None
    if nat and rec.model.nat_decoder is not None:
        nat_data, nat_diff = _export_nat(rec.model, opset, atol)
    info: dict[str, Any] = {"max_abs_diff": diff, "nat_max_abs_diff": nat_diff}
    if int8:
        enc_data = quantize_int8(enc_data)
        info["int8_max_abs_diff"] = check_enc(enc_data)
        if nat_data is not None:
            nat_data = quantize_int8(nat_data)
            info["int8_nat_max_abs_diff"] = _check_nat(nat_data, rec.model, (3, 57), seed=3)
    nat_out = nat_graph_path(out)
    meta = _metadata(rec, nat_out.name if nat_data is not None else "", int8)
    if nat_data is not None:
        atomic_write_with(nat_out, lambda f: f.write(nat_data))
    enc_bytes = _with_metadata(enc_data, meta)
    atomic_write_with(out, lambda f: f.write(enc_bytes))
    log.info("wrote %s (max |diff| vs PyTorch %.1e)", out, diff)
    return {k: v for k, v in meta.items() if not k.startswith("tokenizer_")} | info


def _pad(feats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(B, T, F)`` zero-padded float32 features and their ``(B,)`` int64 lengths."""
    lens = np.array([f.shape[0] for f in feats], dtype=np.int64)
    out = np.zeros((len(feats), int(lens.max()), feats[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lens


def _load_tokenizer(meta: dict[str, str]):
    from casnat.data.tokenizer import Tokenizer

    units = json.loads(meta["tokenizer_units"])
    sp = base64.b64decode(meta.get("tokenizer_sp_model", ""))
    if not sp:
        return Tokenizer(meta["tokenizer_kind"], units)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sp.model").write_bytes(sp)
        return Tokenizer(meta["tokenizer_kind"], units, Path(tmp) / "sp.model")


class OnnxRecognizer:
    """``ctc_greedy`` and ``cassnat`` transcription with onnxruntime from :func:`export_onnx`
    files (the NAT graph is found next to the encoder file by the name its metadata gives).

    ``mode`` is the default of :meth:`transcribe`; ``num_threads`` sets onnxruntime's intra-op
    threads (default: its own choice). Features are computed by casnat's own feature path
    (:class:`casnat.inference.FeatureMaker`), so they are those of training and ``casnat
    transcribe``."""

    def __init__(
        self,
        path: str | Path,
        providers: list[str] | None = None,
        mode: str = "ctc_greedy",
        num_threads: int | None = None,
    ) -> None:
        _need("onnxruntime")
        from casnat.config import FeatureConfig, from_dict
        from casnat.inference import FeatureMaker

        path = Path(path)
        self.session = self._open(path, num_threads, providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise UserError(f"{path}: not a casnat ONNX export (no '{FORMAT}' metadata)")
        self.meta = meta
        self.tokenizer = _load_tokenizer(meta)
        feats_cfg = from_dict(FeatureConfig, json.loads(meta["features"]), where=str(path))
        self.features = FeatureMaker(feats_cfg, int(meta["min_input_frames"]))
        self.frame_seconds = float(meta["frame_seconds"])
        self.blank_id = int(meta["blank_id"])
        self.eos_id = int(meta.get("eos_id", -1))
        self.triggers = (int(meta.get("left_trigger", 0)), int(meta.get("right_trigger", 0)))
        self.nat_session = None
        if meta.get("nat_graph"):
            self.nat_session = self._open(path.with_name(meta["nat_graph"]), num_threads,
                                          providers)
        self.mode = mode
        self.check_mode(mode)

    @staticmethod
    def _open(path: Path, num_threads: int | None, providers: list[str] | None):
        if not path.is_file():
            raise UserError(f"ONNX model not found: {path}")
        try:
            return _session(str(path), num_threads, providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise UserError(f"{path}: not a loadable ONNX model ({e})") from e

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes these files decode with: ``cassnat`` needs the NAT graph."""
        return ONNX_MODES if self.nat_session is not None else ("ctc_greedy",)

    def check_mode(self, mode: str) -> None:
        """UnsupportedModeError naming ``mode`` unless these files can decode with it."""
        if mode not in self.modes:
            why = (
                "it has no NAT graph (export a CASS-NAT model, without --no-nat)"
                if mode in ONNX_MODES
                else f"ONNX decodes only {', '.join(ONNX_MODES)}; use the PyTorch backend"
            )
            raise UnsupportedModeError(
                f"mode '{mode}' is not supported by this ONNX export: {why} "
                f"(this one decodes with {', '.join(self.modes)})"
            )

    def decode_features(self, feats: Sequence[np.ndarray], mode: str | None = None) -> list:
        """Best :class:`casnat.decode.results.Hypothesis` per ``(T, F)`` feature array, decoded
        as one batch: onnxruntime runs the graphs, NumPy the glue (no torch)."""
        from casnat.onnx_numpy import (
            ctc_greedy_hypotheses,
            greedy_path,
            greedy_segments,
            nat_hypotheses,
        )

        mode = mode or self.mode
        self.check_mode(mode)
        padded, lens = _pad(feats)
        feed = {"feats": padded, "lens": lens}
        if mode == "ctc_greedy":
            lp, out_lens = self.session.run(["log_probs", "out_lens"], feed)
            return ctc_greedy_hypotheses(lp, out_lens, self.blank_id)
        lp, out_lens, enc = self.session.run(["log_probs", "out_lens", "enc_out"], feed)
        t = max(1, int(out_lens.max()))  # as the torch mode: cut to the longest utterance
        path = greedy_path(lp[:, :t], out_lens)
        seg = greedy_segments(path, out_lens, self.blank_id, *self.triggers)
        (nat_lp,) = self.nat_session.run(None, nat_feed(enc[:, :t], out_lens, seg))
        return nat_hypotheses(nat_lp, seg, self.blank_id, self.eos_id)

    def decode_loader(self, loader: Iterable[Any], mode: str | None = None,
                      frame_shift: float = 0.01) -> Any:
        """:func:`casnat.decode.runner.decode_loader` with onnxruntime: every batch of a casnat
        eval loader decoded in ``mode``, texts by cut id and the timing for the RTF."""
        import time

        from casnat.decode.runner import DecodeRun

        run = DecodeRun()
        for batch in loader:
            lens = batch.feat_lens.tolist()
            feats = [batch.feats[i, :n].numpy() for i, n in enumerate(lens)]
            t0 = time.perf_counter()
            hyps = self.decode_features(feats, mode) if feats else []
            run.decode_seconds += time.perf_counter() - t0
            run.audio_seconds += sum(lens) * frame_shift
            for cut_id, ref, hyp in zip(batch.cut_ids, batch.texts, hyps, strict=True):
                run.hyps[cut_id] = self.tokenizer.decode(hyp.tokens)
                run.refs[cut_id] = ref
                run.details[cut_id] = hyp
        return run

    def iter_transcribe(
        self,
        inputs: Sequence[Any],
        opts: Any = None,
        long: str = "never",
        long_cfg: Any = None,
        long_threshold_s: float | None = None,
        batch_size: int = 16,
        batch_seconds: float = 200.0,
        features: Callable[[Iterable[tuple[int, Any]]], Iterator[tuple[int, Any]]]
        | None = None,
        on_audio: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """``(index, Transcript)`` per :class:`casnat.inputs.AudioInput`, as
        :meth:`casnat.inference.Recognizer.iter_transcribe` (same arguments, so ``casnat
        transcribe --backend onnx`` drives both alike). Inputs are decoded whole: long-form
        decoding is the PyTorch backend's, so an input longer than ``long_threshold_s``
        (default 10 s) with ``long="auto"`` gets an error, and ``long="always"`` is refused."""
        from casnat.inference import _error

        mode = getattr(opts, "mode", None) or self.mode
        self.check_mode(mode)
        if long == "always":
            raise UserError("--long always: long-form decoding needs the PyTorch backend")
        limit = long_threshold_s or getattr(long_cfg, "max_segment_s", 10.0)
        short: list[int] = []
        for i, inp in enumerate(inputs):
            if inp.error:
                yield i, _error(inp, inp.error)
            elif long == "auto" and (inp.duration or 0.0) > limit:
                yield i, _error(inp, f"{inp.source}: {inp.duration:.1f} s is longer than "
                                     f"{limit:g} s; long-form decoding needs the PyTorch backend "
                                     "(or --long never)")
            else:
                short.append(i)
        short.sort(key=lambda i: -(inputs[i].duration or 0.0))
        feats_of = features or self._features_here
        pending: list[tuple[int, np.ndarray]] = []
        pending_s = 0.0
        for i, got in feats_of((i, inputs[i]) for i in short):
            dur = inputs[i].duration or 0.0
            if isinstance(got, str):
                if on_audio is not None:
                    on_audio(dur)
                yield i, _error(inputs[i], got)
                continue
            if pending and (len(pending) >= batch_size or pending_s + dur > batch_seconds):
                yield from self._flush(inputs, pending, mode, on_audio)
                pending, pending_s = [], 0.0
            pending.append((i, np.asarray(got, dtype=np.float32)))
            pending_s += dur
        if pending:
            yield from self._flush(inputs, pending, mode, on_audio)

    def _features_here(self, items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        for i, inp in items:
            try:
                yield i, self.features(inp).numpy()
            except UserError as e:
                yield i, str(e)

    def _flush(
        self,
        inputs: Sequence[Any],
        pending: list[tuple[int, np.ndarray]],
        mode: str,
        on_audio: Callable[[float], None] | None,
    ) -> Iterator[tuple[int, Any]]:
        from casnat.inference import transcript_of

        hyps = self.decode_features([f for _, f in pending], mode)
        if on_audio is not None:
            on_audio(sum(inputs[i].duration or 0.0 for i, _ in pending))
        for (i, _), h in zip(pending, hyps, strict=True):
            inp = inputs[i]
            yield i, transcript_of(self.tokenizer, self.frame_seconds, inp.source, h,
                                   h.token_starts, h.token_ends, inp.id, inp.duration)

    def transcribe(
        self, audio: Iterable[Any], batch_size: int = 16, mode: str | None = None
    ) -> list:
        """Transcripts (:class:`casnat.inference.Transcript`) of paths, ``(samples, rate)`` pairs
        or cuts, in order, each decoded whole; an input that cannot be read gets ``error``."""
        from types import SimpleNamespace

        from casnat.inputs import as_inputs

        inputs = as_inputs(audio)
        opts = SimpleNamespace(mode=mode or self.mode)
        results: list[Any] = [None] * len(inputs)
        for i, t in self.iter_transcribe(inputs, opts, "never", batch_size=batch_size):
            results[i] = t
        return results


def file_size_mb(path: str | Path) -> float:
    """Size of an export (encoder file plus its NAT graph when there is one), in MB."""
    paths = [Path(path), nat_graph_path(path)]
    return sum(os.path.getsize(p) for p in paths if p.is_file()) / 1e6


__all__ = [
    "ONNX_MODES",
    "OnnxRecognizer",
    "export_onnx",
    "file_size_mb",
    "nat_graph_path",
    "quantize_int8",
]
