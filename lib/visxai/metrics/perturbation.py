"""Insertion and Deletion games (Petsiuk et al., RISE, BMVC 2018) with a generic score function.

``score_fn`` maps a batch of model-input images [N,C,H,W] to one score per image [N]: a class
probability (:class:`ClassScore`) or Pixel Invariance's (notebook 01) similarity score
(:class:`SimilarityScore`: cosine similarity of the model's outputs for the perturbed image and
for each of ``T`` random transformations of the original image, averaged over the ``T``; the
paper uses T = 10).

RISE conventions (its reference ``CausalMetric``): pixels are visited from the most to the least
salient (all channels of a pixel at once); ``step`` pixels per step (224 at 224x224, i.e. about
224 steps; :func:`default_step` keeps that number of steps at other sizes); Deletion starts from
the image and writes the substrate ``zeros`` (zero in model-input space: the mean colour after
normalisation), Insertion starts from a blurred image (Gaussian kernel 11, sigma 5) and writes
the image's pixels; the curve has ``n_steps + 1`` points equally spaced on [0, 1] and its area is
the trapezoidal rule ``(sum - first/2 - last/2) / n_steps``.

Written by hand: the curve builder (vectorised: every step's image is ``where(rank < k*step,
finish, start)``, built chunk by chunk and scored with :func:`visxai.device.batched_map`) and the
trapezoidal AUC; the blur is torchvision's ``gaussian_blur``. Other metric modules (e.g. a
negative-perturbation test) can reuse :func:`salient_ranks`, :func:`perturbation_curve` and
:func:`auc`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "ScoreFn",
    "PerturbationResult",
    "auc",
    "default_step",
    "blur",
    "upsample_saliency",
    "salient_ranks",
    "perturbation_curve",
    "insertion",
    "deletion",
    "ClassScore",
    "SimilarityScore",
]

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PerturbationResult:
    curve: np.ndarray  # [n_steps + 1] scores, first = start image
    auc: float


def auc(curve: np.ndarray | torch.Tensor | list[float]) -> float:
    """Trapezoidal area under ``curve`` sampled at ``n`` equally spaced points of [0, 1]."""
    y = np.asarray(
        curve.detach().cpu() if isinstance(curve, torch.Tensor) else curve, dtype=np.float64
    )
    if y.ndim != 1 or len(y) < 2:
        raise ValueError(f"a curve needs at least 2 points, got shape {y.shape}")
    return float((y.sum() - y[0] / 2 - y[-1] / 2) / (len(y) - 1))


def default_step(height: int, width: int, n_steps: int = 224) -> int:
    """Pixels per step giving about ``n_steps`` steps (RISE: 224 pixels at 224x224)."""
    return max(1, math.ceil(height * width / n_steps))


def blur(images: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """RISE's insertion substrate: Gaussian blur (kernel 11, sigma 5) of [C,H,W] or [N,C,H,W]."""
    return TF.gaussian_blur(images, kernel_size=[kernel_size, kernel_size], sigma=[sigma, sigma])


