"""Self-supervised and multi-label models trained by the project for notebook 02, part 2.

Offline stand-ins for the paper's models (Gur et al., AAAI 2021): the paper explains a RotNet
AlexNet (Asano et al. 2019), SeLa and SCAN ResNet-50s, and a multi-label VGG-19 trained on
PASCAL VOC 2012. None of their weights are reachable offline, so we train small seeded versions
on the synthetic multi-object set (:mod:`visxai.data.synthetic`):

* :class:`RotNet` (Gidaris et al. 2018): predicts which of the 4 rotations (0/90/180/270 degrees)
  was applied to an image. No human label is used. ``embed(x)`` is the penultimate layer that
  Algorithm 2 searches for nearest neighbours; ``head`` is the SSL task's linear classifier.
  ``blocks`` are the 4 convolutional stages probed layer by layer (Fig. 4b, Fig. 5).
* :class:`MultiLabelCNN`: a VGG-style multi-label classifier (BCE, one logit per Fashion-MNIST
  class), the analogue of the paper's VOC multi-label VGG-19 (Table 3b).

Both use only layers the AGF implementation supports (Conv2d, BatchNorm2d, ReLU, MaxPool2d,
AdaptiveAvgPool2d, Flatten, Linear) and expect [0,1] RGB inputs (no normalisation).
:func:`load_rotnet` / :func:`load_multilabel` train them once with
:func:`visxai.models.training.cached` (config-hash checkpoints; committed under checkpoints/).
Written by hand: small task-specific architectures and a 20-line rotation training loop
(``train_classifier`` trains the multi-label model; rotation needs 4 views per batch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import check_images
from ..data.synthetic import SyntheticConfig
from ..device import make_generator
from . import training as _training

__all__ = [
    "RotNet",
    "MultiLabelCNN",
    "rotate",
    "rotation_views",
    "ROTNET_CONFIG",
    "MULTILABEL_CONFIG",
    "load_rotnet",
    "load_multilabel",
    "multilabel_metrics",
    "synthetic_splits",
    "SYNTHETIC_SIZE",
]


def _block(cin: int, cout: int, k: int = 3, pool: bool = True, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def _check(x: torch.Tensor) -> None:
    check_images(x, name="x", ndim=4, channels=3)


class RotNet(nn.Module):
    """Rotation-prediction network: 4 conv blocks (64 -> 16 -> 8 -> 8 -> 8), pooled features, MLP,
    4-way head."""

    def __init__(self, width: int = 16, hidden: int = 128, num_rotations: int = 4) -> None:
        super().__init__()
        w = width
        self.blocks = nn.Sequential(
            _block(3, w, 5, stride=2),  # 64 -> 16 (stride-2 conv + pool, AlexNet-like)
            _block(w, 2 * w),  # 8
            _block(2 * w, 4 * w, pool=False),  # 8
            _block(4 * w, 4 * w, pool=False),  # 8
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(4 * w * 16, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_rotations)
        self.block_channels = [w, 2 * w, 4 * w, 4 * w]

    @property
    def cam_layer(self) -> nn.Module:
        return self.blocks[3]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations (the latent of Algorithm 2), ``[B, hidden]``."""
        _check(x)
        return self.fc(self.pool(self.blocks(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class MultiLabelCNN(nn.Module):
    """VGG-style multi-label classifier: six 3x3 conv blocks (64 -> 32 -> 16 -> 16 -> 8 -> 8 ->
    8, widths w, 2w, 4w, 4w, 8w, 8w), global average pooling, one logit per class.

    Config version 2: version 1 (four blocks, a stride-2 stem) reached 0.24 exact match, too
    weak for Table 3b; six blocks with a stride-1 stem reached 0.31 against 0.12 at the same
    data and epochs (4,000 images, 10 epochs)."""

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(3, w),  # 32
            _block(w, 2 * w),  # 16
            _block(2 * w, 4 * w, pool=False),  # 16
            _block(4 * w, 4 * w),  # 8
            _block(4 * w, 8 * w, pool=False),  # 8
            _block(8 * w, 8 * w, pool=False),  # 8
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * w, num_classes)
        )

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        _check(x)
        return self.classifier[1](self.classifier[0](self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check(x)
        return self.classifier(self.features(x))


def rotate(x: torch.Tensor, k: torch.Tensor | int) -> torch.Tensor:
    """Rotate each image of ``x`` [B,C,H,W] by ``k*90`` degrees counter-clockwise (per image if
    ``k`` is a tensor)."""
    if isinstance(k, int):
        return torch.rot90(x, k % 4, dims=(2, 3))
    k = torch.as_tensor(k).long() % 4
    if len(k) != len(x):
        raise ValueError(f"need one rotation per image ({len(x)}), got {len(k)}")
    out = torch.empty_like(x)
    for r in range(4):
        sel = k == r
        if sel.any():
            out[sel] = torch.rot90(x[sel], r, dims=(2, 3))
    return out


def rotation_views(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of every image: ``([4B,C,H,W], labels [4B])`` (rotation-major)."""
    views = torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(4)])
    labels = torch.arange(4).repeat_interleave(len(x))
    return views, labels


#: side of the synthetic set's images, the input size of both models
SYNTHETIC_SIZE = SyntheticConfig().size
SYNTHETIC_DATA = {"generator": "visxai.data.synthetic", "version": 1, "seed": 0}

ROTNET_CONFIG: dict[str, Any] = {
    "arch": "RotNet",
    "width": 16,
    "hidden": 128,
    "data": dict(SYNTHETIC_DATA, n_train=5000),
    "epochs": 6,
    "lr": 2e-3,
    "batch_size": 64,
    "seed": 0,
    "version": 1,
}
MULTILABEL_CONFIG: dict[str, Any] = {
    "arch": "MultiLabelCNN",
    "width": 16,
    "data": dict(SYNTHETIC_DATA, n_train=16000),
    "epochs": 24,
    "lr": 3e-3,
    "batch_size": 64,
    "augment": "hflip",
    "seed": 0,
    "version": 2,
}


def synthetic_splits(n_train: int, n_test: int, seed: int = 0):
    """The synthetic train / test sets the models are trained and evaluated on."""
    from ..data.synthetic import make_synthetic

    return make_synthetic(n_train, seed=seed, split="train"), make_synthetic(
        n_test, seed=seed, split="test"
    )


def _train_rotnet(
    model: RotNet, x: torch.Tensor, cfg: dict[str, Any], progress: bool = True
) -> dict[str, Any]:
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    gen = make_generator(cfg["seed"])
    bs, n = cfg["batch_size"], len(x)
    steps = cfg["epochs"] * ((n + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    bar = tqdm(total=steps, desc="rotnet", disable=not progress, leave=False)
    for _ in range(cfg["epochs"]):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, bs):
            xb, yb = rotation_views(x[order[s : s + bs]])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    model.eval()
    return {"final_loss": round(float(loss), 4)}


def load_rotnet(pretrained: bool = True, progress: bool = True) -> RotNet:
    """The project's RotNet on the synthetic set (trained once, then loaded from checkpoints/)."""
    cfg = ROTNET_CONFIG

    def build() -> RotNet:
        return RotNet(width=cfg["width"], hidden=cfg["hidden"])

    if not pretrained:
        torch.manual_seed(cfg["seed"])
        return build().eval()

    def train(m: RotNet) -> dict[str, Any]:
        train_set, test_set = synthetic_splits(cfg["data"]["n_train"], 1000, cfg["data"]["seed"])
        metrics = _train_rotnet(m, train_set.images, cfg, progress)
        xv, yv = rotation_views(test_set.images)
        metrics["test_rotation_accuracy"] = round(_training.evaluate(m, xv, yv), 4)
        return metrics

    return _training.cached("synthetic-rotnet", cfg, build, train)


def _hflip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch (a mirrored item keeps its class)."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    out = x.clone()
    out[flip] = out[flip].flip(-1)
    return out


def load_multilabel(pretrained: bool = True, progress: bool = True) -> MultiLabelCNN:
    """The project's multi-label classifier on the synthetic set (trained once, then loaded)."""
    cfg = MULTILABEL_CONFIG

    def build() -> MultiLabelCNN:
        return MultiLabelCNN(width=cfg["width"])

    if not pretrained:
        torch.manual_seed(cfg["seed"])
        return build().eval()

    def train(m: MultiLabelCNN) -> dict[str, Any]:
        train_set, test_set = synthetic_splits(cfg["data"]["n_train"], 1000, cfg["data"]["seed"])
        hist = _training.train_classifier(
            m,
            train_set.images,
            train_set.labels,
            epochs=cfg["epochs"],
            lr=cfg["lr"],
            batch_size=cfg["batch_size"],
            seed=cfg["seed"],
            loss_fn=nn.BCEWithLogitsLoss(),
            augment=_hflip,
            progress=progress,
            desc="multilabel",
        )
        probs = torch.sigmoid(_training.predict_logits(m, test_set.images))
        return {"final_loss": round(hist["loss"][-1], 4), **multilabel_metrics(probs, test_set)}

    return _training.cached("synthetic-multilabel", cfg, build, train)


def multilabel_metrics(probs: torch.Tensor, data: Any) -> dict[str, float]:
    """Held-out quality of a multi-label classifier on a synthetic set: exact match and per-label
    accuracy of ``probs > 0.5``, macro average precision (chance = the label prevalence) and the
    share of objects whose class is predicted (recall)."""
    from sklearn.metrics import average_precision_score

    pred, y = (probs > 0.5).float(), data.labels
    return {
        "test_exact_match": round(float((pred == y).all(1).float().mean()), 4),
        "test_label_accuracy": round(float((pred == y).float().mean()), 4),
        "test_macro_ap": round(float(average_precision_score(y.numpy(), probs.numpy())), 4),
        "test_object_recall": round(float(pred[y > 0.5].mean()), 4),
        "label_prevalence": round(float(y.mean()), 4),
    }
