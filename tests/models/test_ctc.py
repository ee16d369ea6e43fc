import pytest
import torch
import torch.nn.functional as F

from casnat.config import EncoderConfig
from casnat.models.ctc import CTCHead
from casnat.models.encoder import ConformerEncoder


def test_forward_is_log_softmax() -> None:
    lp = CTCHead(16, 10)(torch.randn(2, 7, 16))
    assert lp.shape == (2, 7, 10)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 7), atol=1e-5)


def test_loss_is_sum_over_batch_size() -> None:
    torch.manual_seed(0)
    head = CTCHead(16, 10)
    lp = head(torch.randn(3, 9, 16))
    tokens = torch.tensor([[3, 4, 4], [5, -1, -1], [2, 6, -1]])
    token_lens = torch.tensor([3, 1, 2])
    enc_lens = torch.tensor([9, 5, 7])
    loss = head.loss(lp, enc_lens, tokens, token_lens)
    per_utt = [
        F.ctc_loss(lp[i, : enc_lens[i]], tokens[i, : token_lens[i]], enc_lens[i : i + 1],
                   token_lens[i : i + 1], reduction="sum")
        for i in range(3)
    ]
    assert torch.allclose(loss, sum(per_utt) / 3, atol=1e-5)


def test_infeasible_is_zero() -> None:
    head = CTCHead(4, 6)
    lp = head(torch.randn(1, 2, 4))
    loss = head.loss(lp, torch.tensor([2]), torch.tensor([[2, 3, 4]]), torch.tensor([3]))
    assert torch.isfinite(loss) and loss.item() == 0.0


@pytest.fixture
def one_thread():
    """Tiny ops on a shared machine run far faster on one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_encoder_ctc_overfits(one_thread: None) -> None:
    """Encoder + CTC can learn: two random utterances are memorised in 30 Adam steps."""
    torch.manual_seed(0)
    cfg = EncoderConfig(input_dim=16, d_model=16, num_heads=2, ffn_dim=32, num_layers=1,
                        conv_kernel=3, dropout=0.0)
    enc, head = ConformerEncoder(cfg), CTCHead(16, 8)
    feats = torch.randn(2, 28, 16)
    feat_lens = torch.tensor([28, 20])
    tokens = torch.tensor([[2, 3, 4, 5], [6, 2, -1, -1]])
    token_lens = torch.tensor([4, 2])
    opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-2)
    losses = []
    for _ in range(30):
        out = enc(feats, feat_lens)
        loss = head.loss(head(out.out), out.lens, tokens, token_lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0], losses[::10]
