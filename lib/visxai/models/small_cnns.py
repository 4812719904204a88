"""Small CNNs for 1x28x28 images (MNIST, Fashion-MNIST): the project's own offline models.

Written by hand because they are the papers' toy models, not published architectures:

* :class:`SmallCNN3`: the "three-layer CNN" of *Fill in the Blanks* (Sec. 4): three
  conv-ReLU-maxpool stages and one linear layer.
* :class:`SmallResNet`: the "ResNet5" of *Fill in the Blanks* (Table 1): a 3x3 stem and two
  torchvision :class:`~torchvision.models.resnet.BasicBlock` residual blocks (5 convolutions),
  global average pooling and one linear layer. Using torchvision's ``BasicBlock`` (not a copy) lets
  zennit's ``ResNetCanonizer`` / the AGF residual handling recognise the skip connection.
* :class:`SmallVGG`: a VGG-style stack (conv-ReLU-conv-ReLU-maxpool twice) with a two-layer
  classifier.

Only layers that the AGF implementation supports are used: Conv2d, Linear, ReLU, MaxPool2d,
AdaptiveAvgPool2d, BatchNorm2d, Dropout, Flatten (plus the residual add inside ``BasicBlock``).
Every model expects inputs in [0, 1] (no normalisation, see :mod:`visxai.models.zoo`) and has a
``cam_layer`` attribute naming the last convolutional stage, for Grad-CAM style methods.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from ..checks import check_images

__all__ = ["SmallCNN3", "SmallResNet", "SmallVGG", "ARCHITECTURES", "build_small"]


def _check_input(x: torch.Tensor, in_channels: int) -> None:
    check_images(x, name="x", ndim=4, channels=in_channels)


class SmallCNN3(nn.Module):
    """Three conv-ReLU-maxpool stages (28 -> 14 -> 7 -> 3) and a linear classifier."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 3 * 3, num_classes))

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolution's ReLU (7x7 maps) for Grad-CAM."""
        return self.features[7]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        return self.classifier(self.features(x))


class SmallResNet(nn.Module):
    """ "ResNet5": conv3x3-BN-ReLU-maxpool stem (28 -> 14), BasicBlock(w), BasicBlock(2w, stride 2),
    GAP, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, w, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = BasicBlock(w, w)
        down = nn.Sequential(nn.Conv2d(w, 2 * w, 1, stride=2, bias=False), nn.BatchNorm2d(2 * w))
        self.layer2 = BasicBlock(w, 2 * w, stride=2, downsample=down)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * w, num_classes)
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def cam_layer(self) -> nn.Module:
        """The last residual block (7x7 maps) for Grad-CAM."""
        return self.layer2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(self.flatten(self.avgpool(x)))


class SmallVGG(nn.Module):
    """VGG-style: conv-ReLU-maxpool (28 -> 14), conv-ReLU-conv-ReLU-maxpool (-> 7),
    Linear-ReLU-Dropout-Linear."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 16, hidden: int = 128
    ) -> None:
        super().__init__()
        w = width
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * w * 7 * 7, hidden),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(hidden, num_classes),
        )

    @property
    def cam_layer(self) -> nn.Module:
        """The last convolution's ReLU (14x14 maps) for Grad-CAM."""
        return self.features[6]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        return self.classifier(self.features(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "SmallCNN3": SmallCNN3,
    "SmallResNet": SmallResNet,
    "SmallVGG": SmallVGG,
}


def build_small(arch: str, **kwargs) -> nn.Module:
    """Instantiate a small architecture by name (``SmallCNN3``, ``SmallResNet``, ``SmallVGG``)."""
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"unknown small architecture {arch!r}; choose from {sorted(ARCHITECTURES)}"
        )
    return ARCHITECTURES[arch](**kwargs)
