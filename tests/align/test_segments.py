"""Tests of casnat.align.alignment_to_segments on hand-worked examples (docs/method.md), and
of token_runs, the one collapse of a CTC path that the segments and the greedy CTC search share."""

from __future__ import annotations

import pytest
import torch

from casnat.align import alignment_to_segments, ctc_viterbi_align, token_runs
from casnat.testing import random_log_probs


def _mask(rows: list[str]) -> list[list[int]]:
    return [[int(c) for c in r] for r in rows]


def test_basic_widened_and_unwidened():
    ali, lens = torch.tensor([[0, 5, 5, 0, 7, 0]]), torch.tensor([6])
    seg = alignment_to_segments(ali, lens)
    assert seg.tokens.tolist() == [[5, 7]] and seg.token_lens.tolist() == [2]
    assert seg.starts.tolist() == [[1, 4]] and seg.ends.tolist() == [[2, 4]]
    assert seg.seg_lens.tolist() == [3]
    # owned: pos0 = 0..1, pos1 = 2..4, EOS = 5; widened by one frame each side
    assert seg.trigger_mask[0].int().tolist() == _mask(["111000", "011111", "000011"])
    seg0 = alignment_to_segments(ali, lens, left_trigger=0, right_trigger=0)
    assert seg0.trigger_mask[0].int().tolist() == _mask(["110000", "001110", "000001"])
    # without widening the positions partition the frames
    assert (seg0.trigger_mask[0].sum(0) == 1).all()


def test_repeated_label_and_last_frame_start_forces_eos():
    # 3 _ 3 3 4: tokens 3 (start 0), 3 (start 2), 4 (start 4 = last frame)
    ali = torch.tensor([[3, 0, 3, 3, 4]])
    seg = alignment_to_segments(ali, torch.tensor([5]), left_trigger=0, right_trigger=0)
    assert seg.tokens.tolist() == [[3, 3, 4]]
    assert seg.starts.tolist() == [[0, 2, 4]] and seg.ends.tolist() == [[0, 3, 4]]
    # pos0 = 0..0, pos1 = 1..2, pos2 = 3..4, EOS owns nothing but still gets the last frame
    assert seg.trigger_mask[0].int().tolist() == _mask(["10000", "01100", "00011", "00001"])
    segw = alignment_to_segments(ali, torch.tensor([5]), left_trigger=2, right_trigger=1)
    assert segw.trigger_mask[0].int().tolist() == _mask(["11000", "11110", "01111", "00111"])


def test_all_blank_is_one_eos_segment():
    seg = alignment_to_segments(torch.tensor([[0, 0, 0, -1]]), torch.tensor([3]))
    assert seg.tokens.shape == (1, 0) and seg.token_lens.tolist() == [0]
    assert seg.trigger_mask[0].int().tolist() == [[1, 1, 1, 0]]


def test_batch_padding_and_rows_past_u():
    ali = torch.tensor([[1, 2, 3, 0, 0, 0], [0, 4, 4, 0, -1, -1], [0, 0, 0, 0, 0, 0]])
    lens = torch.tensor([6, 4, 0])
    seg = alignment_to_segments(ali, lens, blank=0)
    assert seg.tokens.tolist() == [[1, 2, 3], [4, -1, -1], [-1, -1, -1]]
    assert seg.token_lens.tolist() == [3, 1, 0]
    assert seg.starts.tolist() == [[0, 1, 2], [1, -1, -1], [-1, -1, -1]]
    assert seg.ends.tolist() == [[0, 1, 2], [2, -1, -1], [-1, -1, -1]]
    m = seg.trigger_mask.int().tolist()
    assert m[0] == _mask(["110000", "111000", "011100", "001111"])
    assert m[1] == _mask(["111000", "011100", "000000", "000000"])
    assert m[2] == _mask(["000000"] * 4)  # empty utterance: nothing to attend


