"""Small seeded models shared by the tests of the attribution methods."""

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
