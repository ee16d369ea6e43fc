import pytest
import torch

from casnat.nn.attention import (
    BoundedRelPositionAttention,
    MultiHeadAttention,
    RelPositionMultiHeadAttention,
    index_kv,
    rel_shift,
    relative_position_index,
)
from casnat.nn.positional import RelPositionalEncoding


def test_mha_shapes_and_mask() -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    q, kv = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    mask = torch.ones(2, 1, 7, dtype=torch.bool)
    mask[0, :, 4:] = False
    out = mha(q, kv, kv, mask)
    assert out.shape == (2, 3, 16)
    kv2 = kv.clone()
    kv2[0, 4:] = 50.0
    assert torch.allclose(mha(q, kv2, kv2, mask)[0], out[0], atol=1e-6)


def test_mha_all_masked_row_is_finite() -> None:
    mha = MultiHeadAttention(16, 4)
    kv = torch.randn(1, 5, 16)
    mask = torch.zeros(1, 2, 5, dtype=torch.bool)
    mask[0, 0, 1] = True
    out = mha(torch.randn(1, 2, 16), kv, kv, mask)
    assert torch.isfinite(out).all()
    # zero context -> output is just the output-projection bias
    assert torch.allclose(out[0, 1], mha.linear_out.bias)


def test_bad_heads() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)


def test_rel_shift_matches_gather() -> None:
    t = 5
    x = torch.randn(2, 3, t, 2 * t - 1)
    out = rel_shift(x)
    for i in range(t):
        for k in range(t):
            assert torch.equal(out[..., i, k], x[..., i, t - 1 - i + k])


def test_rel_mha_padding_invariant() -> None:
    """Relative positions only: appending masked frames leaves the valid outputs unchanged."""
    torch.manual_seed(0)
    mha = RelPositionMultiHeadAttention(16, 4).eval()
    pe = RelPositionalEncoding(16).eval()
    x = torch.randn(1, 6, 16)
    xs, pos = pe(x)
    out = mha(xs, xs, xs, pos)
    assert out.shape == (1, 6, 16)
    # Same 4 frames with 2 masked garbage frames appended: valid outputs unchanged.
    y = torch.cat([x[:, :4], torch.randn(1, 3, 16) * 10], dim=1)
    ys, pos_y = pe(y)
    mask_y = torch.tensor([[True] * 4 + [False] * 3])[:, None, :]
    x4s, pos4 = pe(x[:, :4])
    ref = mha(x4s, x4s, x4s, pos4)
    assert torch.allclose(mha(ys, ys, ys, pos_y, mask_y)[:, :4], ref, atol=1e-5)


def test_relative_position_index_clips() -> None:
    idx = relative_position_index(6, 2)
    assert idx.shape == (6, 6)
    assert idx[0].tolist() == [2, 3, 4, 4, 4, 4]
    assert idx[5].tolist() == [0, 0, 0, 0, 1, 2]


def test_bounded_rel_attention_clips_distances() -> None:
    """With content logits zeroed, keys farther than K are indistinguishable from each other."""
    torch.manual_seed(0)
    attn = BoundedRelPositionAttention(8, 2, max_rel_pos=2).eval()
    with torch.no_grad():
        attn.linear_k.weight.zero_()
        attn.linear_k.bias.zero_()
    x = torch.randn(1, 6, 8)
    out = attn(x, x, x)
    assert out.shape == (1, 6, 8)
    far = x.clone()
    far[0, [3, 4, 5]] = x[0, [5, 3, 4]]  # permute keys at distances 3..5 from position 0
    assert torch.allclose(attn(x, far, far)[0, 0], out[0, 0], atol=1e-6)
    near = x.clone()
    near[0, [0, 1, 2]] = x[0, [2, 0, 1]]  # permute keys within the clip distance
    assert not torch.allclose(attn(x, near, near)[0, 0], out[0, 0], atol=1e-4)


def test_bounded_rel_attention_mask() -> None:
    attn = BoundedRelPositionAttention(8, 2, max_rel_pos=3).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.ones(2, 1, 5, dtype=torch.bool)
    mask[1, :, 3:] = False
    out = attn(x, x, x, mask)
    x2 = x.clone()
    x2[1, 3:] = 9.0
    assert torch.allclose(attn(x2, x2, x2, mask)[1, :3], out[1, :3], atol=1e-6)


def test_precomputed_kv_per_row_equals_attending_the_memory() -> None:
    """project_kv once per memory row, indexed per query row == attending expanded memory."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).eval()
    memory = torch.randn(2, 7, 16)
    rows = torch.tensor([0, 0, 1, 0, 1])  # the memory row each query row attends
    query = torch.randn(5, 3, 16)
    mask = torch.ones(5, 1, 7, dtype=torch.bool)
    mask[2, :, 5:] = False
    expanded = memory.index_select(0, rows)
    ref = mha(query, expanded, expanded, mask)
    (kv,) = index_kv([mha.project_kv(memory)], rows)
    out = mha(query, memory, memory, mask, kv)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
