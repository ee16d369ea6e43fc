from torch import nn

from casnat.nn import count_parameters


def test_count_parameters() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    assert count_parameters(model) == 15 + 8
    model[0].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 3 + 8
    assert count_parameters(model) == 23
