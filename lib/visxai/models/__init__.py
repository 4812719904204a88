"""Model zoo: ImageNet classifiers (offline EfficientNet-Lite, paper torchvision models), the
project's small MNIST / Fashion-MNIST CNNs, and a seeded training recipe with a config-hash
checkpoint cache. See :mod:`visxai.models.zoo` and :mod:`visxai.models.training`.
"""

from visxai.models.small_cnns import SmallCNN3, SmallResNet, SmallVGG
from visxai.models.training import cached, evaluate, train_classifier
from visxai.models.zoo import (
    FASHION_MNIST_LABELS,
    MNIST_LABELS,
    SMALL_MODELS,
    LoadedModel,
    Normalizer,
    list_models,
    load_model,
)

__all__ = [
    "load_model",
    "list_models",
    "LoadedModel",
    "Normalizer",
    "SMALL_MODELS",
    "MNIST_LABELS",
    "FASHION_MNIST_LABELS",
    "SmallCNN3",
    "SmallResNet",
    "SmallVGG",
    "cached",
    "train_classifier",
    "evaluate",
]
