"""Offline miniatures of the self-supervised models of notebook 01 / Pixel Invariance: SimCLRv2
1x / 2x, Barlow Twins, SimSiam (the paper's own ResNet-50s: :mod:`visxai.models.ssl_checkpoints`).

The paper explains four ResNet-50s (SimCLRv2 1x and 2x, Barlow Twins, SimSiam) whose weights are
``paper`` artefacts. Offline, the project trains the same four objectives on ONE small backbone:

* data: random crops of the offline photos (:func:`visxai.data.list_photos`) at 32x32 RGB (this
  2-core CPU trains each model in about 1-3 minutes at that size). Not Fashion-MNIST: the paper's
  augmentations are colour jitter and grayscale, which are meaningless
  on grayscale 28x28 images, and Fig. 2 / Table I are computed on natural RGB photos. The
  evaluation photos of the notebook (:data:`EVAL_PHOTOS`) are held out of training.
* backbone: a 4-stage ResNet of torchvision ``BasicBlock``s (widths w, 2w, 4w, 4w; stride-2 stem),
  global average pooling; "2x" doubles every width (SimCLRv2's 2x is twice the width).
* heads and losses are lightly's: ``SimCLRProjectionHead`` (3 layers, as in SimCLRv2) with
  ``NTXentLoss``; ``SimSiamProjectionHead`` + ``SimSiamPredictionHead`` with
  ``NegativeCosineSimilarity`` and stop-gradient; ``BarlowTwinsProjectionHead`` with
  ``BarlowTwinsLoss``.
* augmentations for training: batched random-resized crops (``torchvision.ops.roi_align``),
  horizontal flips, colour jitter (0.4, 0.4, 0.4, 0.1) p=0.8 and grayscale p=0.2 through
  :class:`visxai.transforms.InvarianceAugment` (vectorised torchvision formulas).

Written by hand: the ~40-line training loop and the crop sampler (one sample's box per row, so
that a whole batch is cropped by one ``roi_align`` call). Models take images in [0, 1] and
normalise inside (ImageNet mean/std); ``forward`` returns the projection-head output (the
features the paper uses), ``embed`` the backbone features. Checkpoints are cached by config hash
with :func:`visxai.models.training.cached` (committed under ``checkpoints/``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock
from torchvision.ops import roi_align

from ..device import make_generator, seed_everything
from . import training as _training
from .imagenet_classifiers import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "OBJECTIVES",
    "EVAL_PHOTOS",
    "SSL_CONFIGS",
    "objective_rows",
    "ssl_heads",
    "SSLBackbone",
    "SSLModel",
    "build_ssl",
    "load_ssl",
    "photo_pool",
    "random_crops",
    "train_ssl",
    "photo_tensor",
    "ssl_preprocess",
    "ssl_loss",
]

OBJECTIVES = ("simclr", "simsiam", "barlowtwins")
#: photos used for evaluation in notebook 01, never seen in SSL training
EVAL_PHOTOS = ("chelsea", "coffee", "astronaut", "dog", "horses", "giraffe")

_BASE: dict[str, Any] = {
    "version": 1,
    "image_size": 32,
    "width": 16,
    "proj_dim": 64,
    "hidden_dim": 128,
    "steps": 100,
    "batch_size": 128,
    "lr": 0.05,
    "weight_decay": 1e-4,
    "crop_scale": (0.2, 1.0),
    "jitter": (0.4, 0.4, 0.4, 0.1),
    "pool_short_side": 96,
    "seed": 0,
}

def objective_rows(base: dict[str, Any], wider: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Table I's four rows from one ``base`` config: SimCLRv2 1x and 2x (``wider`` on top of the
    1x config), Barlow Twins and SimSiam, each with its loss's settings."""
    simclr = {**base, "objective": "simclr", "temperature": 0.2}
    return {
        "simclrv2-1x": simclr,
        "simclrv2-2x": {**simclr, **wider},
        "barlowtwins": {**base, "objective": "barlowtwins", "lambda_param": 5e-3},
        "simsiam": {**base, "objective": "simsiam"},
    }


#: the four offline rows of Table I (one backbone, "2x" = twice the width)
SSL_CONFIGS: dict[str, dict[str, Any]] = objective_rows(_BASE, {"width": 32})


