"""Average Drop and Increase in Confidence (Chattopadhyay et al., Grad-CAM++, WACV 2018, Sec. 5.1).

For each image ``i`` with score ``Y_i`` on the full image and ``O_i`` on the explanation-masked
image (the saliency min-max normalised to [0, 1], resized to the image, times the model-input
image; as in Grad-CAM++ and in Sammani et al.'s evaluation code)::

    Average Drop         = mean_i max(0, Y_i - O_i) / Y_i      (lower is better)
    Increase in Conf.    = mean_i 1[O_i > Y_i]                 (higher is better)

Grad-CAM++ reports percentages; Sammani et al. (notebook 01 / Pixel Invariance, Table I) report
fractions, as these functions do.
The score is any :data:`visxai.metrics.perturbation.ScoreFn` (class probability or Pixel
Invariance's similarity score). An image whose full-image score is <= 0 has no defined drop
(a cosine similarity can be negative): it is left out of the Average Drop (NaN per image, the mean
ignores it) and counted in ``n_undefined``. :func:`drop_per_image` and :func:`increase_per_image`
give the per-image (or per-pair) terms, which a bootstrap over images resamples. Written by hand:
these two formulas (a few lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .perturbation import ScoreFn, upsample_saliency

__all__ = [
    "ConfidenceResult",
    "masked_image",
    "average_drop_increase",
    "drop_per_image",
    "increase_per_image",
    "average_drop",
    "increase_in_confidence",
]


@dataclass
class ConfidenceResult:
    average_drop: float
    increase_in_confidence: float
    full: np.ndarray  # Y_i
    masked: np.ndarray  # O_i
    drop: np.ndarray  # per-image drop (NaN where Y_i <= 0)
    n_undefined: int


def masked_image(image: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
    """``image`` [C,H,W] times its saliency, min-max normalised to [0, 1] and resized to [H,W]."""
    s = upsample_saliency(saliency, tuple(image.shape[-2:]))
    lo, hi = s.min(), s.max()
    s = (s - lo) / (hi - lo) if float(hi - lo) > 0 else torch.zeros_like(s)
    return image * s.to(image.device, image.dtype).unsqueeze(0)


@torch.no_grad()
def average_drop_increase(
    score_fns: ScoreFn | Sequence[ScoreFn],
    images: torch.Tensor | Sequence[torch.Tensor],
    saliencies: Sequence[torch.Tensor] | torch.Tensor,
) -> ConfidenceResult:
    """Average Drop and Increase in Confidence over images (one score function per image, or one
    shared by all: Pixel Invariance's similarity score depends on the image)."""
    n = len(images)
    if len(saliencies) != n:
        raise ValueError(f"{n} images but {len(saliencies)} saliency maps")
    fns = [score_fns] * n if callable(score_fns) else list(score_fns)
    if len(fns) != n:
        raise ValueError(f"{n} images but {len(fns)} score functions")
    full, masked = np.empty(n), np.empty(n)
    for i in range(n):
        img = images[i]
        batch = torch.stack([img, masked_image(img, saliencies[i])])
        out = torch.as_tensor(fns[i](batch)).float().reshape(-1).cpu().numpy()
        full[i], masked[i] = out[0], out[1]
    valid = full > 0
    drop = np.full(n, np.nan)
    drop[valid] = np.maximum(0.0, full[valid] - masked[valid]) / full[valid]
    ad = float(np.nanmean(drop)) if valid.any() else float("nan")
    ic = float(np.mean(masked > full))
    return ConfidenceResult(ad, ic, full, masked, drop, int((~valid).sum()))


def drop_per_image(full: Sequence[float], masked: Sequence[float]) -> np.ndarray:
    """Per-image drop ``max(0, Y_i - O_i) / Y_i``; NaN where ``Y_i <= 0`` (no defined drop).

    The mean of the finite entries is the Average Drop; one value per image is what a bootstrap
    over images (or a paired comparison of two models on the same images) resamples.
    """
    y, o = np.asarray(full, float).reshape(-1), np.asarray(masked, float).reshape(-1)
    if y.shape != o.shape:
        raise ValueError(f"full and masked need one score per image, got {y.shape} and {o.shape}")
    out = np.full(y.shape, np.nan)
    ok = y > 0
    out[ok] = np.maximum(0.0, y[ok] - o[ok]) / y[ok]
    return out


def increase_per_image(full: Sequence[float], masked: Sequence[float]) -> np.ndarray:
    """Per-image indicator ``1[O_i > Y_i]`` (as float); its mean is the Increase in Confidence."""
    y, o = np.asarray(full, float).reshape(-1), np.asarray(masked, float).reshape(-1)
    if y.shape != o.shape:
        raise ValueError(f"full and masked need one score per image, got {y.shape} and {o.shape}")
    return (o > y).astype(float)


def average_drop(full: Sequence[float], masked: Sequence[float]) -> float:
    """Average Drop from given scores (Y_i, O_i); images with Y_i <= 0 are left out."""
    d = drop_per_image(full, masked)
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


def increase_in_confidence(full: Sequence[float], masked: Sequence[float]) -> float:
    """Increase in Confidence from given scores: fraction of images with O_i > Y_i."""
    return float(np.mean(increase_per_image(full, masked)))
