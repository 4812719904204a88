"""The multi-label VGG-19 on PASCAL VOC 2012 that AGF's Table 3b explains (paper profile).

Gur et al. (AAAI 2021), Sec. "Semantic Segmentation Metrics": "we trained a multi-label
classifier on the PASCAL-VOC 2012 training set, and consider labels with a probability larger
than 0.5 to extract the explainability maps". The paper gives no hyper-parameters; the
authors' repository does (shirgur/AGFVisualization, commit a28ca76, ``train_multiclass.py`` and
``data/VOC.py``). The recipe below follows that code; where it is silent we chose, and say so.

=====================  ======================================================  ==================
item                   value                                                   source
=====================  ======================================================  ==================
network                torchvision VGG-19 (no BN), ImageNet weights            authors' code
                       (artefact ``vgg19-imagenet``), ``classifier[6]``
                       replaced by ``Linear(4096, 20)``
loss                   ``BCEWithLogitsLoss`` (mean), one logit per VOC class   authors' code
optimiser              Adam, lr 1e-4, weight decay 5e-4, all layers            authors' code
schedule               x0.2 every 20 epochs, as their ``scheduler.step()`` at  authors' code
                       the *start* of each epoch gives it:
                       ``lr_e = 1e-4 * 0.2 ** ((e + 1) // 20)`` (e from 0)
batch                  32, shuffled, last incomplete batch dropped             authors' code
augmentation           joint image/mask ``Resize(321)`` (shorter side;         authors' code
                       bilinear / nearest), ``RandomCrop(224)``,
                       ``RandomHorizontalFlip``, ImageNet mean/std
labels                 classes (1..20) present in the *augmented* mask crop,   authors' code
                       0 (background) and 255 (boundary) ignored
training images        VOC 2012 ``ImageSets/Segmentation/train`` (1,464),      authors' code +
                       optionally + SBD (``--sbd-root``): the union of VOC     paper text; the
                       train and SBD train+val minus VOC val ("train_aug",     de-duplication and
                       which the paper's 10,582 training images are)           val exclusion: ours
epochs                 40 (the authors' default argument is 1000 with a        our choice
                       checkpoint every 10 epochs: the number used is not
                       stated); 40 = two steps of the schedule
seed                   0 (head init, shuffling, crops, dropout)                ours
=====================  ======================================================  ==================

Why labels from segmentation masks and not the ``Annotations/*.xml`` (VOC Main) labels: the
authors derive them from the masks (``np.unique`` of the cropped mask), Table 3b scores maps
against those masks (:func:`visxai.data.segmentation_sets.load_voc2012_segmentation` labels
images the same way), and the SBD images have masks but are not all in VOC's Main lists.
The authors' ``train_multiclass.py`` concatenates VOC seg ``train`` and SBD ``train.txt`` as
they are, which repeats images and includes some VOC 2012 *val* images (the test images of
Table 3b); we de-duplicate and exclude VOC val, which yields the standard "train_aug" list
whose size the paper quotes (10,582; not checked here: no SBD on the build machine).

Determinism: on the CPU a given config, seed and number of DataLoader workers gives the same
bytes (the worker count decides which generator draws the crops, so it is a setting to keep);
on CUDA runs are close but not bit-exact (cuDNN kernels, autocast in bfloat16).

Evaluation (:func:`voc_multilabel_map`): mean average precision over the 20 classes
(scikit-learn ``average_precision_score`` per class, classes without a positive skipped) on
VOC 2012 seg ``val`` at the inputs of Table 3b (the whole image resized to 224x224, labels =
classes in the resized mask). The authors' validation used ``Resize(321)`` + ``CenterCrop(224)``
and printed no metric, so there is no paper value to compare with.

Public API::

    RECIPE                                     the default config (hashed into the checkpoint name)
    recipe_config(sbd=False, **overrides)      the config dict for one training run
    train_voc_multilabel(config=None, root=None, sbd_root=None, device="auto", num_workers=None,
                         progress=True, commit=False) -> (model, checkpoint path, metrics)
    load_voc_multilabel(config=None, device="cpu") -> nn.Module   (raises CheckpointMissing)
    loaded_voc_multilabel(pretrained=True)
        -> LoadedModel  (``load_model("vgg19-voc-multilabel")``)
    voc_multilabel_map(model, split="val", n=None, root=None, ...) -> {"mAP", "ap", ...}
    visxai.data.voc.VOCMultiLabel(root, image_set, train=..., ...)  the training data (Dataset)
    CheckpointMissing(ArtefactMissing)

Command line (one command on a GPU machine with the data fetched)::

    python -m visxai fetch voc2012 vgg19-imagenet
    python -m visxai train vgg19-voc-multilabel [--sbd-root PATH] [--epochs N] [--batch-size N]
                                                [--device cuda] [--root PATH] [--workers N]

Written by hand: a ~30-line training loop (``train_classifier`` takes in-memory tensors; VOC
needs a ``DataLoader`` over JPEG files with joint image/mask augmentation, the dataset glue of
:mod:`visxai.data.voc`). AP is scikit-learn's, checkpoints go through
:func:`visxai.models.training.cached` (config-hash safetensors, seeded).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.manifest import ArtefactMissing
from ..data.segmentation_sets import VOC_CLASSES, voc2012_root
from ..data.voc import VOCMultiLabel
from ..device import autocast, make_generator, pick_device
from . import training as _training
from .imagenet_classifiers import IMAGENET_MEAN, IMAGENET_STD
from .loaded import LoadedModel

__all__ = [
    "MODEL_NAME",
    "RECIPE",
    "TRAIN_COMMAND",
    "CheckpointMissing",
    "build_model",
    "recipe_config",
    "train_voc_multilabel",
    "load_voc_multilabel",
    "loaded_voc_multilabel",
    "voc_multilabel_map",
    "predict_voc",
]

MODEL_NAME = "vgg19-voc-multilabel"
TRAIN_COMMAND = f"python -m visxai train {MODEL_NAME}"
NUM_CLASSES = len(VOC_CLASSES)

RECIPE: dict[str, Any] = {
    "arch": "vgg19",  # "tiny-vgg": a small stand-in with the same head layout (tests only)
    "init": "vgg19-imagenet",  # artefact the backbone starts from (None: random, tests only)
    "num_classes": NUM_CLASSES,
    "data": "voc2012",
    "sbd": False,  # True: VOC train + SBD train/val minus VOC val ("train_aug", 10,582 images)
    "labels": "classes in the augmented mask",
    "resize": 321,
    "crop": 224,
    "flip": True,
    "optimizer": "adam",
    "lr": 1e-4,
    "weight_decay": 5e-4,
    "lr_step": 20,
    "lr_gamma": 0.2,
    "epochs": 40,
    "batch_size": 32,
    "seed": 0,
    "version": 1,
}


class CheckpointMissing(ArtefactMissing):
    """The trained multi-label VGG-19 is not in checkpoints/ nor in the cache."""


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


class _TinyVGG(nn.Module):
    """Stand-in with VGG's layout (``features``, ``avgpool``, ``classifier[-1]``), for fast
    tests."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """The architecture of ``config`` with a ``num_classes``-way last layer (random weights)."""
    if config["arch"] == "vgg19":
        import torchvision.models as tvm

        model = tvm.vgg19(weights=None)
    elif config["arch"] == "tiny-vgg":
        model = _TinyVGG()
    else:
        raise ValueError(f"unknown arch {config['arch']!r}: 'vgg19' or 'tiny-vgg'")
    last = model.classifier[-1]
    model.classifier[-1] = nn.Linear(last.in_features, int(config["num_classes"]))
    return model


def _init_from_imagenet(model: nn.Module, config: Mapping[str, Any]) -> None:
    """Copy the ImageNet VGG-19 weights into everything but the new last layer."""
    if config.get("init") is None:
        return
    if config["init"] != "vgg19-imagenet" or config["arch"] != "vgg19":
        raise ValueError(f"init {config['init']!r} needs arch 'vgg19'")
    from .imagenet_classifiers import build_torchvision

    imnet, _, _ = build_torchvision(
        "vgg19", pretrained=True
    )  # ArtefactMissing names the fetch command
    state = {k: v for k, v in imnet.state_dict().items() if not k.startswith("classifier.6.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or sorted(missing) != ["classifier.6.bias", "classifier.6.weight"]:
        raise RuntimeError(f"ImageNet VGG-19 init: missing {missing}, unexpected {unexpected}")


def recipe_config(sbd: bool = False, **overrides: Any) -> dict[str, Any]:
    """:data:`RECIPE` with ``sbd`` and ``overrides`` (unknown keys are an error)."""
    cfg = dict(RECIPE, sbd=bool(sbd))
    bad = set(overrides) - set(cfg)
    if bad:
        raise KeyError(f"unknown recipe keys {sorted(bad)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    return cfg


def _lr_at(config: Mapping[str, Any], epoch: int) -> float:
    """The authors' StepLR as called at the start of each epoch: ``lr * gamma ** ((epoch + 1) //
    step)``."""
    return float(config["lr"]) * float(config["lr_gamma"]) ** (
        (epoch + 1) // int(config["lr_step"])
    )


def _fit(
    model: nn.Module,
    loader: DataLoader,
    config: Mapping[str, Any],
    device: torch.device,
    progress: bool,
) -> list[float]:
    """Mini-batch Adam on BCE-with-logits; returns the mean loss per epoch."""
    if config["optimizer"] != "adam":
        raise ValueError(f"optimizer must be 'adam', got {config['optimizer']!r}")
    model.to(device)
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(
        model.parameters(), lr=_lr_at(config, 0), weight_decay=float(config["weight_decay"])
    )
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and not torch.cuda.is_bf16_supported())
    loss_fn = nn.BCEWithLogitsLoss()
    history: list[float] = []
    bar = tqdm(
        total=int(config["epochs"]) * len(loader),
        desc=MODEL_NAME,
        disable=not progress,
        leave=False,
    )
    for epoch in range(int(config["epochs"])):
        for g in opt.param_groups:
            g["lr"] = _lr_at(config, epoch)
        model.train()
        total, seen = 0.0, 0
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(x)
            seen += len(x)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{total / max(seen, 1):.4f}", refresh=False)
        history.append(total / max(seen, 1))
    bar.close()
    model.eval()
    return history


def _default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def train_voc_multilabel(
    config: Mapping[str, Any] | None = None,
    root: str | Path | None = None,
    sbd_root: str | Path | None = None,
    device: str | torch.device = "auto",
    num_workers: int | None = None,
    progress: bool = True,
    commit: bool = False,
    evaluate: bool = True,
) -> tuple[nn.Module, Path, dict[str, Any]]:
    """Train (once per config) the multi-label classifier; returns ``(model on CPU, checkpoint,
    metadata)``.

    ``config`` defaults to ``recipe_config(sbd=sbd_root is not None)``; a config with ``sbd``
    true needs ``sbd_root``. The checkpoint is
    ``<cache>/models/vgg19-voc-multilabel-<hash>.safetensors``
    (:func:`~visxai.models.training.cached`); an existing one is loaded, not retrained. With
    ``evaluate`` the VOC ``val`` mAP is stored in its metadata (``metrics.val_mAP``).
    """
    cfg = dict(config) if config is not None else recipe_config(sbd=sbd_root is not None)
    if cfg.get("sbd") and sbd_root is None:
        raise ValueError(
            "this config trains on VOC + SBD: give sbd_root (SBD's benchmark_RELEASE/dataset)"
        )
    if not cfg.get("sbd") and sbd_root is not None:
        raise ValueError("sbd_root given but config['sbd'] is False")
    dev = pick_device(device)
    workers = _default_workers() if num_workers is None else int(num_workers)
    if _training.find_checkpoint(MODEL_NAME, cfg) is None:  # fail fast, before building VGG-19
        voc2012_root(root)  # ArtefactMissing: python -m visxai fetch voc2012
        if cfg.get("init") == "vgg19-imagenet":
            from .imagenet_classifiers import TORCHVISION_SPECS, torchvision_weights_file

            torchvision_weights_file(
                TORCHVISION_SPECS["vgg19"]
            )  # ArtefactMissing: ... fetch vgg19-imagenet

    def train(model: nn.Module) -> dict[str, Any]:
        ds = VOCMultiLabel(
            root,
            "train",
            train=True,
            sbd_root=sbd_root,
            resize=int(cfg["resize"]),
            crop=int(cfg["crop"]),
            flip=bool(cfg["flip"]),
        )
        bs = int(cfg["batch_size"])
        if len(ds) < bs:
            raise ValueError(
                f"{len(ds)} training images < batch size {bs} (the last incomplete batch is "
                "dropped)"
            )
        _init_from_imagenet(model, cfg)
        if dev.type == "cuda":  # dropout on the GPU (still not bit-exact there: cuDNN kernels)
            torch.cuda.manual_seed_all(int(cfg["seed"]))
        loader = DataLoader(
            ds,
            batch_size=bs,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            generator=make_generator(int(cfg["seed"])),
            pin_memory=dev.type == "cuda",
            persistent_workers=workers > 0,
        )
        hist = _fit(model, loader, cfg, dev, progress)
        metrics: dict[str, Any] = {
            "n_train": len(ds),
            "final_loss": round(hist[-1], 4),
            "loss_per_epoch": [round(v, 4) for v in hist],
        }
        if evaluate:
            res = voc_multilabel_map(
                model,
                "val",
                root=root,
                size=int(cfg["crop"]),
                device=dev,
                num_workers=workers,
                progress=progress,
            )
            metrics.update(val_mAP=round(res["mAP"], 4), n_val=res["n_images"])
        model.cpu()
        return metrics

    model = _training.cached(MODEL_NAME, cfg, lambda: build_model(cfg), train, commit=commit)
    path = _training.find_checkpoint(MODEL_NAME, cfg)
    assert path is not None
    return model, path, _training.checkpoint_metadata(path)


def _missing_message(configs: list[dict[str, Any]]) -> str:
    from ..data.manifest import is_cached

    names = ", ".join(_training.checkpoint_name(MODEL_NAME, c) for c in configs)
    lines = [
        f"The trained multi-label VGG-19 ({names}) is in neither checkpoints/ nor "
        f"{_training.model_cache_dir()}.",
        f"Train it once on a GPU (about {RECIPE['epochs']} epochs of VOC 2012 train) with:",
        f"    {TRAIN_COMMAND} [--sbd-root PATH/benchmark_RELEASE/dataset]",
    ]
    need = [a for a in ("voc2012", "vgg19-imagenet") if not _safe_cached(is_cached, a)]
    if need:
        lines.append(
            f"It needs the artefacts {', '.join(need)}: python -m visxai fetch {' '.join(need)}"
        )
    others = sorted(_training.model_cache_dir().glob(f"{MODEL_NAME}-*.safetensors"))
    if others:
        lines.append(
            "Checkpoints with other settings exist (load them with "
            "visxai.models.voc_multilabel.load_voc_multilabel(config)):"
        )
        for p in others:
            cfg = _training.checkpoint_metadata(p).get("config", {})
            diff = {k: v for k, v in cfg.items() if RECIPE.get(k) != v}
            lines.append(f"    {p.name}: differs from the recipe in {diff}")
    return "\n".join(lines)


def _safe_cached(is_cached, name: str) -> bool:
    try:
        return is_cached(name)
    except Exception:  # noqa: BLE001 - a manifest problem only changes the hint
        return False


def load_voc_multilabel(
    config: Mapping[str, Any] | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The trained classifier in eval mode, never training it.

    ``config=None`` looks for the recipe trained on VOC + SBD (the paper's training set), then
    on VOC alone. Raises :class:`CheckpointMissing` naming ``python -m visxai train
    vgg19-voc-multilabel`` (and ``python -m visxai fetch ...`` for missing data/weights).
    """
    configs = (
        [dict(config)]
        if config is not None
        else [recipe_config(sbd=True), recipe_config(sbd=False)]
    )
    for cfg in configs:
        path = _training.find_checkpoint(MODEL_NAME, cfg)
        if path is not None:
            with _training.seeded(int(cfg.get("seed", 0))):
                model = build_model(cfg)
            _training.load_checkpoint(model, path)
            model.checkpoint_path = str(path)  # type: ignore[attr-defined]
            return model.to(pick_device(device)).eval()
    raise CheckpointMissing(_missing_message(configs))


