import pytest
import torch

from casnat.nn.convolution import ConvolutionModule


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_shape_and_padding_ignored(norm: str) -> None:
    torch.manual_seed(0)
    conv = ConvolutionModule(8, 5, norm=norm).eval()  # type: ignore[arg-type]
    x = torch.randn(2, 10, 8)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    out = conv(x, mask)
    assert out.shape == (2, 10, 8)
    x2 = x.clone()
    x2[1, 6:] = 100.0  # garbage in the padding must not reach valid frames
    assert torch.allclose(conv(x2, mask)[1, :6], out[1, :6], atol=1e-6)


def test_even_kernel_rejected() -> None:
    with pytest.raises(ValueError, match="odd"):
        ConvolutionModule(8, 4)
