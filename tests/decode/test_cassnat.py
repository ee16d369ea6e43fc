"""CASS-NAT decoding: ESA with K = 1 is greedy-alignment CASS-NAT, and a tiny model that overfits a
handful of utterances decodes them without error in every mode."""

from __future__ import annotations

import pytest
import torch

from casnat.config import ModelConfig
from casnat.decode.cassnat import _groups, cassnat_search
from casnat.decode.runner import MODES, DecodeOptions, check_mode, decode_batch
from casnat.models.asr import ASRModel
from casnat.nn.masks import lengths_to_mask
from casnat.testing import SYNTH_UTTS as UTTS
from casnat.testing import SYNTH_V as V
from casnat.testing import overfit, overfit_config, tiny_parts
from casnat.testing import synthetic_batch as _synthetic_batch

ENC, AT, NAT = tiny_parts(d_model=48, ffn_dim=96, conv_kernel=5, subsampling_channels=8)


@pytest.fixture(scope="module")
def overfit_model():
    torch.manual_seed(0)
    batch = _synthetic_batch()
    return overfit(ASRModel(overfit_config(), V), batch), batch


@pytest.mark.parametrize("mode", MODES)
def test_overfit_model_decodes_training_utterances_exactly(overfit_model, mode):
    model, (feats, lens, _, _) = overfit_model
    hyps = decode_batch(model, feats, lens, DecodeOptions(mode=mode, beam=4, num_samples=8))
    assert [h.tokens for h in hyps] == UTTS
    for h in hyps:
        assert len(h.confidences) == len(h.tokens)
        assert all(0.0 < c <= 1.0 for c in h.confidences)
        if mode != "at_beam":  # frame timing comes from the CTC alignment
            assert h.token_starts == sorted(h.token_starts)
            assert all(s <= e for s, e in zip(h.token_starts, h.token_ends, strict=True))


def test_esa_with_one_sample_equals_cassnat(overfit_model):
    model, (feats, lens, _, _) = overfit_model
    with torch.no_grad():
        enc = model.encode(feats, lens)
        lp = model.ctc(enc.out)
        greedy = cassnat_search(model, enc.out, enc.lens, lp, num_samples=1)
        esa1 = cassnat_search(model, enc.out, enc.lens, lp, num_samples=1, ranker="at")
    assert [h.tokens for h in greedy] == [h.tokens for h in esa1]
    assert [h.token_starts for h in greedy] == [h.token_starts for h in esa1]


def test_esa_is_deterministic_for_a_seed(overfit_model):
    model, (feats, lens, _, _) = overfit_model
    opts = DecodeOptions(mode="cassnat_esa", num_samples=6, threshold=1.01, seed=3)
    a = decode_batch(model, feats, lens, opts)
    b = decode_batch(model, feats, lens, opts)
    assert [(h.tokens, h.score) for h in a] == [(h.tokens, h.score) for h in b]


def _untrained_model() -> ASRModel:
    """A random model: its CTC posteriors are flat, so ESA's samples disagree everywhere."""
    torch.manual_seed(1)
    cfg = ModelConfig(type="cassnat", encoder=ENC, at_decoder=AT, nat_decoder=NAT)
    return ASRModel(cfg, V).eval()


@pytest.mark.parametrize("ranker", ["at", "nat"])
def test_esa_grouping_does_not_change_hypotheses(ranker):
    """The decoder and ranker run on groups of utterances (``max_frames``); each group is cut to
    its own longest utterance. Any grouping gives what one pass over the batch gives."""
    model = _untrained_model()
    feats, lens, _, _ = _synthetic_batch()
    with torch.no_grad():
        enc = model.encode(feats, lens)
        lp = model.ctc(enc.out)
        runs = [
            cassnat_search(model, enc.out, enc.lens, lp, num_samples=8, threshold=1.01,
                           ranker=ranker, seed=2, max_frames=m)
            for m in (None, 1, 8 * 40, 8 * 40 * 3)
        ]
    for r in runs[1:]:
        assert [h.tokens for h in r] == [h.tokens for h in runs[0]]
        assert [h.token_starts for h in r] == [h.token_starts for h in runs[0]]
        assert [h.token_ends for h in r] == [h.token_ends for h in runs[0]]
        assert [h.score for h in r] == pytest.approx([h.score for h in runs[0]], abs=1e-4)


