"""Long audio: segmentation at pauses, batched decoding and stitching in file time.

The recognizer here is a stand-in whose "speech" is known exactly: a burst of a square wave of
amplitude k/10 is word ``wk``, silence is blank. Its CTC posteriors go through casnat's real
greedy search, so token frames, the VAD, the cuts and the offsets are all real; only the acoustic
model is replaced. That makes "no word lost or duplicated at a join" and "word starts at the true
time" exact checks, with joins placed on VAD chunk boundaries and with no pauses at all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from casnat.decode.ctc import ctc_greedy_search
from casnat.decode.runner import DecodeOptions
from casnat.longform import (
    LongformConfig,
    audio_blocks,
    choose_cut,
    segment_stream,
    transcribe_long,
)

SR = 8000
FRAME = 0.04  # encoder frame: 10 ms features x 4
V = 10  # blank + w1..w8 + sos/eos


@dataclass
class _Enc:
    out: torch.Tensor
    lens: torch.Tensor


class _Model:
    blank_id = 0
    encoder = SimpleNamespace(subsampling_factor=4, min_input_frames=7)

    def encode(self, feats: torch.Tensor, lens: torch.Tensor) -> _Enc:
        t = feats.shape[1] // 4
        out = feats[:, : 4 * t].reshape(feats.shape[0], t, 4, -1).mean(dim=2)
        return _Enc(out, lens // 4)

    def ctc(self, out: torch.Tensor) -> torch.Tensor:
        level = (out[..., 0] * 10).round().long().clamp(0, V - 2)  # (N, T') word id or 0
        probs = torch.full((*level.shape, V), 0.01 / (V - 1))
        probs.scatter_(-1, level[..., None], 0.99)
        return probs.log()


class FakeRecognizer:
    """The parts of casnat.inference.Recognizer that casnat.longform uses."""

    def __init__(self) -> None:
        self.model = _Model()
        self.device = torch.device("cpu")
        self.cfg = SimpleNamespace(features=SimpleNamespace(frame_shift=0.01, sample_rate=SR))
        self.tokenizer = SimpleNamespace(kind="word", id_to_piece=lambda i: f"w{i}")
        self.batches: list[int] = []

    def features(self, samples: np.ndarray, sample_rate: int) -> torch.Tensor:
        assert sample_rate == SR
        n = len(samples) // 80
        rms = np.sqrt(np.mean(samples[: 80 * n].reshape(n, 80) ** 2, axis=1))
        return torch.from_numpy(rms.astype(np.float32))[:, None]  # (T, 1)

    def transcribe_features(self, feats: list[torch.Tensor], opts: DecodeOptions):
        self.batches.append(len(feats))
        lens = torch.tensor([f.shape[0] for f in feats])
        enc = self.model.encode(torch.nn.utils.rnn.pad_sequence(feats, batch_first=True), lens)
        return ctc_greedy_search(self.model.ctc(enc.out), enc.lens, blank=0)


def make_audio(words: list[tuple[int, float, float]], total: float) -> np.ndarray:
    """Square-wave bursts ``(id, start, duration)`` (times on the 40 ms grid) in silence."""
    x = np.zeros(int(round(total * SR)), dtype=np.float32)
    for k, start, dur in words:
        a, b = int(round(start * SR)), int(round((start + dur) * SR))
        x[a:b] = (k / 10) * np.where(np.arange(b - a) % 2 == 0, 1.0, -1.0)
    return x


def layout(n: int, word_s: float, gap_s: float, lead: float = 0.2, seed: int = 0):
    rng = np.random.default_rng(seed)
    words, t = [], lead
    for _ in range(n):
        words.append((int(rng.integers(1, V - 1)), round(t, 2), word_s))
        t = round(t + word_s + gap_s, 2)
    return words, t + lead


# Segments of at most 2 s cut at every pause, VAD chunks of 1.52 s, blocks of 0.37 s: small
# enough that a few seconds of audio cross every kind of boundary.
SMALL = LongformConfig(max_segment_s=2.0, min_segment_s=0.0, vad_chunk_s=1.52, vad_context_s=0.2,
                       lookahead_s=0.4, batch_seconds=5.0, block_s=0.37)


def _check(res, words) -> None:
    assert [w.word for w in res.words] == [f"w{k}" for k, _, _ in words]  # nothing lost/duplicated
    for w, (_, start, dur) in zip(res.words, words, strict=True):
        assert w.start == pytest.approx(start, abs=1e-6)
        assert w.end == pytest.approx(start + dur, abs=1e-6)
        assert w.confidence == pytest.approx(0.99, abs=1e-3)


@pytest.mark.parametrize("vad", ["ctc", "energy"])
def test_words_at_pauses_survive_many_segments(vad):
    """40 words with 0.4 s pauses over ~25 s: a dozen 2 s segments, VAD chunk edges inside
    words; every word comes back once, at its true time."""
    words, total = layout(40, 0.2, 0.4)
    rec = FakeRecognizer()
    cfg = LongformConfig(**{**SMALL.__dict__, "vad": vad, "min_segment_s": 1.2})
    res = transcribe_long(rec, make_audio(words, total), SR, cfg=cfg)
    _check(res, words)
    assert len(res.segments) >= 10 and all(e - s <= 2.0 + 1e-9 for s, e in res.segments)
    assert res.text == " ".join(f"w{k}" for k, _, _ in words)
    assert res.duration == pytest.approx(total)
    assert len(rec.batches) > 1  # decoded in several bounded batches


def test_every_pause_cut_gives_one_segment_per_word():
    words, total = layout(30, 0.2, 0.4, seed=2)
    res = transcribe_long(FakeRecognizer(), make_audio(words, total), SR, cfg=SMALL)
    _check(res, words)
    assert len(res.segments) >= 29  # the end of the stream, once within max_segment_s, is one


def test_continuous_speech_is_cut_between_tokens():
    """Gaps of 0.08 s, shorter than a pause: every cut is a hard cut, placed on a blank frame,
    so no word is split, lost or doubled."""
    words, total = layout(60, 0.16, 0.08, seed=1)
    res = transcribe_long(FakeRecognizer(), make_audio(words, total), SR, cfg=SMALL)
    _check(res, words)
    assert len(res.segments) >= 5


def test_join_on_a_vad_chunk_boundary():
    """A word straddling the first VAD chunk's end (1.52 s) is found once."""
    words = [(3, 0.4, 0.2), (5, 1.44, 0.16), (7, 2.4, 0.2), (2, 3.6, 0.2)]
    res = transcribe_long(FakeRecognizer(), make_audio(words, 4.4), SR, cfg=SMALL)
    _check(res, words)