def upsample_saliency(saliency: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Saliency [h,w] (or [1,h,w]) -> [H,W] float, bilinear if the sizes differ."""
    s = torch.as_tensor(saliency).detach().float().cpu()
    if s.dim() == 3 and s.shape[0] == 1:
        s = s[0]
    if s.dim() != 2:
        raise ValueError(f"saliency must be [h, w], got {tuple(s.shape)}")
    if tuple(s.shape) != tuple(size):
        s = F.interpolate(s[None, None], size=tuple(size), mode="bilinear", align_corners=False)[
            0, 0
        ]
    if not torch.isfinite(s).all():
        raise ValueError("saliency contains NaN or inf")
    return s


def salient_ranks(saliency: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel ([H,W] -> [H*W] long): 0 = most salient. Ties keep raster order."""
    flat = saliency.reshape(-1)
    order = torch.sort(-flat, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(order))
    return ranks


@torch.no_grad()
def perturbation_curve(
    score_fn: ScoreFn,
    start: torch.Tensor,
    finish: torch.Tensor,
    saliency: torch.Tensor,
    step: int | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Scores of the images that replace the ``k*step`` most salient pixels of ``start`` [C,H,W]
    by those of ``finish``, for ``k = 0 .. ceil(H*W/step)`` (RISE's loop, vectorised)."""
    if start.dim() != 3 or start.shape != finish.shape:
        raise ValueError(
            "start and finish must be the same [C, H, W]; "
            f"got {tuple(start.shape)}, {tuple(finish.shape)}"
        )
    c, h, w = start.shape
    step = default_step(h, w) if step is None else int(step)
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    ranks = salient_ranks(upsample_saliency(saliency, (h, w))).to(start.device).view(1, 1, h, w)
    n_steps = math.ceil(h * w / step)
    ks = torch.arange(n_steps + 1, device=start.device)
    scores = []
    for sl in range(0, n_steps + 1, batch_size):
        k = ks[sl : sl + batch_size].view(-1, 1, 1, 1)
        mask = ranks < k * step  # [n,1,H,W]
        imgs = torch.where(mask, finish.unsqueeze(0), start.unsqueeze(0))
        out = score_fn(imgs)
        scores.append(torch.as_tensor(out).detach().float().reshape(-1).cpu())
    curve = torch.cat(scores).numpy().astype(np.float64)
    if len(curve) != n_steps + 1:
        raise ValueError(f"score_fn returned {len(curve)} scores for {n_steps + 1} images")
    return curve


def insertion(
    score_fn: ScoreFn,
    image: torch.Tensor,
    saliency: torch.Tensor,
    step: int | None = None,
    substrate: torch.Tensor | None = None,
    batch_size: int = 64,
) -> PerturbationResult:
    """Insertion game: from the blurred image, add the most salient pixels first (higher AUC =
    better)."""
    start = blur(image) if substrate is None else substrate
    curve = perturbation_curve(score_fn, start, image, saliency, step, batch_size)
    return PerturbationResult(curve, auc(curve))


def deletion(
    score_fn: ScoreFn,
    image: torch.Tensor,
    saliency: torch.Tensor,
    step: int | None = None,
    substrate: torch.Tensor | None = None,
    batch_size: int = 64,
) -> PerturbationResult:
    """Deletion game: from the image, replace the most salient pixels by zeros first (lower AUC =
    better)."""
    finish = torch.zeros_like(image) if substrate is None else substrate
    curve = perturbation_curve(score_fn, image, finish, saliency, step, batch_size)
    return PerturbationResult(curve, auc(curve))


# ------------------------------------------------------------------------------------------------
# score functions
# ------------------------------------------------------------------------------------------------


class ClassScore:
    """Softmax probability of ``target`` for a classifier taking model-input images."""

    def __init__(
        self, model: Callable[[torch.Tensor], torch.Tensor], target: int, softmax: bool = True
    ) -> None:
        self.model = model
        self.target = int(target)
        self.softmax = softmax

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(images)
        out = logits.softmax(-1) if self.softmax else logits
        return out[:, self.target].float()


class SimilarityScore:
    """Pixel Invariance's score: mean over ``references`` of cos(f(x), f(T_t(image))).

    ``model`` maps model-input images to feature vectors; ``references`` [T,C,H,W] are the ``T``
    random transformations of the evaluated image (model-input space); their features are
    computed once.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        references: torch.Tensor,
        batch_size: int = 256,
    ) -> None:
        if references.dim() != 4:
            raise ValueError(f"references must be [T, C, H, W], got {tuple(references.shape)}")
        self.model = model
        self.batch_size = batch_size
        with torch.no_grad():
            self.ref = F.normalize(self._features(references), dim=-1)  # [T,D]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        outs = [
            self.model(x[i : i + self.batch_size]).float().flatten(1)
            for i in range(0, len(x), self.batch_size)
        ]
        return torch.cat(outs)

    @torch.no_grad()
    def per_reference(self, images: torch.Tensor) -> torch.Tensor:
        """cos(f(x), f(T_t(image))) for every image and reference: [N, T]."""
        f = F.normalize(self._features(images), dim=-1)
        return f @ self.ref.T

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.per_reference(images).mean(dim=1)