def test_groups_cover_the_batch_within_the_frame_budget():
    lens = [30, 28, 28, 25, 90, 12, 12, 12, 12, 0]
    for k, budget in [(4, 240), (16, 2000), (1, 50), (8, 10**6)]:
        groups = _groups(lens, k, budget)
        assert [i for i, _ in groups] == [0] + [j for _, j in groups[:-1]]  # consecutive
        assert groups[-1][1] == len(lens)
        for i, j in groups:
            assert j - i == 1 or (j - i) * k * max(lens[i:j]) <= budget
            if j < len(lens):  # closed only because the next utterance would not fit
                assert (j + 1 - i) * k * max(lens[i : j + 1]) > budget
    assert _groups(lens, 4, None) == [(0, len(lens))] and _groups([], 4, 100) == []
    assert _groups([5, 5, 5], 2, 20) == [(0, 2), (2, 3)]


def test_esa_result_does_not_depend_on_the_batch():
    """casnat decode seeds ESA per frame: an utterance decoded alone gets the hypothesis it gets
    inside a padded batch (untrained model, all frames resampled: the K samples differ and the
    ranker's choice depends on them)."""
    model = _untrained_model()
    feats, lens, _, _ = _synthetic_batch()
    opts = DecodeOptions(mode="cassnat_esa", num_samples=8, threshold=1.01, seed=3)
    batch = decode_batch(model, feats, lens, opts)
    for i in range(len(UTTS)):
        n = int(lens[i])
        (alone,) = decode_batch(model, feats[i : i + 1, :n], lens[i : i + 1], opts)
        assert alone.tokens == batch[i].tokens
        assert alone.token_starts == batch[i].token_starts
        assert alone.score == pytest.approx(batch[i].score, abs=1e-4)


def test_mode_needs_its_head():
    model = ASRModel(ModelConfig(type="ctc", encoder=ENC), V)
    with pytest.raises(ValueError, match="needs a CASS-NAT decoder"):
        check_mode(model, "cassnat")
    with pytest.raises(ValueError, match="needs an AT decoder"):
        check_mode(model, "at_beam")


def _esa(model, feats, lens, *, dedup: bool, ranker: str, seed: int = 5):
    with torch.no_grad():
        enc = model.encode(feats, lens)
        lp = model.ctc(enc.out)
        g = torch.Generator().manual_seed(seed)
        return cassnat_search(
            model, enc.out, enc.lens, lp, num_samples=8, threshold=1.01, ranker=ranker,
            generator=g, dedup=dedup,
        )


@pytest.mark.parametrize("ranker", ["at", "nat"])
@pytest.mark.parametrize("trained", [True, False])
def test_esa_dedup_gives_the_same_hypotheses(overfit_model, ranker, trained):
    """Decoding each distinct path (and ranking each distinct hypothesis) once changes nothing.
    The untrained model makes the K samples disagree, so the row bookkeeping is exercised."""
    model, (feats, lens, _, _) = overfit_model
    if not trained:
        model = _untrained_model()
    a = _esa(model, feats, lens, dedup=True, ranker=ranker)
    b = _esa(model, feats, lens, dedup=False, ranker=ranker)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    assert [h.token_starts for h in a] == [h.token_starts for h in b]
    assert [h.token_ends for h in a] == [h.token_ends for h in b]
    assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)


def test_esa_dedup_decodes_each_distinct_path_once(overfit_model):
    """With threshold 0 no frame is resampled: all K samples are the greedy path, so the NAT
    decoder and the AT ranker each see one row per utterance, and the result is plain cassnat."""
    model, (feats, lens, _, _) = overfit_model
    rows: dict[str, list[int]] = {"nat": [], "at": []}
    h1 = model.nat_decoder.register_forward_hook(lambda m, a, o: rows["nat"].append(a[0].size(0)))
    orig_score = model.at_decoder.score

    def score(tokens, *args, **kw):
        rows["at"].append(tokens.size(0))
        return orig_score(tokens, *args, **kw)

    model.at_decoder.score = score
    try:
        with torch.no_grad():
            enc = model.encode(feats, lens)
            lp = model.ctc(enc.out)
            esa = cassnat_search(model, enc.out, enc.lens, lp, num_samples=16, threshold=0.0)
            esa_rows = {k: sum(v) for k, v in rows.items()}  # over the utterance groups
            greedy = cassnat_search(model, enc.out, enc.lens, lp, num_samples=1)
    finally:
        h1.remove()
        del model.at_decoder.score
    assert esa_rows == {"nat": len(UTTS), "at": len(UTTS)}
    assert [h.tokens for h in esa] == [h.tokens for h in greedy]


