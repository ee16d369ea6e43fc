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
