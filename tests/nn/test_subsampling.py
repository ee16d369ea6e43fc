import pytest
import torch

from casnat.nn.subsampling import Conv2dSubsampling4, subsampled_lengths


@pytest.mark.parametrize("t", [7, 8, 9, 10, 11, 15, 16, 100, 101])
def test_length_formula(t: int) -> None:
    sub = Conv2dSubsampling4(20, 8)
    y, lens = sub(torch.randn(1, t, 20), torch.tensor([t]))
    expected = ((t - 1) // 2 - 1) // 2
    assert y.shape == (1, expected, 8)
    assert lens.tolist() == [expected]


def test_lengths_clamped_and_batched() -> None:
    assert subsampled_lengths(torch.tensor([1, 3, 5, 7, 100])).tolist() == [0, 0, 0, 1, 24]
    y, lens = Conv2dSubsampling4(80, 8)(torch.randn(2, 100, 80), torch.tensor([100, 43]))
    assert y.shape == (2, 24, 8) and lens.tolist() == [24, 10]


def test_too_short() -> None:
    with pytest.raises(ValueError, match="at least 7 frames"):
        Conv2dSubsampling4(80, 8)(torch.randn(1, 6, 80), torch.tensor([6]))


def test_channels_last_weights_compute_what_plain_conv2d_does() -> None:
    """The fast NHWC layout is a speed detail: same outputs and gradients as the plain layers,
    state-dict round trip into a contiguous copy and back keeps the values."""
    torch.manual_seed(0)
    sub = Conv2dSubsampling4(40, 16, channels=8)
    assert sub.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 50, 40)
    y, _ = sub(x, torch.tensor([50, 40, 30]))
    h = x.unsqueeze(1)
    for m in sub.conv:  # the same weights, plain NCHW
        h = torch.nn.functional.conv2d(h, m.weight.contiguous(), m.bias, m.stride) \
            if isinstance(m, torch.nn.Conv2d) else torch.relu(h)
    n, c, t, f = h.shape
    ref = sub.out(h.transpose(1, 2).reshape(n, t, c * f))
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    state = {k: v.contiguous() for k, v in sub.state_dict().items()}
    other = Conv2dSubsampling4(40, 16, channels=8)
    other.load_state_dict(state)
    torch.testing.assert_close(other(x, torch.tensor([50, 40, 30]))[0], y)
