"""casnat.decode.runner.supported_modes: the modes a saved config can decode with, which recipes
use to choose their defaults, agree with what check_mode accepts on the model built from it."""

from __future__ import annotations

import pytest

from casnat.config import ModelConfig
from casnat.decode.runner import MODES, check_mode, supported_modes
from casnat.models.asr import ASRModel
from casnat.testing import tiny_parts

ENC, AT, NAT = tiny_parts(d_model=32, ffn_dim=64, conv_kernel=5, subsampling_channels=8)

CONFIGS = {
    "ctc": ModelConfig(type="ctc", encoder=ENC),
    "ctc+unused at section": ModelConfig(type="ctc", encoder=ENC, at_decoder=AT),
    "at": ModelConfig(type="at", encoder=ENC, at_decoder=AT),
    "cassnat": ModelConfig(type="cassnat", encoder=ENC, nat_decoder=NAT),
    "cassnat+at": ModelConfig(type="cassnat", encoder=ENC, nat_decoder=NAT, at_decoder=AT),
}
EXPECTED = {
    "ctc": ("ctc_greedy", "ctc_prefix_beam"),
    "ctc+unused at section": ("ctc_greedy", "ctc_prefix_beam"),
    "at": ("ctc_greedy", "ctc_prefix_beam", "at_beam", "joint_ctc_at", "attention_rescoring"),
    "cassnat": ("ctc_greedy", "ctc_prefix_beam", "cassnat", "cassnat_esa"),
    "cassnat+at": MODES,
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_supported_modes_match_the_heads_the_model_builds(name):
    cfg = CONFIGS[name]
    assert supported_modes(cfg) == EXPECTED[name]
    model = ASRModel(cfg, vocab_size=8)
    for mode in MODES:
        if mode in supported_modes(cfg):
            check_mode(model, mode)
        else:
            with pytest.raises(ValueError, match=mode):
                check_mode(model, mode)



def test_bf16_dtype_runs_the_encoder_in_bf16_and_the_searches_in_fp32():
    import torch

    from casnat.decode.runner import DecodeOptions, decode_batch

    torch.manual_seed(0)
    model = ASRModel(CONFIGS["cassnat+at"], vocab_size=8).eval()
    dim = model.encoder.input_dim if hasattr(model.encoder, "input_dim") else ENC.input_dim
    feats, lens = torch.randn(3, 60, dim), torch.tensor([60, 45, 30])
    seen: list[torch.dtype] = []
    hook = model.encoder.register_forward_hook(lambda m, i, o: seen.append(o.out.dtype))
    with torch.no_grad():
        for dtype in ("fp32", "bf16"):
            for mode in ("ctc_greedy", "cassnat", "joint_ctc_at"):  # CTC, alignment op, AT
                hyps = decode_batch(model, feats, lens, DecodeOptions(mode=mode, dtype=dtype))
                assert len(hyps) == 3 and all(isinstance(t, int) for h in hyps for t in h.tokens)
    hook.remove()
    assert seen == [torch.float32] * 3 + [torch.bfloat16] * 3  # the option switched the encoder
