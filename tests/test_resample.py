"""One resampler (lhotse's) on every path: an 8 kHz FSDD file gives the same features, and the
same decoded text, through ``casnat transcribe`` (Recognizer.load_audio) and through a cut
manifest decoded with on-the-fly features (the ``casnat decode`` data pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from casnat.data.features import resample
from casnat.data.loader import make_eval_loader
from casnat.data.tokenizer import Tokenizer
from casnat.decode.runner import DecodeOptions, decode_loader
from casnat.inference import Recognizer
from casnat.models.asr import ASRModel
from casnat.testing import fsdd_dir, tiny_config

pytestmark = pytest.mark.skipif(fsdd_dir() is None, reason="FSDD data not found")

WAVS = ("3_theo_7.wav", "8_jackson_12.wav")


def _wavs() -> list:
    return [fsdd_dir() / "recordings" / name for name in WAVS]


def test_resample_is_what_a_resampled_recording_loads():
    wav = _wavs()[0]
    x, sr = sf.read(wav, dtype="float32")
    assert sr == 8000
    loaded = Recording.from_file(wav).resample(16000).load_audio()[0]
    y = resample(x, 8000, 16000)
    assert y.dtype == np.float32 and y.shape == loaded.shape == (2 * x.size,)
    np.testing.assert_array_equal(y, loaded)
    np.testing.assert_array_equal(resample(x, 8000, 8000), x)  # same rate: unchanged


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> Recognizer:
    """A randomly initialized tiny CASS-NAT model (its output depends on every feature)."""
    tmp = tmp_path_factory.mktemp("rs")
    cfg = tiny_config(tmp, "cassnat")
    tok = Tokenizer.train(["zero one two three four five six seven eight nine"], cfg.tokenizer,
                          tmp / "tokenizer")
    torch.manual_seed(0)
    model = ASRModel(cfg.model, tok.vocab_size, cfg.features.num_mel_bins)
    return Recognizer(model, tok, cfg, torch.device("cpu"))


def _nearest_neighbour(self, samples, *args, **kwargs):
    """A deliberately different resampler, to show that every path calls lhotse's."""
    n = samples.shape[-1] * self.target_sampling_rate // self.source_sampling_rate
    return samples[..., np.arange(n) * self.source_sampling_rate // self.target_sampling_rate]


@pytest.mark.parametrize("resampler", ["lhotse", "patched"])
def test_transcribe_and_decode_compute_identical_features_and_text(
    recognizer, tmp_path, monkeypatch, resampler
):
    """``patched`` swaps lhotse's Resample for nearest-neighbour upsampling: the features still
    agree only if transcription resamples through lhotse too (a path with its own resampler,
    e.g. scipy's, would differ)."""
    if resampler == "patched":
        from lhotse.augmentation import Resample

        monkeypatch.setattr(Resample, "__call__", _nearest_neighbour)
    cuts = []
    for wav in _wavs():  # as casnat prepare writes them: 8 kHz recordings, resampled cuts
        rec = Recording.from_file(wav)
        cut = rec.to_cut()
        cut.supervisions = [SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0,
                                               duration=rec.duration, channel=0, text="three")]
        cuts.append(cut.resample(16000))
    manifest = tmp_path / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    fcfg = recognizer.cfg.features
    loader = make_eval_loader(manifest, recognizer.tokenizer, 100.0, on_the_fly=True,
                              feature_cfg=fcfg, max_cuts=1)

    decoded = {}
    for batch in loader:
        (cut_id,) = batch.cut_ids
        wav = fsdd_dir() / "recordings" / f"{cut_id}.wav"
        via_cut = batch.feats[0, : batch.feat_lens[0]]
        via_file = recognizer.load_audio(wav)
        assert via_file.shape == via_cut.shape
        assert torch.equal(via_file, via_cut), cut_id
        x, sr = sf.read(wav, dtype="float32")
        assert torch.equal(recognizer.features(x, sr), via_cut)  # in-memory samples too
    for mode in ("ctc_greedy", "cassnat"):
        run = decode_loader(recognizer.model, recognizer.tokenizer, loader,
                            DecodeOptions(mode=mode), torch.device("cpu"))
        decoded[mode] = [run.hyps[w.stem] for w in _wavs()]
        texts = [t.text for t in recognizer.transcribe(_wavs(), mode=mode)]
        assert texts == decoded[mode], mode
    assert any(decoded["ctc_greedy"]), "the random model should emit some tokens"