class UntimedRecognizer(FakeRecognizer):
    """Like an AT search: tokens and confidences, no frames."""

    def transcribe_features(self, feats, opts):
        return [dataclasses.replace(h, token_starts=[], token_ends=[])
                for h in super().transcribe_features(feats, opts)]


def test_untimed_search_gets_times_from_forced_alignment():
    words, total = layout(12, 0.2, 0.4, seed=3)
    res = transcribe_long(UntimedRecognizer(), make_audio(words, total), SR, cfg=SMALL)
    _check(res, words)


def test_silence_is_not_decoded():
    """Long silences are segments of their own that the decoder never sees."""
    words = [(4, 0.4, 0.2), (6, 9.0, 0.2)]
    rec = FakeRecognizer()
    res = transcribe_long(rec, make_audio(words, 10.0), SR, cfg=SMALL)
    _check(res, words)
    decoded = sum(e - s for s, e in res.segments)
    assert decoded < 5.0  # of 10 s


def test_pauses_are_trimmed_to_the_kept_silence():
    """Decoded segments hold at most ``pause_keep_s`` of a pause each side of the speech (the
    rest is a silent segment), and every pause gives exactly one cut: one decoded segment per
    word, none of silence alone."""
    words, total = layout(12, 0.2, 1.6, lead=1.0, seed=4)
    cfg = LongformConfig(**{**SMALL.__dict__, "max_segment_s": 4.0, "pause_keep_s": 0.2})
    for vad in ("ctc", "energy"):
        res = transcribe_long(FakeRecognizer(), make_audio(words, total), SR,
                              cfg=dataclasses.replace(cfg, vad=vad))
        _check(res, words)
        assert len(res.segments) == len(words)
        for (s, e), (_, start, dur) in zip(res.segments, words, strict=True):
            assert start - 0.2 - 1e-6 <= s <= start and start + dur <= e <= start + dur + 0.2 + 1e-6


