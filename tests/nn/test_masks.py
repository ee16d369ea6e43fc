import torch

from casnat.nn.masks import causal_mask, lengths_to_mask


def test_lengths_to_mask() -> None:
    mask = lengths_to_mask(torch.tensor([1, 3, 0]), max_len=4)
    assert mask.dtype == torch.bool and mask.shape == (3, 4)
    assert mask.sum(1).tolist() == [1, 3, 0]
    assert mask[1, :3].all() and not mask[1, 3]
    assert lengths_to_mask(torch.tensor([2, 5])).shape == (2, 5)


def test_causal_mask() -> None:
    mask = causal_mask(4)
    assert mask.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert bool(mask[i, j]) == (j <= i)


def test_one_padding_mask_helper() -> None:
    """The model's padding masks are this one helper (no copies that could drift apart):
    EncoderOutput.mask and the old name make_pad_mask give its result."""
    from casnat.models.asr import make_pad_mask
    from casnat.models.encoder import EncoderOutput

    assert make_pad_mask is lengths_to_mask
    lens = torch.tensor([3, 0, 5])
    enc = EncoderOutput(out=torch.zeros(3, 6, 2), lens=lens)
    assert torch.equal(enc.mask, lengths_to_mask(lens, 6))
    assert enc.mask.sum(1).tolist() == [3, 0, 5] and enc.mask.shape == (3, 6)