def test_other_blank_id_and_viterbi_roundtrip():
    ali = torch.tensor([[9, 1, 9, 1, 1]])
    seg = alignment_to_segments(ali, torch.tensor([5]), blank=9, left_trigger=0, right_trigger=0)
    assert seg.tokens.tolist() == [[1, 1]] and seg.ends.tolist() == [[1, 4]]
    lp = random_log_probs(2, 20, 8, 0)
    tg, tl = torch.tensor([[3, 3, 5, 2], [7, 1, -1, -1]]), torch.tensor([4, 2])
    a, _ = ctc_viterbi_align(lp, torch.tensor([20, 12]), tg, tl)
    s = alignment_to_segments(a, torch.tensor([20, 12]))
    assert s.tokens.tolist() == [[3, 3, 5, 2], [7, 1, -1, -1]]
    assert s.trigger_mask[:, :, 12:][1].sum() == 0


def test_errors():
    with pytest.raises(ValueError, match=r"alignment must be \(B, T\), got shape \(1, 2, 3\)"):
        alignment_to_segments(torch.zeros(1, 2, 3, dtype=torch.long), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"input_lengths must lie in \[0, 3\]"):
        alignment_to_segments(torch.zeros(1, 3, dtype=torch.long), torch.tensor([4]))


def _runs_by_hand(path: list[int], length: int, blank: int) -> list[tuple[int, int, int]]:
    """(label, first, last frame) of each run of path[:length], written as a plain loop."""
    runs: list[tuple[int, int, int]] = []
    prev = None
    for t, c in enumerate(path[:length]):
        if c >= 0 and c != blank:
            if c == prev:
                runs[-1] = (c, runs[-1][1], t)
            else:
                runs.append((c, t, t))
        prev = c
    return runs


@pytest.mark.parametrize("blank", [0, 3])
def test_token_runs_equal_a_plain_loop_on_random_paths(blank):
    g = torch.Generator().manual_seed(blank)
    for _ in range(30):
        b = int(torch.randint(1, 5, (1,), generator=g))
        t = int(torch.randint(0, 12, (1,), generator=g))
        # few labels, so repeats, blank runs and padding (-1) inside and past lens all occur
        path = torch.randint(-1, 4, (b, t), generator=g)
        lens = torch.randint(0, t + 1, (b,), generator=g)
        r = token_runs(path, lens, blank)
        want = [_runs_by_hand(path[i].tolist(), int(lens[i]), blank) for i in range(b)]
        assert r.counts.tolist() == [len(w) for w in want]
        flat = [(i, k, *run) for i, w in enumerate(want) for k, run in enumerate(w)]
        got = list(zip(r.utt.tolist(), r.index.tolist(), r.tokens.tolist(), r.starts.tolist(),
                       r.ends.tolist(), strict=True))
        assert got == flat
        seg = alignment_to_segments(path, lens, blank=blank)
        for i, w in enumerate(want):
            n = len(w)
            assert seg.tokens[i, :n].tolist() == [c for c, _, _ in w]
            assert seg.starts[i, :n].tolist() == [s for _, s, _ in w]
            assert seg.ends[i, :n].tolist() == [e for _, _, e in w]


def test_greedy_ctc_search_and_segments_collapse_the_same_path():
    """The greedy search's tokens and timing are the segments of its own argmax path."""
    from casnat.decode.ctc import ctc_greedy_search

    lp = random_log_probs(4, 25, 5, 7, peaky=1.0)
    lens = torch.tensor([25, 17, 1, 0])
    hyps = ctc_greedy_search(lp, lens)
    seg = alignment_to_segments(lp.argmax(-1), lens)
    assert any(len(h.tokens) > 2 for h in hyps)
    for i, h in enumerate(hyps):
        n = int(seg.token_lens[i])
        assert h.tokens == seg.tokens[i, :n].tolist()
        assert h.token_starts == seg.starts[i, :n].tolist()
        assert h.token_ends == seg.ends[i, :n].tolist()
