import pytest
import torch

from casnat.nn.feed_forward import FeedForward


@pytest.mark.parametrize("activation", ["swish", "relu", "gelu"])
def test_shape(activation: str) -> None:
    ff = FeedForward(8, 16, 0.1, activation)  # type: ignore[arg-type]
    assert ff(torch.randn(2, 3, 8)).shape == (2, 3, 8)


def test_bad_activation() -> None:
    with pytest.raises(ValueError, match="activation"):
        FeedForward(8, 16, activation="tanh")  # type: ignore[arg-type]
