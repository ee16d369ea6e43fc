import pytest
import torch

from casnat.config import NATDecoderConfig
from casnat.models.nat_decoder import NATDecoder

V, D = 10, 16


def make(**kw: int) -> NATDecoder:
    torch.manual_seed(0)
    cfg = NATDecoderConfig(**{"num_sa_layers": 1, "num_mixed_layers": 2, "num_heads": 2,
                              "ffn_dim": 32, **kw})
    return NATDecoder(cfg, D, V).eval()


def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    tae_mask = torch.ones(2, 5, dtype=torch.bool)
    tae_mask[1, 3:] = False
    enc_mask = torch.ones(2, 11, dtype=torch.bool)
    enc_mask[1, 7:] = False
    return torch.randn(2, 5, D), tae_mask, torch.randn(2, 11, D), enc_mask


def test_shapes() -> None:
    out = make()(*inputs())
    assert out.log_probs.shape == (2, 5, V)
    assert out.inter_log_probs is not None and out.inter_log_probs.shape == (2, 5, V)
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(2, 5), atol=1e-5)
    assert make(num_mixed_layers=1)(*inputs()).inter_log_probs is None


def test_decoding_skips_the_inter_projection() -> None:
    dec = make(num_mixed_layers=2).eval()
    x = inputs()
    full, lean = dec(*x), dec(*x, with_inter=False)
    assert lean.inter_log_probs is None
    assert torch.equal(lean.log_probs, full.log_probs)


def test_inter_uses_shared_output_layer() -> None:
    dec = make(num_mixed_layers=2)
    dec.mixed_layers[1] = torch.nn.Identity()  # type: ignore[assignment]
    dec.mixed_layers[1].forward = lambda x, *a: x  # type: ignore[method-assign]
    out = dec(*inputs())
    assert out.inter_log_probs is not None
    assert torch.allclose(out.inter_log_probs, out.log_probs)


def test_no_causal_mask() -> None:
    dec = make()
    tae, tae_mask, enc, enc_mask = inputs()
    out = dec(tae, tae_mask, enc, enc_mask)
    tae2 = tae.clone()
    tae2[0, 4] = torch.randn(D)  # a later position changes earlier outputs
    out2 = dec(tae2, tae_mask, enc, enc_mask)
    assert not torch.allclose(out2.log_probs[0, 0], out.log_probs[0, 0], atol=1e-5)


def test_padding_ignored() -> None:
    dec = make()
    tae, tae_mask, enc, enc_mask = inputs()
    out = dec(tae, tae_mask, enc, enc_mask)
    tae2, enc2 = tae.clone(), enc.clone()
    tae2[1, 3:] = 4.0
    enc2[1, 7:] = -4.0
    out2 = dec(tae2, tae_mask, enc2, enc_mask)
    assert torch.allclose(out2.log_probs[1, :3], out.log_probs[1, :3], atol=1e-5)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="num_mixed_layers"):
        make(num_mixed_layers=0)
