import math

import torch

from casnat.nn.positional import PositionalEncoding, RelPositionalEncoding, sinusoidal_encoding


def test_sinusoidal_values() -> None:
    pe = sinusoidal_encoding(torch.arange(6), 8)
    assert pe.shape == (6, 8)
    assert torch.allclose(pe[0, 0::2], torch.zeros(4))
    assert torch.allclose(pe[0, 1::2], torch.ones(4))
    assert math.isclose(pe[3, 2].item(), math.sin(3 / 10000 ** (2 / 8)), rel_tol=1e-5)
    assert math.isclose(pe[3, 3].item(), math.cos(3 / 10000 ** (2 / 8)), rel_tol=1e-5)


def test_odd_dim() -> None:
    assert sinusoidal_encoding(torch.arange(3), 7).shape == (3, 7)


def test_absolute_encoding_adds_positions() -> None:
    enc = PositionalEncoding(8, scale=False)
    out = enc(torch.zeros(2, 5, 8))
    assert torch.allclose(out[1], sinusoidal_encoding(torch.arange(5), 8))


def test_relative_encoding_distances() -> None:
    x, pos = RelPositionalEncoding(8)(torch.ones(1, 4, 8))
    assert pos.shape == (1, 7, 8)
    assert torch.allclose(x, torch.full_like(x, math.sqrt(8)))
    # index j encodes distance T-1-j: index 3 is distance 0, index 0 is +3, index 6 is -3.
    assert torch.allclose(pos[0, 3], sinusoidal_encoding(torch.tensor([0]), 8)[0])
    assert torch.allclose(pos[0, 0], sinusoidal_encoding(torch.tensor([3]), 8)[0])
    assert torch.allclose(pos[0, 6], sinusoidal_encoding(torch.tensor([-3]), 8)[0])
    # a distance's embedding does not depend on T
    _, pos_long = RelPositionalEncoding(8)(torch.ones(1, 9, 8))
    assert torch.allclose(pos_long[0, 8 - 2], pos[0, 3 - 2])
