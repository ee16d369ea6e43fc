import torch

from casnat.config import ATDecoderConfig
from casnat.models.at_decoder import ATDecoder, add_sos_eos

V, D = 12, 16
SOS = EOS = V - 1


def make() -> ATDecoder:
    torch.manual_seed(0)
    return ATDecoder(ATDecoderConfig(num_layers=2, num_heads=2, ffn_dim=32), D, V).eval()


def memory(n: int = 2, t: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[-1, t - 3 :] = False
    return torch.randn(n, t, D), mask


def test_add_sos_eos() -> None:
    ys_in, ys_out = add_sos_eos(torch.tensor([[2, 3, 4], [5, -1, -1]]), torch.tensor([3, 1]), 9, 8)
    assert ys_in.tolist() == [[9, 2, 3, 4], [9, 5, 8, 8]]
    assert ys_out.tolist() == [[2, 3, 4, 8], [5, 8, -1, -1]]
    ys_in, _ = ATDecoder.add_sos_eos(torch.tensor([[2]]), torch.tensor([1]), 9, 8)  # static
    assert ys_in.tolist() == [[9, 2]]


def test_forward_shape_and_padding_ids() -> None:
    dec = make()
    mem, mask = memory()
    ys = torch.tensor([[SOS, 2, 3, 4], [SOS, 5, -1, -1]])
    lp = dec(ys, torch.tensor([4, 2]), mem, mask)
    assert lp.shape == (2, 4, V)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 4), atol=1e-5)
    ys2 = ys.clone()
    ys2[1, 2:] = 7  # a different padding id changes nothing on valid positions
    assert torch.allclose(dec(ys2, torch.tensor([4, 2]), mem, mask)[1, :2], lp[1, :2], atol=1e-6)


def test_causal() -> None:
    dec = make()
    mem, mask = memory()
    ys = torch.tensor([[SOS, 2, 3, 4, 5], [SOS, 6, 7, 8, 9]])
    lens = torch.tensor([5, 5])
    lp = dec(ys, lens, mem, mask)
    ys2 = ys.clone()
    ys2[:, 3] = 10
    lp2 = dec(ys2, lens, mem, mask)
    assert torch.allclose(lp[:, :3], lp2[:, :3], atol=1e-6)
    assert not torch.allclose(lp[:, 3:], lp2[:, 3:], atol=1e-4)


def test_step_matches_forward() -> None:
    dec = make()
    mem, mask = memory()
    ys = torch.tensor([[SOS, 2, 3, 4, 5], [SOS, 6, 7, 8, 9]])
    full = dec(ys, torch.tensor([5, 5]), mem, mask)
    cache = None
    for l in range(1, ys.size(1) + 1):
        lp, cache = dec.step(ys[:, :l], mem, mask, cache)
        assert lp.shape == (2, V)
        assert len(cache) == 2 and cache[0].shape == (2, l, D)
        assert torch.allclose(lp, full[:, l - 1], atol=1e-5), l
    # reordering the cache batch-first (beam search) keeps it consistent
    idx = torch.tensor([1, 1, 0])
    cache = [c.index_select(0, idx) for c in cache]
    ys_r = ys.index_select(0, idx)
    nxt = torch.cat([ys_r, torch.tensor([[3], [4], [2]])], dim=1)
    lp, _ = dec.step(nxt, mem.index_select(0, idx), mask.index_select(0, idx), cache)
    ref = dec(nxt, torch.tensor([6, 6, 6]), mem.index_select(0, idx), mask.index_select(0, idx))
    assert torch.allclose(lp, ref[:, -1], atol=1e-5)


def test_score_by_hand() -> None:
    dec = make()
    mem, mask = memory()
    hyps = torch.tensor([[2, 3, 4], [5, -1, -1]])
    lens = torch.tensor([3, 1])
    scores = dec.score(hyps, lens, mem, mask)
    assert scores.shape == (2,)
    ys_in = torch.tensor([[SOS, 2, 3, 4], [SOS, 5, EOS, EOS]])
    lp = dec(ys_in, lens + 1, mem, mask)
    s0 = (lp[0, 0, 2] + lp[0, 1, 3] + lp[0, 2, 4] + lp[0, 3, EOS]) / 4
    s1 = (lp[1, 0, 5] + lp[1, 1, EOS]) / 2
    assert torch.allclose(scores, torch.stack([s0, s1]), atol=1e-6)


def test_memory_kv_gives_the_same_steps_and_scores() -> None:
    """Projecting memory once (per utterance, indexed per beam row) changes no result."""
    from casnat.nn.attention import index_kv

    dec = make()
    mem, mask = memory()
    rows = torch.tensor([0, 1, 1, 0])
    mem_r, mask_r = mem.index_select(0, rows), mask.index_select(0, rows)
    kv = index_kv(dec.memory_kv(mem), rows)
    ys = torch.tensor([[SOS, 2, 3], [SOS, 6, 7], [SOS, 4, 4], [SOS, 1, 9]])
    cache = cache_kv = None
    for l in range(1, ys.size(1) + 1):
        lp, cache = dec.step(ys[:, :l], mem_r, mask_r, cache)
        lp_kv, cache_kv = dec.step(ys[:, :l], mem_r, mask_r, cache_kv, mem_kv=kv)
        torch.testing.assert_close(lp_kv, lp, rtol=1e-5, atol=1e-5)
    hyps = torch.tensor([[2, 3, -1], [6, 7, 8], [4, -1, -1], [1, 9, 9]])
    lens = torch.tensor([2, 3, 1, 3])
    torch.testing.assert_close(
        dec.score(hyps, lens, mem, mask_r, mem_kv=kv), dec.score(hyps, lens, mem_r, mask_r),
        rtol=1e-5, atol=1e-5,
    )