def loaded_voc_multilabel(pretrained: bool = True) -> LoadedModel:
    """:class:`~visxai.models.loaded.LoadedModel` for ``load_model("vgg19-voc-multilabel")``.

    ImageNet mean/std; ``preprocess`` is the Table 3b input (RGB, ``Resize((224, 224))`` bilinear,
    no crop); labels are :data:`VOC_CLASSES`. ``pretrained=False``: random weights, no files needed.
    """
    from torchvision import transforms as T

    from ..layers import Normalizer
    from ..transforms import to_rgb

    info: dict[str, Any] = {
        "recipe": "visxai.models.voc_multilabel.RECIPE",
        "train_command": TRAIN_COMMAND,
    }
    if pretrained:
        model = load_voc_multilabel()
        path = model.checkpoint_path  # type: ignore[attr-defined]
        meta = _training.checkpoint_metadata(path)
        info.update(checkpoint=path, config=meta.get("config"), **meta.get("metrics", {}))
    else:
        model = build_model(RECIPE).eval()
    size = int(RECIPE["crop"])
    mean, std = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
    preprocess = T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )
    return LoadedModel(
        name=MODEL_NAME,
        model=model,
        preprocess=preprocess,
        normalize=Normalizer(mean, std),
        denormalize=Normalizer(mean, std, inverse=True),
        mean=mean,
        std=std,
        input_size=(size, size),
        labels=list(VOC_CLASSES),
        kind="voc-multilabel",
        info=info,
    )


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def predict_voc(
    model: nn.Module, loader: DataLoader, device: torch.device, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits [N,20] float32 on CPU, labels [N,20])`` over ``loader`` (eval mode, autocast on
    CUDA)."""
    was = model.training
    model.eval().to(device)
    out, ys = [], []
    for x, y in tqdm(loader, desc="predict", disable=not progress, leave=False):
        with autocast(device):
            out.append(model(x.to(device, non_blocking=True)).float().cpu())
        ys.append(y)
    model.train(was)
    return torch.cat(out), torch.cat(ys)


def voc_multilabel_map(
    model: nn.Module,
    split: str = "val",
    n: int | None = None,
    root: str | Path | None = None,
    size: int = 224,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Mean average precision over the 20 VOC classes on ``split`` (first ``n`` images), Table 3b
    inputs.

    Returns ``{"mAP", "ap": {class: AP}, "n_images", "n_classes", "accuracy@0.5" (per label),
    "exact_match@0.5"}``. Classes without a positive image are left out of the mean (their AP
    is undefined). ``model`` takes ImageNet-normalised inputs (as the zoo's VOC model does).
    """
    from sklearn.metrics import average_precision_score
    from torch.utils.data import Subset

    ds: Dataset = VOCMultiLabel(root, split, train=False, resize=size, crop=size)
    if n is not None:
        ds = Subset(ds, range(min(n, len(ds))))
    if len(ds) == 0:
        raise ValueError(f"VOC {split}: no images to evaluate")
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    logits, y = predict_voc(model, loader, pick_device(device), progress)
    if logits.shape[1] != NUM_CLASSES:
        raise ValueError(f"the model gives {logits.shape[1]} logits, expected {NUM_CLASSES}")
    scores, truth = torch.sigmoid(logits).numpy(), y.numpy().astype(int)
    ap = {
        VOC_CLASSES[c]: float(average_precision_score(truth[:, c], scores[:, c]))
        for c in range(NUM_CLASSES)
        if truth[:, c].any()
    }
    pred = scores > 0.5
    return {
        "mAP": float(np.mean(list(ap.values()))) if ap else float("nan"),
        "ap": ap,
        "n_images": len(ds),
        "n_classes": len(ap),
        "accuracy@0.5": float((pred == truth.astype(bool)).mean()),
        "exact_match@0.5": float((pred == truth.astype(bool)).all(1).mean()),
    }
