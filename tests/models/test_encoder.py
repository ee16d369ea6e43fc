"""casnat.models.encoder: the Encoder protocol, the registry ``model.encoder.type`` selects from,
and an encoder with another frame rate (registered by this test alone) flowing through training,
every decoding mode and the timestamps."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml
from torch import Tensor, nn

from casnat.config import (
    ConfigError,
    EncoderConfig,
    ExperimentConfig,
    ModelConfig,
    load_config,
    save_config,
)
from casnat.decode.results import Hypothesis
from casnat.decode.runner import MODES, DecodeOptions, decode_batch
from casnat.inference import Recognizer
from casnat.models.asr import ASRModel
from casnat.models.conformer import ConformerEncoder
from casnat.models.encoder import ENCODERS, Encoder, EncoderOutput, build_encoder
from casnat.testing import tiny_parts

ENC, AT, NAT = tiny_parts(d_model=16, ffn_dim=32, conv_kernel=3, subsampling_channels=4)


class ToyEncoder(nn.Module):
    """Stacks every 3 feature frames and projects them: 30 ms frames, any input of 3 frames."""

    subsampling_factor = 3
    min_input_frames = 3

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(3 * cfg.input_dim, cfg.d_model)

    @property
    def d_model(self) -> int:
        return self.cfg.d_model

    def forward(self, feats: Tensor, feat_lens: Tensor) -> EncoderOutput:
        n, t, f = feats.shape
        x = feats[:, : t // 3 * 3].reshape(n, t // 3, 3 * f)
        return EncoderOutput(out=torch.tanh(self.proj(x)), lens=feat_lens // 3)


@pytest.fixture
def toy(monkeypatch) -> EncoderConfig:
    monkeypatch.setitem(ENCODERS, "toy", ToyEncoder)
    return dataclasses.replace(ENC, type="toy")  # type: ignore[arg-type]


def test_conformer_is_the_default_and_satisfies_the_protocol() -> None:
    enc = build_encoder(ENC)
    assert type(enc) is ConformerEncoder and isinstance(enc, Encoder)
    assert ASRModel(ModelConfig(encoder=ENC), vocab_size=8).encoder.subsampling_factor == 4
    # the old import path of the Conformer still works
    from casnat.models.encoder import ConformerEncoder as Reexported

    assert Reexported is ConformerEncoder


def test_unknown_type_and_bad_builder_are_errors(monkeypatch) -> None:
    with pytest.raises(ConfigError, match=r"unknown encoder 'rnn' \(known: conformer\)"):
        build_encoder(dataclasses.replace(ENC, type="rnn"))  # type: ignore[arg-type]
    monkeypatch.setitem(ENCODERS, "bad", lambda cfg: nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="returned Linear"):
        build_encoder(dataclasses.replace(ENC, type="bad"))  # type: ignore[arg-type]


def test_yaml_without_encoder_type_loads_and_saved_configs_gain_it(tmp_path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"model": {"type": "ctc", "encoder": {"d_model": 32}}}))
    cfg = load_config(old)
    assert cfg.model.encoder.type == "conformer" and cfg.model.encoder.d_model == 32
    save_config(cfg, tmp_path / "new.yaml")
    saved = yaml.safe_load((tmp_path / "new.yaml").read_text())
    assert saved["model"]["encoder"]["type"] == "conformer"
    assert load_config(tmp_path / "new.yaml") == cfg


def test_a_registered_encoder_trains_and_decodes_in_every_mode(toy) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(type="cassnat", encoder=toy, at_decoder=AT, nat_decoder=NAT)
    model = ASRModel(cfg, vocab_size=6)
    assert isinstance(model.encoder, ToyEncoder)
    assert (model.subsampling_factor, model.min_input_frames) == (3, 3)
    feats, lens = torch.randn(2, 40, 80), torch.tensor([40, 31])
    tokens, token_lens = torch.tensor([[2, 3, 4], [4, -1, -1]]), torch.tensor([3, 1])
    before = model.encoder.proj.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = model(feats, lens, tokens, token_lens)
    assert float(losses.ce) > 0 and float(losses.at) > 0 and torch.isfinite(losses.total)
    losses.total.backward()
    opt.step()
    assert not torch.equal(model.encoder.proj.weight, before)
    model.eval()
    for mode in MODES:
        hyps = decode_batch(model, feats, lens, DecodeOptions(mode=mode, beam=2, num_samples=3))
        assert len(hyps) == 2, mode
        if mode != "at_beam":  # frame timing on the toy's 13 and 10 frames
            assert all(e < 13 for h in hyps for e in h.token_ends), mode


class _Pieces:
    """The two tokenizer calls a Recognizer makes for a transcript."""

    def id_to_piece(self, i: int) -> str:
        return f"t{i}"

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"t{i}" for i in ids)


def test_timestamps_follow_the_encoder_frame_rate(toy) -> None:
    """Frames -> seconds uses the model's subsampling factor: 3 x 10 ms for the toy, 4 x 10 ms
    for the Conformer; a hard-coded x4 would put the toy's token 2..3 at 0.08-0.16 s."""
    hyp = Hypothesis(tokens=[2, 4], score=0.0, token_starts=[2, 5], token_ends=[3, 5],
                     confidences=[0.5, 0.9])
    got = {}
    for name, enc in (("toy", toy), ("conformer", ENC)):
        cfg = ExperimentConfig(model=ModelConfig(type="ctc", encoder=enc))
        rec = Recognizer(ASRModel(cfg.model, 6), _Pieces(), cfg, torch.device("cpu"))
        got[name] = [(t.start, t.end) for t in rec.hypothesis_to_transcript("x", hyp).tokens]
    assert got["toy"] == [(0.06, 0.12), (0.15, 0.18)]
    assert got["conformer"] == [(0.08, 0.16), (0.2, 0.24)]
    no_timing = Hypothesis(tokens=[2], score=0.0)
    cfg = ExperimentConfig(model=ModelConfig(type="ctc", encoder=toy))
    rec = Recognizer(ASRModel(cfg.model, 6), _Pieces(), cfg, torch.device("cpu"))
    (t,) = rec.hypothesis_to_transcript("x", no_timing).tokens
    assert (t.start, t.end) == (-1.0, -1.0)


def test_too_short_audio_is_judged_by_the_encoder(toy, tmp_path) -> None:
    """50 ms of audio gives 5 feature frames: enough for the toy (3), too few for the Conformer
    (7)."""
    sf = pytest.importorskip("soundfile")
    wav = tmp_path / "short.wav"
    sf.write(str(wav), 0.1 * torch.randn(800).numpy(), 16000)
    recs = {}
    for name, enc in (("toy", toy), ("conformer", ENC)):
        cfg = ExperimentConfig(model=ModelConfig(type="ctc", encoder=enc))
        recs[name] = Recognizer(ASRModel(cfg.model, 6), _Pieces(), cfg, torch.device("cpu"))
    assert 3 <= recs["toy"].load_audio(wav).shape[0] < 7
    from casnat.errors import UserError

    with pytest.raises(UserError, match="too short"):
        recs["conformer"].load_audio(wav)