def test_energy_vad_finds_pauses_in_steady_noise():
    """White noise 40 dB under the loudest word: a threshold 40 dB under the peak lies under
    the noise and finds no pause; the noise-floor rule finds every one."""
    from casnat.longform import energy_silence

    words, total = layout(12, 0.2, 1.0, lead=0.6, seed=6)
    rng = np.random.default_rng(0)
    audio = make_audio(words, total) + 0.01 * rng.standard_normal(int(round(total * SR)))
    audio = audio.astype(np.float32)
    fixed = energy_silence(-40.0, noise_margin_db=-100.0)  # the plain relative rule
    assert fixed(audio[: 2 * SR], SR, 50).sum() == 0
    cfg = dataclasses.replace(SMALL, vad="energy", max_segment_s=4.0)
    res = transcribe_long(FakeRecognizer(), audio, SR, cfg=cfg)
    _check(res, words)
    assert len(res.segments) >= len(words) - 1  # the stream's last <= 4 s is one segment


def test_auto_vad_uses_energy_in_clean_audio_and_ctc_in_noise():
    """``vad="auto"``: a chunk with a wide peak-to-floor range gets the energy score (0/1), a
    noisy one the model's P(blank) (continuous)."""
    from casnat.longform import ctc_blank_silence, energy_silence, make_silence

    rec = FakeRecognizer()
    words, total = layout(3, 0.2, 0.6, seed=7)
    clean = make_audio(words, total)
    noisy = (clean + 0.03 * np.random.default_rng(1).standard_normal(len(clean)))
    noisy = noisy.astype(np.float32)
    auto = make_silence(rec, LongformConfig(vad="auto"))
    n = int(total / FRAME)
    np.testing.assert_array_equal(auto(clean, SR, n), energy_silence()(clean, SR, n))
    np.testing.assert_allclose(auto(noisy, SR, n), ctc_blank_silence(rec)(noisy, SR, n))


def test_segments_tile_the_audio_with_trimming():
    """Silent segments included, the segments cover the stream exactly once, in order."""
    words, total = layout(20, 0.2, 0.9, seed=5)
    audio = make_audio(words, total)
    blocks, sr, _ = audio_blocks(audio, SR, block_s=0.5)
    from casnat.longform import ctc_blank_silence

    segs = list(segment_stream(blocks, sr, FRAME, ctc_blank_silence(FakeRecognizer()), SMALL))
    assert sum(len(s.samples) for s in segs) == len(audio)
    ends = [round((s.start + s.duration) * SR) for s in segs]
    assert [round(s.start * SR) for s in segs[1:]] == ends[:-1]
    assert any(s.silent for s in segs) and not all(s.silent for s in segs)


def test_stream_is_read_lazily():
    """The segmenter holds a bounded amount of audio: when the first segment comes out, only the
    blocks needed for it plus the lookahead and a VAD chunk have been read."""
    words, total = layout(200, 0.2, 0.4)  # ~120 s
    audio = make_audio(words, total)
    blocks, sr, _ = audio_blocks(audio, SR, block_s=0.5)
    read = []

    def counting():
        for b in blocks:
            read.append(len(b))
            yield b

    rec = FakeRecognizer()
    from casnat.longform import ctc_blank_silence

    stream = segment_stream(counting(), sr, FRAME, ctc_blank_silence(rec), SMALL)
    first = next(stream)
    assert first.duration <= 2.0
    assert sum(read) / SR < 2.0 + 0.4 + 1.52 + 0.2 + 0.5 + 0.01
    rest = list(stream)
    assert sum(read) == len(audio)
    assert sum(len(s.samples) for s in [first, *rest]) == len(audio)  # cuts tile the audio


