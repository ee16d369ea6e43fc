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
