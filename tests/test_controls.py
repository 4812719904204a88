"""visxai.controls: the model-randomisation check and the random-saliency baseline."""

import pytest
import torch
from torch import nn

from visxai.controls import random_saliency, randomized_model


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)
    )


def test_randomized_model_changes_every_layer_and_leaves_the_original():
    net = _net()
    net[1].running_mean.fill_(3.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rnd = randomized_model(net, seed=1)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not torch.equal(rnd[0].weight, net[0].weight) and not torch.equal(
        rnd[4].weight, net[4].weight
    )
    assert torch.equal(rnd[1].running_mean, torch.zeros(4))
    x = torch.randn(2, 3, 8, 8)
    assert not torch.allclose(rnd(x), net.eval()(x))
    assert torch.equal(randomized_model(net, seed=1)[0].weight, rnd[0].weight)  # seeded


def test_cascading_randomisation_resets_only_the_top_layers():
    net = _net()
    rnd = randomized_model(net, seed=1, cascade=1)
    assert torch.equal(rnd[0].weight, net[0].weight) and not torch.equal(
        rnd[4].weight, net[4].weight
    )
    with pytest.raises(ValueError, match="cascade"):
        randomized_model(net, cascade=0)
    with pytest.raises(ValueError, match="nothing to randomise"):
        randomized_model(nn.ReLU())


def test_random_saliency_is_uniform_and_seeded():
    s = random_saliency((4, 32, 32), seed=3)
    assert s.shape == (4, 32, 32) and 0 <= float(s.min()) and float(s.max()) < 1
    assert abs(float(s.mean()) - 0.5) < 0.02
    assert torch.equal(s, random_saliency((4, 32, 32), seed=3))
    with pytest.raises(ValueError):
        random_saliency((0, 3))