def test_choose_cut_takes_the_first_pause_past_the_minimum():
    s = np.array([0.1] * 5 + [0.99] * 4 + [0.1] * 5 + [0.99] * 6 + [0.1] * 10)
    assert choose_cut(s, 20, 3, 0.95) == (7, True)  # every pause
    assert choose_cut(s, 20, 3, 0.95, min_frames=10) == (17, True)
    assert choose_cut(s, 20, 3, 0.95, min_frames=19) == (17, True)  # none past it: the last
    assert choose_cut(s, 15, 3, 0.95, min_frames=10) == (15, True)  # clamped, inside the pause
    # no pause: the latest most blank-like frame of the second half
    assert choose_cut(np.array([0.9, 0.1, 0.1, 0.8, 0.2, 0.8, 0.1]), 6, 3, 0.95) == (5, False)


def test_file_input_is_downmixed(tmp_path):
    sf = pytest.importorskip("soundfile")
    words = [(2, 0.4, 0.2), (8, 1.2, 0.24)]
    mono = make_audio(words, 2.0)
    stereo = np.stack([mono, mono * 0.0 + mono], axis=1)
    sf.write(tmp_path / "a.wav", stereo, SR, subtype="FLOAT")
    blocks, sr, dur = audio_blocks(tmp_path / "a.wav", block_s=0.3)
    got = np.concatenate(list(blocks))
    assert sr == SR and dur == pytest.approx(2.0)
    np.testing.assert_allclose(got, mono, atol=1e-6)
    res = transcribe_long(FakeRecognizer(), tmp_path / "a.wav", cfg=SMALL)
    _check(res, words)
    assert res.source.endswith("a.wav")
    row = res.to_record("a").to_dict()
    assert row["id"] == "a" and row["words"][1]["word"] == "w8" and row["error"] is None


def test_in_memory_waveform_needs_a_rate():
    from casnat.errors import UserError

    with pytest.raises(UserError, match="sample_rate"):
        audio_blocks(np.zeros(100, dtype=np.float32))


def test_a_real_recognizer_on_real_speech(tmp_path):
    """The real Recognizer (an untrained tiny CASS-NAT, FSDD clips at 8 kHz resampled by
    rec.features) through every mode's path: the API wiring holds, segments tile the file within
    max_segment_s, and every word lies inside the audio."""
    sf = pytest.importorskip("soundfile")
    from casnat.config import ExperimentConfig, ModelConfig
    from casnat.data.tokenizer import Tokenizer
    from casnat.inference import Recognizer
    from casnat.models.asr import ASRModel
    from casnat.testing import fsdd_dir, tiny_parts

    src = fsdd_dir()
    if src is None:
        pytest.skip("FSDD data not found: set CASNAT_SHARED_DATA or provide ../shared/data/fsdd")
    clips = [sf.read(p, dtype="float32")[0] for p in sorted((src / "recordings").glob("*.wav"))[:6]]
    gap = np.zeros(int(0.8 * 8000), dtype=np.float32)
    audio = np.concatenate([x for c in clips for x in (c, gap)])
    sf.write(tmp_path / "long.wav", audio, 8000)
    enc, at, nat = tiny_parts()
    cfg = ExperimentConfig(model=ModelConfig(type="cassnat", encoder=enc, at_decoder=at,
                                             nat_decoder=nat))
    units = ["<blank>", "<unk>", "▁", *"efinorstuvwxz", "<sos/eos>"]
    torch.manual_seed(0)
    rec = Recognizer(ASRModel(cfg.model, len(units), 80), Tokenizer("char", units), cfg,
                     torch.device("cpu"))
    lcfg = LongformConfig(max_segment_s=1.5, min_segment_s=0.0, vad="energy")
    for mode in ("ctc_greedy", "cassnat", "at_beam"):
        res = transcribe_long(rec, tmp_path / "long.wav", opts=DecodeOptions(mode=mode, beam=2),
                              cfg=lcfg)
        assert res.duration == pytest.approx(len(audio) / 8000, abs=1e-3)
        assert all(e - s <= 1.5 + 1e-6 for s, e in res.segments) and len(res.segments) >= 6
        assert all(0 <= w.start < w.end <= res.duration + 0.04 for w in res.words
                   if w.start is not None)