def test_nat_decode_paths_with_per_utterance_memory_equals_expanded(overfit_model):
    """ESA projects the encoder output once per utterance (enc_index): same tokens and scores
    as decoding with the encoder output copied per path."""
    from casnat.align import sample_alignments
    from casnat.decode.cassnat import nat_decode_paths

    torch.manual_seed(2)
    cfg = ModelConfig(type="cassnat", encoder=ENC, at_decoder=AT, nat_decoder=NAT)
    for model in (overfit_model[0], ASRModel(cfg, V).eval()):
        feats, lens, _, _ = overfit_model[1]
        with torch.no_grad():
            enc = model.encode(feats, lens)
            lp = model.ctc(enc.out)
            paths = sample_alignments(lp, enc.lens, 4, 1.01, torch.Generator().manual_seed(0))
            b, k, t = paths.shape
            utt = torch.arange(b).repeat_interleave(k)
            flat, lens_r = paths.reshape(b * k, t), enc.lens.index_select(0, utt)
            ref = nat_decode_paths(model, enc.out.index_select(0, utt), lens_r, flat)
            got = nat_decode_paths(model, enc.out, lens_r, flat, enc_index=utt)
        assert torch.equal(got.tokens, ref.tokens)
        torch.testing.assert_close(got.token_logp, ref.token_logp, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(got.eos_logp, ref.eos_logp, rtol=1e-4, atol=1e-5)


def test_at_beam_with_projected_memory_equals_plain_steps():
    """at_beam_search projects the memory once when the decoder offers memory_kv; a decoder
    without it (the plain StepDecoder contract) must give the same hypotheses."""
    from casnat.decode.at_beam import at_beam_search

    torch.manual_seed(3)
    cfg = ModelConfig(type="cassnat", encoder=ENC, at_decoder=AT, nat_decoder=NAT)
    model = ASRModel(cfg, V).eval()
    feats, lens, _, _ = _synthetic_batch()

    class StepOnly:
        def step(self, ys, memory, memory_mask, cache):
            return model.at_decoder.step(ys, memory, memory_mask, cache)

    with torch.no_grad():
        enc = model.encode(feats, lens)
        mask = lengths_to_mask(enc.lens, enc.out.size(1))
        args = dict(beam=3, sos=model.sos_id, eos=model.eos_id, max_len=6)
        a = at_beam_search(model.at_decoder, enc.out, mask, **args)
        b = at_beam_search(StepOnly(), enc.out, mask, **args)
    assert [[h.tokens for h in nb] for nb in a] == [[h.tokens for h in nb] for nb in b]
    for nb_a, nb_b in zip(a, b, strict=True):
        for ha, hb in zip(nb_a, nb_b, strict=True):
            assert abs(ha.score - hb.score) < 1e-4


PHASES = {
    "alignment sampling", "segments / trigger mask", "TAE extractor", "NAT decoder",
    "AT ranker (ESA)", "source keys/values (once per utterance)",
}


@pytest.mark.parametrize("k,ranker", [(8, "auto"), (8, "nat"), (1, "auto")])
def test_search_marks_its_phases_for_the_benchmark(k, ranker):
    """The decoding benchmark reads these phase names; the AT ranker and the shared keys/values
    run only for ESA (the AT ranker only with ranker 'at'). Phases do not nest: their times sum
    to no more than the search's."""
    import time

    from casnat.profiling import PhaseRecorder

    model = _untrained_model()
    feats, lens, _, _ = _synthetic_batch()
    with torch.no_grad():
        enc = model.encode(feats, lens)
        lp = model.ctc(enc.out)
        t0 = time.perf_counter()
        with PhaseRecorder() as rec:
            hyps = cassnat_search(model, enc.out, enc.lens, lp, num_samples=k, threshold=1.01,
                                  ranker=ranker, seed=1)
        total = time.perf_counter() - t0
        plain = cassnat_search(model, enc.out, enc.lens, lp, num_samples=k, threshold=1.01,
                               ranker=ranker, seed=1)
    want = set(PHASES)
    if ranker == "nat" or k == 1:
        want.discard("AT ranker (ESA)")
    if k == 1:
        want.discard("source keys/values (once per utterance)")
    assert set(rec.seconds) == want
    assert sum(rec.seconds.values()) <= total
    assert [(h.tokens, h.score) for h in hyps] == [(h.tokens, h.score) for h in plain]
