"""Small seeded models shared by the tests of the attribution methods and of TIO."""

import torch
from torch import nn


def tiny_cnn() -> nn.Module:
    """Conv-BN-ReLU-pool-conv-ReLU-GAP-Linear, 5 classes, seeded (every method supports it)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


def tio_cnn(seed: int = 0) -> nn.Module:
    """A small random CNN (10 classes) whose weights are scaled up so that a target class is
    reachable by TIO's ascent in a few steps (notebook 03's tests)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 10, 3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    return model