def ssl_heads(
    objective: str, in_dim: int, hidden_dim: int, proj_dim: int
) -> tuple[nn.Module, nn.Module | None]:
    """lightly's projection head of ``objective`` (SimCLRv2: 3 layers) on ``in_dim`` features,
    and SimSiam's prediction head (None for the other objectives)."""
    from lightly.models.modules import heads

    if objective == "simclr":  # SimCLRv2: 3-layer projection head
        projection = heads.SimCLRProjectionHead(in_dim, hidden_dim, proj_dim, num_layers=3)
    elif objective == "simsiam":
        projection = heads.SimSiamProjectionHead(in_dim, hidden_dim, proj_dim)
    else:
        projection = heads.BarlowTwinsProjectionHead(in_dim, hidden_dim, proj_dim)
    predictor = (
        heads.SimSiamPredictionHead(proj_dim, hidden_dim // 2, proj_dim)
        if objective == "simsiam"
        else None
    )
    return projection, predictor


class SSLBackbone(nn.Module):
    """Small ResNet: 3x3 stride-2 stem, four BasicBlock stages (w, 2w, 4w, 4w), global pooling."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        )
        chans = [w, 2 * w, 4 * w, 4 * w]
        strides = [1, 2, 2, 2]
        layers, cin = [], w
        for c, s in zip(chans, strides):
            down = None
            if s != 1 or cin != c:
                down = nn.Sequential(nn.Conv2d(cin, c, 1, stride=s, bias=False), nn.BatchNorm2d(c))
            layers.append(BasicBlock(cin, c, stride=s, downsample=down))
            cin = c
        self.layers = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layers(self.stem(x)))


class SSLModel(nn.Module):
    """Backbone + projection head (+ SimSiam predictor); input in [0, 1], normalised inside."""

    def __init__(
        self, objective: str, width: int = 16, proj_dim: int = 64, hidden_dim: int = 128
    ) -> None:
        super().__init__()

        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective
        self.backbone = SSLBackbone(width)
        d = self.backbone.out_dim
        self.projection, self.predictor = ssl_heads(objective, d, hidden_dim, proj_dim)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features [N, out_dim] of images in [0, 1]."""
        if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ValueError(
                f"expected float images [N, 3, H, W] in [0, 1], got {x.dtype} {tuple(x.shape)}"
            )
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projection-head output [N, proj_dim] (the features Pixel Invariance compares)."""
        return self.projection(self.embed(x))


def build_ssl(config: dict[str, Any]) -> SSLModel:
    return SSLModel(config["objective"], config["width"], config["proj_dim"], config["hidden_dim"])


# ------------------------------------------------------------------------------------------------
# data: crops of the offline photos
# ------------------------------------------------------------------------------------------------


def photo_pool(short_side: int = 160, exclude: Sequence[str] = EVAL_PHOTOS) -> list[torch.Tensor]:
    """The offline photos (minus ``exclude``) as [3,H,W] tensors in [0,1], short side resized."""
    from torchvision.transforms import v2

    from ..data import list_photos, load_photo

    resize = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(short_side, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    names = [n for n in list_photos() if n not in set(exclude)]
    if not names:
        raise ValueError("no training photos left after excluding the evaluation photos")
    return [resize(load_photo(n)) for n in names]


def random_crops(
    pool: Sequence[torch.Tensor],
    n: int,
    size: int,
    scale: tuple[float, float],
    generator: torch.Generator,
    src: torch.Tensor | None = None,
) -> torch.Tensor:
    """``n`` random-resized crops [n,3,size,size] (area ``scale``, aspect 3/4-4/3, random flips)."""
    if src is None:
        src = torch.randint(len(pool), (n,), generator=generator)
    crops = torch.empty(n, 3, size, size)
    for k in src.unique().tolist():
        idx = (src == k).nonzero().squeeze(1)
        img = pool[k]
        h, w = img.shape[-2:]
        m = len(idx)
        area = h * w * (scale[0] + (scale[1] - scale[0]) * torch.rand(m, generator=generator))
        logr = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * torch.rand(
            m, generator=generator
        )
        ratio = torch.exp(logr)
        cw = torch.sqrt(area * ratio).clamp(8, w)
        ch = torch.sqrt(area / ratio).clamp(8, h)
        x0 = (w - cw) * torch.rand(m, generator=generator)
        y0 = (h - ch) * torch.rand(m, generator=generator)
        boxes = torch.stack([torch.zeros(m), x0, y0, x0 + cw, y0 + ch], dim=1)
        crops[idx] = roi_align(
            img[None], boxes, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True
        )
    flip = torch.rand(n, generator=generator) < 0.5
    crops[flip] = crops[flip].flip(-1)
    return crops.clamp_(0, 1)


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------


def ssl_loss(config: dict[str, Any]) -> nn.Module:
    """The lightly loss of ``config["objective"]``: NT-Xent, Barlow Twins or negative cosine."""
    from lightly import loss

    if config["objective"] == "simclr":
        return loss.NTXentLoss(temperature=config.get("temperature", 0.2))
    if config["objective"] == "barlowtwins":
        return loss.BarlowTwinsLoss(lambda_param=config.get("lambda_param", 5e-3))
    return loss.NegativeCosineSimilarity()


def train_ssl(model: SSLModel, config: dict[str, Any], progress: bool = True) -> dict[str, float]:
    """Seeded SSL training on photo crops (SGD + cosine schedule); returns final loss and time.

    Trains with one CPU thread (the committed checkpoints were made that way; on a small shared
    CPU two spin-waiting OpenMP threads were 20-50x slower) and restores the caller's count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_ssl(model, config, progress)
    finally:
        torch.set_num_threads(threads)


def _train_ssl(model: SSLModel, config: dict[str, Any], progress: bool) -> dict[str, float]:
    from tqdm.auto import tqdm

    from ..transforms import AugmentConfig, InvarianceAugment

    gen = make_generator(config["seed"])
    pool = photo_pool(config["pool_short_side"])
    aug = InvarianceAugment(AugmentConfig(jitter=tuple(config["jitter"]), p_erase=0.0))
    crit = ssl_loss(config)
    opt = torch.optim.SGD(
        model.parameters(), lr=config["lr"], momentum=0.9, weight_decay=config["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config["steps"])
    model.train()
    t0 = time.time()
    size, bs = config["image_size"], config["batch_size"]
    losses: list[float] = []
    bar = tqdm(
        range(config["steps"]),
        desc=f"train {config['objective']} w{config['width']}",
        disable=not progress,
        leave=False,
    )
    for step in bar:
        src = torch.randint(len(pool), (bs,), generator=gen)  # both views crop the same photo
        views = []
        for _ in range(2):
            crops = random_crops(pool, bs, size, tuple(config["crop_scale"]), gen, src=src)
            seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
            views.append(aug.apply_batch(crops, aug.sample(bs, size, size, seed)))
        z0, z1 = model(views[0]), model(views[1])
        if model.predictor is not None:  # SimSiam: predictor + stop-gradient
            p0, p1 = model.predictor(z0), model.predictor(z1)
            loss = 0.5 * (crit(p0, z1.detach()) + crit(p1, z0.detach()))
        else:
            loss = crit(z0, z1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    tail = losses[-20:]
    return {
        "final_loss": sum(tail) / len(tail),
        "first_loss": losses[0],
        "train_seconds": round(time.time() - t0, 1),
    }


def load_ssl(name: str, pretrained: bool = True, progress: bool = True) -> SSLModel:
    """One of :data:`SSL_CONFIGS` (``simclrv2-1x``, ``simclrv2-2x``, ``barlowtwins``, ``simsiam``),
    trained once on photo crops and then loaded from ``checkpoints/`` or the cache."""
    if name not in SSL_CONFIGS:
        raise ValueError(f"unknown SSL model {name!r}; choose from {sorted(SSL_CONFIGS)}")
    cfg = SSL_CONFIGS[name]
    if not pretrained:
        seed_everything(cfg["seed"])
        return build_ssl(cfg).eval()

    def build() -> SSLModel:
        return build_ssl(cfg)

    def train(model: SSLModel) -> dict[str, float]:
        return train_ssl(model, cfg, progress=progress)

    return _training.cached(f"ssl-{name}", cfg, build, train)


def ssl_preprocess(size: int) -> Callable[[Any], torch.Tensor]:
    """PIL image -> [3, size, size] in [0, 1]: RGB, antialiased resize of the short side to
    ``size``, centre crop (the input of the miniatures; :func:`photo_tensor` uses it)."""
    from torchvision.transforms import v2

    from ..transforms import to_rgb

    tf = v2.Compose(
        [
            v2.Lambda(to_rgb),
            v2.PILToTensor(),
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Lambda(_clamp01),
        ]
    )
    return tf


def _clamp01(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1)


def photo_tensor(name: str, size: int) -> torch.Tensor:
    """Offline photo ``name`` as [3, size, size] in [0, 1] (antialiased resize of the short side,
    centre crop)."""
    from ..data import load_photo

    return ssl_preprocess(size)(load_photo(name))
