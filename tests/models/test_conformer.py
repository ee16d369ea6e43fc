"""casnat.models.conformer: shapes, InterCTC output, padding invariance, reported geometry."""

import pytest
import torch

from casnat.config import EncoderConfig
from casnat.models.conformer import ConformerEncoder

TINY = EncoderConfig(input_dim=20, d_model=16, num_heads=2, ffn_dim=32, num_layers=2, conv_kernel=5)


def test_shapes_and_inter() -> None:
    torch.manual_seed(0)
    enc = ConformerEncoder(
        EncoderConfig(**{**TINY.__dict__, "inter_ctc_layer": 1})
    )
    out = enc(torch.randn(2, 50, 20), torch.tensor([50, 31]))
    assert out.out.shape == (2, 11, 16)
    assert out.lens.tolist() == [11, 7]
    assert out.inter is not None and out.inter.shape == (2, 11, 16)
    assert out.mask.sum(1).tolist() == [11, 7]
    assert ConformerEncoder(TINY)(torch.randn(1, 20, 20), torch.tensor([20])).inter is None


def test_bad_inter_layer() -> None:
    with pytest.raises(ValueError, match="inter_ctc_layer"):
        ConformerEncoder(EncoderConfig(**{**TINY.__dict__, "inter_ctc_layer": 3}))


def test_bad_feature_dim() -> None:
    with pytest.raises(ValueError, match="feats"):
        ConformerEncoder(TINY)(torch.randn(1, 20, 80), torch.tensor([20]))


@pytest.mark.parametrize("conv_norm", ["batch_norm", "layer_norm"])
def test_padding_invariance(conv_norm: str) -> None:
    """An utterance's valid frames encode the same alone or batched with a longer one."""
    torch.manual_seed(0)
    enc = ConformerEncoder(EncoderConfig(**{**TINY.__dict__, "conv_norm": conv_norm})).eval()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    short = torch.randn(1, 37, 20)
    long = torch.randn(1, 61, 20)
    batch = torch.zeros(2, 61, 20)
    batch[0, :37] = short[0]
    batch[0, 37:] = 7.0  # padding content must not matter
    batch[1] = long[0]
    with torch.no_grad():
        alone = enc(short, torch.tensor([37]))
        both = enc(batch, torch.tensor([37, 61]))
    t = int(alone.lens[0])
    assert both.lens.tolist() == [t, 14]
    assert torch.allclose(both.out[0, :t], alone.out[0], atol=1e-5)


def test_geometry_is_what_the_subsampling_does() -> None:
    """subsampling_factor and min_input_frames (the numbers timestamps and the too-short check
    use) describe the encoder's actual output lengths."""
    enc = ConformerEncoder(TINY).eval()
    assert (enc.d_model, enc.subsampling_factor, enc.min_input_frames) == (16, 4, 7)
    with torch.no_grad():
        lens = enc(torch.randn(1, 7, 20), torch.tensor([7])).lens
        assert lens.tolist() == [1]
        out = enc(torch.randn(2, 400, 20), torch.tensor([400, 200]))
    # one output frame per subsampling_factor input frames (less the conv2d edges)
    assert [400 // 4 - 1, 200 // 4 - 1] == out.lens.tolist()
    with pytest.raises(ValueError, match="at least 7 frames"):
        enc(torch.randn(1, 6, 20), torch.tensor([6]))
