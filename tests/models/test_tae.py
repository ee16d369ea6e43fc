import torch

from casnat.models.tae import TAEExtractor

D = 16


def make() -> TAEExtractor:
    torch.manual_seed(0)
    return TAEExtractor(D, 2, 32, 0.1).eval()


def segments() -> torch.Tensor:
    mask = torch.zeros(2, 4, 12, dtype=torch.bool)
    mask[0, 0, 0:4] = True
    mask[0, 1, 3:8] = True
    mask[0, 2, 7:12] = True
    mask[0, 3, 10:12] = True
    mask[1, 0, 0:5] = True
    mask[1, 1, 4:9] = True  # positions 2, 3 of utterance 1 are padding
    return mask


def test_shape() -> None:
    out = make()(torch.randn(2, 12, D), segments())
    assert out.shape == (2, 4, D)


def test_respects_trigger_mask() -> None:
    tae = make()
    enc = torch.randn(2, 12, D)
    mask = segments()
    out = tae(enc, mask)
    enc2 = enc.clone()
    enc2[0, 8:] = 5.0  # outside position 0's and 1's segments of utterance 0
    out2 = tae(enc2, mask)
    assert torch.allclose(out2[0, :2], out[0, :2], atol=1e-6)
    assert not torch.allclose(out2[0, 2], out[0, 2], atol=1e-4)
    assert torch.allclose(out2[1], out[1])


def test_empty_rows_finite_and_zero() -> None:
    tae = make()
    enc = torch.randn(2, 12, D, requires_grad=True)
    out = tae(enc, segments())
    assert torch.isfinite(out).all()
    assert (out[1, 2:] == 0).all()
    out.sum().backward()
    assert enc.grad is not None and torch.isfinite(enc.grad).all()


def test_queries_are_positions() -> None:
    """Same segment content at two positions still gives different TAEs (PE query)."""
    tae = make()
    enc = torch.randn(1, 6, D)
    mask = torch.zeros(1, 2, 6, dtype=torch.bool)
    mask[0, :, :3] = True
    out = tae(enc, mask)
    assert not torch.allclose(out[0, 0], out[0, 1], atol=1e-4)
