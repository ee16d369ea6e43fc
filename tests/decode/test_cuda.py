"""CASS-NAT training and every decoding mode on a GPU, checked against the CPU.

Trains the tiny model of test_cassnat on CUDA (the Viterbi alignment of each step then runs as the
CUDA op on the GPU's CTC posteriors), checks that every mode decodes its training utterances
exactly on the GPU, and that a CPU copy of the same weights gives the same hypotheses and token
timings. Skips where torch sees no GPU.
"""

from __future__ import annotations

import copy

import pytest
import torch

from casnat.decode.runner import MODES, DecodeOptions, decode_batch
from casnat.models.asr import ASRModel
from casnat.testing import SYNTH_UTTS as UTTS
from casnat.testing import SYNTH_V as V
from casnat.testing import overfit, overfit_config
from casnat.testing import synthetic_batch as _synthetic_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def cuda_model():
    torch.manual_seed(0)
    batch = tuple(x.to(CUDA) for x in _synthetic_batch())
    return overfit(ASRModel(overfit_config(), V).to(CUDA), batch), batch


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_decodes_on_cuda_and_matches_cpu(cuda_model, mode):
    model, (feats, lens, _, _) = cuda_model
    opts = DecodeOptions(mode=mode, beam=4, num_samples=8)
    with torch.no_grad():
        gpu = decode_batch(model, feats, lens, opts)
        cpu = decode_batch(copy.deepcopy(model).cpu(), feats.cpu(), lens.cpu(), opts)
    assert [h.tokens for h in gpu] == UTTS
    assert [h.tokens for h in cpu] == [h.tokens for h in gpu]
    if mode != "at_beam":
        assert [h.token_starts for h in cpu] == [h.token_starts for h in gpu]
        assert [h.token_ends for h in cpu] == [h.token_ends for h in gpu]


def test_training_step_under_bf16_autocast_is_finite():
    """The trainer's AMP path: the CTC head stays float32, so the Viterbi op accepts it."""
    torch.manual_seed(1)
    model = ASRModel(overfit_config(), V).to(CUDA).train()
    batch = tuple(x.to(CUDA) for x in _synthetic_batch())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = model(*batch)
    losses.total.backward()
    assert torch.isfinite(losses.total)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
