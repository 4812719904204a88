"""Negative perturbation test (notebook 02 / AGF: Gur et al., AAAI 2021, Table 2 and Fig. 3).

The test removes an increasing fraction of the pixels, **from the least to the most relevant**
according to an attribution map, and records the classifier's accuracy after each step. A good
explanation ranks the pixels that the class needs last, so the accuracy stays high for longer:
higher area under the curve is better.

Protocol, as in the authors' ``pertubation_eval_from_hdf5.py`` (shirgur/AGFVisualization):

* steps ``0.1, 0.2, ..., 0.9`` of the ``H*W`` pixel positions; at step ``p`` the
  ``int(p*H*W)`` positions with the lowest attribution are removed in every channel;
* removed pixels are **set to 0 before normalisation**, i.e. they become black, and the
  perturbed image is then normalised and classified (``normalize`` below);
* accuracy is always measured against the ground-truth label ``labels``; whether the map
  explains the predicted class or the ground-truth ("target") class is decided by the caller
  when it computes the attributions (the two tests of Table 2);
* the authors print the accuracy per step; the paper's AUC is the area under that curve. We add
  the unperturbed accuracy as the point at fraction 0 and integrate with the trapezoidal rule
  over the fraction axis with the accuracy in percent (``sklearn.metrics.auc``), so an AUC is at
  most 90 (an accuracy of 100% up to 90% removed).

Written by hand because no maintained library implements this particular protocol (Captum,
Quantus-style "pixel flipping" differ in order, substrate and aggregation); the AUC itself is
scikit-learn's. Ties in the ranking are broken by pixel index (stable sort), so results are
deterministic. Everything is batched: each chunk of images is expanded into its ``F`` perturbed
versions and classified in one forward pass, through :func:`visxai.device.batched_map`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import auc as _sk_auc
from torch import nn

from ..device import batched_map

__all__ = [
    "DEFAULT_FRACTIONS",
    "PerturbationCurve",
    "removal_masks",
    "perturb",
    "negative_perturbation",
    "curve_auc",
    "removed_background_share",
]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class PerturbationCurve:
    """Per-image results of one perturbation test.

    ``fractions``: ``[F+1]`` removed fractions, starting with 0 (the unperturbed image);
    ``correct``: ``[N, F+1]`` bool, whether image ``i`` is classified as its label after step ``j``;
    ``predictions``: ``[N, F+1]`` int64 predicted classes.
    """

    fractions: np.ndarray
    correct: np.ndarray
    predictions: np.ndarray

    @property
    def accuracy(self) -> np.ndarray:
        """Accuracy in percent after each step, ``[F+1]``."""
        return 100.0 * self.correct.mean(axis=0)

    @property
    def auc(self) -> float:
        """Area under the accuracy curve (percent x fraction, trapezoidal)."""
        return curve_auc(self.fractions, self.accuracy)

    @property
    def image_auc(self) -> np.ndarray:
        """Per-image AUC ``[N]``: the area under image ``i``'s 0 / 100 % correctness curve.

        The trapezoidal rule is linear in the curve, so ``image_auc.mean() == auc``: these are
        the units a bootstrap over images resamples (:func:`visxai.stats.estimate`) and the
        pairs a comparison of two methods on the same images differences
        (:func:`visxai.stats.paired_difference`).
        """
        y = 100.0 * self.correct.astype(np.float64)
        dx = np.diff(self.fractions.astype(np.float64))
        return ((y[:, 1:] + y[:, :-1]) * 0.5 * dx[None, :]).sum(axis=1)

    def __len__(self) -> int:
        return int(self.correct.shape[0])

    def subset(self, idx: slice | np.ndarray | Sequence[int]) -> PerturbationCurve:
        """The curve of a subset of the images (e.g. ``slice(0, 100)`` to compare on the same
        images)."""
        return PerturbationCurve(self.fractions.copy(), self.correct[idx], self.predictions[idx])

    @staticmethod
    def concat(curves: Sequence[PerturbationCurve]) -> PerturbationCurve:
        """Join the per-image results of several curves with the same fractions."""
        if not curves:
            raise ValueError("concat needs at least one curve")
        fr = curves[0].fractions
        for c in curves[1:]:
            if not np.allclose(c.fractions, fr):
                raise ValueError("curves with different fractions cannot be concatenated")
        return PerturbationCurve(
            fr.copy(),
            np.concatenate([c.correct for c in curves], axis=0),
            np.concatenate([c.predictions for c in curves], axis=0),
        )


def curve_auc(
    fractions: Sequence[float] | np.ndarray, accuracy: Sequence[float] | np.ndarray
) -> float:
    """Trapezoidal area under ``accuracy`` (percent) over ``fractions`` (scikit-learn's ``auc``)."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(
            f"fractions and accuracy must be 1-D of equal length >= 2, got {x.shape}, {y.shape}"
        )
    return float(_sk_auc(x, y))


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    fr = np.asarray(list(fractions), dtype=np.float64)
    if fr.ndim != 1 or len(fr) == 0:
        raise ValueError("fractions must be a non-empty 1-D sequence")
    if np.any(fr <= 0) or np.any(fr >= 1) or np.any(np.diff(fr) <= 0):
        raise ValueError(f"fractions must be strictly increasing inside (0, 1), got {fr.tolist()}")
    return fr


