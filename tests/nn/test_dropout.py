"""casnat's CPU dropout: the rate, the scaling, gradients through the same mask, seeding."""

import pytest
import torch

from casnat.nn.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5])
def test_drop_rate_matches_p(p: float) -> None:
    torch.manual_seed(1)
    mask = keep_mask((200, 1000), p)
    assert mask.dtype == torch.bool and mask.shape == (200, 1000)
    dropped = 1.0 - mask.float().mean().item()
    assert abs(dropped - p) < 0.005  # 200k draws: ~4 standard errors at p = 0.5


def test_kept_values_scaled_and_gradient_uses_the_same_mask() -> None:
    x = torch.randn(64, 300, requires_grad=True)
    torch.manual_seed(2)
    y = Dropout(0.25).train()(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)


def test_seeded_and_identity_in_eval() -> None:
    x = torch.randn(10, 500)
    torch.manual_seed(3)
    a = dropout(x, 0.1, True)
    torch.manual_seed(3)
    b = dropout(x, 0.1, True)
    assert torch.equal(a, b)
    assert not torch.equal(a, dropout(x, 0.1, True))  # the generator moved on
    d = Dropout(0.1).eval()
    assert d(x) is x
    assert dropout(x, 0.0, True) is x


def test_bf16_input_keeps_its_dtype() -> None:
    x = torch.randn(8, 64, dtype=torch.bfloat16)
    assert dropout(x, 0.2, True).dtype == torch.bfloat16


def test_bad_probability() -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)