def _check_maps(images: torch.Tensor, attributions: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor [B,C,H,W] in [0,1] (before normalisation), got "
            f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}"
        )
    if not isinstance(attributions, torch.Tensor) or attributions.dim() != 3:
        raise ValueError(
            "attributions must be a tensor [B,H,W], got "
            f"{tuple(getattr(attributions, 'shape', ()))}"
        )
    b, _, h, w = images.shape
    if tuple(attributions.shape) != (b, h, w):
        raise ValueError(
            f"attributions {tuple(attributions.shape)} do not match images {tuple(images.shape)}: "
            f"expected {(b, h, w)} (upsample coarse maps such as Grad-CAM to the input size first)"
        )
    if not torch.isfinite(attributions).all():
        raise ValueError("attributions contain NaN or inf")


def removal_masks(
    attributions: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    most_relevant_first: bool = False,
) -> torch.Tensor:
    """Boolean masks ``[B, F, H, W]``: True where a pixel is removed at each step.

    Step ``p`` removes the ``int(p*H*W)`` lowest-attribution positions (negative perturbation);
    ``most_relevant_first=True`` gives the positive test instead. Masks are nested by construction.
    """
    fr = _check_fractions(fractions)
    if attributions.dim() != 3:
        raise ValueError(f"attributions must be [B,H,W], got {tuple(attributions.shape)}")
    b, h, w = attributions.shape
    flat = attributions.reshape(b, -1).float()
    order = torch.argsort(flat, dim=1, descending=most_relevant_first, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w, device=flat.device).expand(b, -1))
    counts = torch.tensor([int(p * h * w) for p in fr], device=flat.device)
    masks = rank[:, None, :] < counts[None, :, None]
    return masks.reshape(b, len(fr), h, w)


def perturb(
    images: torch.Tensor,
    attributions: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    fill: float = 0.0,
    most_relevant_first: bool = False,
) -> torch.Tensor:
    """The perturbed images ``[B, F, C, H, W]``: removed pixels set to ``fill`` (0 = black) in all
    channels."""
    _check_maps(images, attributions)
    masks = removal_masks(attributions.to(images.device), fractions, most_relevant_first)
    out = images[:, None].expand(-1, masks.shape[1], -1, -1, -1).clone()
    out.masked_fill_(masks[:, :, None], float(fill))
    return out


@torch.no_grad()
def negative_perturbation(
    model: nn.Module,
    images: torch.Tensor,
    attributions: torch.Tensor,
    labels: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    fill: float = 0.0,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    most_relevant_first: bool = False,
    progress: bool | str = False,
) -> PerturbationCurve:
    """Run the negative perturbation test (Table 2 / Fig. 3) and return the per-image curve.

    ``images`` are ``[N,C,H,W]`` in [0,1] **before** normalisation; ``normalize`` maps them to the
    model's input (e.g. ``LoadedModel.normalize``), applied after the removal so that removed
    pixels are black. ``labels`` ``[N]`` are the ground-truth classes accuracy is measured
    against. ``batch_size`` counts images; each forward pass sees ``batch_size * (F+1)`` inputs.
    """
    _check_maps(images, attributions)
    fr = _check_fractions(fractions)
    if images.min() < -1e-6 or images.max() > 1 + 1e-6:
        raise ValueError(
            "images must be in [0,1] before normalisation (removed pixels are set to "
            f"{fill}, i.e. black), "
            f"got range [{float(images.min()):.3f}, {float(images.max()):.3f}]; "
            "pass `normalize` separately"
        )
    labels = torch.as_tensor(labels)
    if (
        labels.dim() != 1
        or len(labels) != len(images)
        or labels.dtype not in (torch.int64, torch.int32)
    ):
        raise ValueError(
            f"labels must be an integer tensor [N={len(images)}], got {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    norm = normalize if normalize is not None else (lambda t: t)

    def chunk(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        pert = perturb(x, a, fr, fill=fill, most_relevant_first=most_relevant_first)  # [b,F,C,H,W]
        allx = torch.cat([x[:, None], pert], dim=1).flatten(0, 1)  # [b*(F+1),C,H,W]
        logits = model(norm(allx))
        return logits.argmax(dim=1).reshape(len(x), len(fr) + 1)

    was_training = model.training
    model.eval()
    try:
        preds = batched_map(
            chunk, images, attributions, batch_size=batch_size, device=dev, progress=progress
        )
    finally:
        model.train(was_training)
    preds = preds.cpu()
    correct = preds == labels.cpu().long()[:, None]
    return PerturbationCurve(np.concatenate([[0.0], fr]), correct.numpy(), preds.numpy())


def removed_background_share(
    images: torch.Tensor,
    attributions: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> np.ndarray:
    """Per image ``[N]``: the share of the pixels removed at each step that are background
    (exactly 0 in every channel of the raw image), averaged over the steps.

    A diagnostic of the negative perturbation test on black-background data (notebook 02's
    Fashion-MNIST Table 2): removing a pixel that is already 0 changes nothing, so a map that
    ranks the background lowest keeps the accuracy by construction.
    """
    _check_maps(images, attributions)
    masks = removal_masks(attributions.to(images.device), fractions)  # [B, F, H, W]
    background = (images == 0).all(dim=1)[:, None]  # [B, 1, H, W]
    removed = masks.flatten(2).sum(2).clamp_min(1)
    share = (masks & background).flatten(2).sum(2) / removed  # [B, F]
    return share.float().mean(1).cpu().numpy().astype(np.float64)
