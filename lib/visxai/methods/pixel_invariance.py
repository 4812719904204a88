"""Pixel Invariance (notebook 01; Sammani, Joukovsky, Deligiannis: "Visualizing Invariant Features
in Vision Models").

For one image ``x1`` the method builds an auxiliary set of ``B`` location-preserving augments
``x2_i`` (colour jitter p=0.8, grayscale p=0.2, random erasing p=0.5 over 2-33 % of the image),
feeds the pairs to the model, and records the cosine similarity ``s_i`` of the two outputs. The
outputs of the augments are ReLU'd and factorised with NMF into ``V`` components; their mean per
augment is a second target. A single linear layer ``W`` over the (optionally resized) pixels is
then fitted with Eq. 2::

    L_i = BCE(y_i, s_i) + alpha * (y_i - mean_v H_vi)^2 + lambda * ||W||_1,
    y_i = sigmoid(mean(W x1, W x2_i))

and ``W`` (reduced over the colour channels) is the invariance heatmap.

What comes from libraries and what is written here:

* augment parameters are drawn by torchvision's own ``ColorJitter`` / ``RandomErasing``
  ``make_params`` (so their distributions are torchvision's), under a private seeded RNG; applying
  them is vectorised here (brightness/contrast/saturation are torchvision's ``_blend`` formulas
  with a per-sample factor, hue goes through torchvision's ``_rgb_to_hsv``/``_hsv_to_rgb``),
  because torchvision applies one parameter set per call and 1000 calls per image cost more than
  the model's forward passes. ``tests/test_pixel_invariance.py`` checks equality with per-sample
  torchvision calls.
* NMF is scikit-learn's ``NMF`` (fixed ``random_state``); the surrogate is ``torch.nn.Linear``
  fitted by monotone FISTA (proximal gradient with Nesterov momentum, for the L1 term; written
  here, 40 lines: neither torch nor scikit-learn minimises a soft-label BCE + NMF term + L1) or,
  with ``schedule="paper"``, by ``torch.optim.SGD`` (full batch); the BCE is
  ``binary_cross_entropy_with_logits``; blur is torchvision's ``gaussian_blur``.

Where the authors' code (fawazsammani/explain-cl, ``methods.py``) differs from the paper, and what
this module does:

* Loss reduction. Eq. 2 is written per augment. The authors sum the BCE over the ``B`` augments,
  average the NMF term (``MSELoss``) and add the L1 norm of all parameters (bias included) once.
  The paper's alpha=2 and lambda=0.2 were chosen with that reduction (with a per-sample mean
  the L1 term dominates and the weights collapse), so ``reduction="authors"`` is the default;
  ``reduction="mean"`` averages every per-sample term of Eq. 2 (L1 once) for comparison.
* Fitting (``schedule``). The paper and the authors: 100 epochs of full-batch gradient descent
  with lr 0.1 on the summed loss (``schedule="paper"``, kept bit for bit). lr x the loss's top
  curvature is about 1e4 there (gradient descent needs < 2): the loss climbs from 347 to 1e4-1e6
  and the heatmap is the state of the oscillation at epoch 100. The default
  ``schedule="converge"`` minimises the same loss with a monotone proximal method and reports
  the final loss, proximal-gradient norm, iterations and ``converged`` (:class:`SurrogateFit`).
* Centring (``center``, off by default as in the paper and the authors' code): ``center=True``
  subtracts the mean augment from x1 and every x2_i before the fit (the bias absorbs the
  constant). Earlier versions of this project did it by default.
* Similarities ``s_i`` can be negative (cosine); BCE needs targets in [0, 1], so they are clamped
  to [0, 1] (the authors feed the raw cosine to ``BCEWithLogitsLoss``).
* Random erasing: the authors erase after ``Normalize`` with value 0, i.e. with the mean colour
  of the normalisation; here images stay in [0, 1] until the model and the erased value is the
  normalisation mean (the same pixels).
* The surrogate sees the model-input (normalised) tensors, as in the authors' code, so the sign
  of a weight depends on the sign of the normalised pixel; the heatmap is the max over channels of
  ``W`` (authors), ``heatmap_reduce="absmax"`` gives the max of ``|W|`` instead.
* The authors' notebook used a 64x64 surrogate, ``V=10`` and ``alpha=1``; defaults here are the
  paper's values (``alpha=2``, ``lambda=0.2``, ``V=1``), surrogate size 64 (the paper allows a
  resize before flattening). The surrogate weights start at zero (the authors' start at
  ``nn.Linear``'s random init; with the summed BCE the first step dwarfs it).
* Display (:attr:`InvarianceResult.display`): as the authors, trim (< 0.5) and blur (kernel 11,
  sigma 5) at the surrogate's resolution, then resize to the image; the evaluated heatmap is the
  raw one, resized.
* NMF: scikit-learn's ``fit_transform(F)`` for ``F`` (B x D) returns the (B x V) factor, which is
  the paper's ``H`` transposed; its scale is NMF's (not rescaled), as in the authors' code.
* Average Drop / Increase in Confidence (:func:`evaluate`) are computed per (image,
  transformation) pair and averaged per image (the authors average the 10 cosines into one score
  per image first; the paper's IC of 0.004 is only possible per pair). A pair whose full-image
  cosine is <= 0 has no defined drop: it is left out of the image's drop and counted
  (``n_undefined_drop``); it still counts in the increase.

Table I with its controls (:func:`invariance_table`): per-image metrics for every model, photo
and seed, the same protocol with a random map and on randomised copies of the models (Adebayo et
al. 2018); :func:`per_image` and :func:`claim_difference` (a paired bootstrap over images,
:func:`visxai.stats.paired_difference`) turn them into Table I entries and claims. Notebook 01's
case, run and report (Table I with CIs, the verdicts, the scorecard rows) are in
:mod:`visxai.evaluation.pixel_invariance`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from ..device import autocast, batched_map, pick_device
from ..layers import Normalizer
from ..transforms import AugmentConfig, AugmentParams, InvarianceAugment, check_unit_image

if TYPE_CHECKING:
    import pandas as pd

    from ..metrics.perturbation import SimilarityScore

__all__ = [
    "SurrogateConfig",
    "SurrogateFit",
    "fit_surrogate",
    "InvarianceData",
    "InvarianceResult",
    "PixelInvariance",
    "extract_features",
    "cosine_similarities",
    "nmf_targets",
    "surrogate_loss",
    "train_surrogate",
    "weights_to_heatmap",
    "display_heatmap",
    "without_head",
    "similarity_score",
    "evaluate",
    "TABLE1_METRICS",
    "ModelEntry",
    "invariance_table",
    "per_image",
    "claim_difference",
]

# ------------------------------------------------------------------------------------------------
# features, similarities, NMF
# ------------------------------------------------------------------------------------------------


class Headless(nn.Module):
    """``inner`` run with its layer ``attr`` swapped for ``Identity`` (see :func:`without_head`);
    a module-level class so that it pickles into :func:`visxai.device.process_map`'s workers."""

    def __init__(self, inner: nn.Module, attr: str) -> None:
        super().__init__()
        self.inner = inner
        self.attr = attr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = getattr(self.inner, self.attr)
        setattr(self.inner, self.attr, nn.Identity())
        try:
            return self.inner(x)
        finally:
            setattr(self.inner, self.attr, saved)


def without_head(model: nn.Module, attr: str = "_fc") -> nn.Module:
    """``model`` with its classification layer ``attr`` replaced by ``Identity`` (penultimate
    features).

    The original model is not modified (its other modules are shared, not copied).
    """
    if not hasattr(model, attr):
        raise ValueError(f"{type(model).__name__} has no attribute {attr!r} to remove")
    return Headless(model, attr).eval()


@torch.no_grad()
def extract_features(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    channels_last: bool = True,
    amp: bool = False,
) -> torch.Tensor:
    """Model outputs for ``images`` [N,C,H,W] (model-input space), flattened to [N, D], on the CPU.

    Batched with :func:`visxai.device.batched_map` (halves the batch on out-of-memory).
    """
    dev = torch.device(device) if device is not None else images.device

    def fn(x: torch.Tensor) -> torch.Tensor:
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(dev, enabled=amp):
            out = model(x)
        if isinstance(out, tuple | list):
            out = out[0]
        return out.float().flatten(1)

    return batched_map(fn, images, batch_size=batch_size, device=dev)


def cosine_similarities(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each row of ``f2`` [B,D] with ``f1`` ([D] or [B,D]) -> [B]."""
    if f1.dim() == 1:
        f1 = f1.unsqueeze(0)
    return F.cosine_similarity(f1.float(), f2.float(), dim=-1, eps=1e-8)


def nmf_targets(
    features: torch.Tensor, n_components: int = 1, random_state: int = 0, max_iter: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """NMF of ReLU(features) [B,D] (Sec. III): returns (H^T [B,V], its mean over components [B]).

    scikit-learn's ``NMF.fit_transform`` factorises ``F ~ A @ M`` with ``A`` [B,V]: ``A`` is the
    paper's ``H`` transposed, and ``(1/V) sum_v H_vi`` is ``A.mean(1)``.
    """
    from sklearn.decomposition import NMF

    if features.dim() != 2:
        raise ValueError(f"features must be [B, D], got {tuple(features.shape)}")
    b, d = features.shape
    if not 1 <= n_components <= min(b, d):
        raise ValueError(
            f"n_components V must be in [1, min(B, D)] = [1, {min(b, d)}], got {n_components}"
        )
    x = F.relu(features.detach().float()).cpu().double().numpy()
    if not np.any(x > 0):
        raise ValueError("all ReLU'd features are zero: NMF has nothing to factorise")
    nmf = NMF(
        n_components=n_components, init="random", random_state=random_state, max_iter=max_iter
    )
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = nmf.fit_transform(x)
    a_t = torch.from_numpy(a).float()
    return a_t, a_t.mean(dim=1)


# ------------------------------------------------------------------------------------------------
# the surrogate (Eq. 2)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurrogateConfig:
    """Hyper-parameters of Eq. 2 (paper: alpha=2, lambda=0.2) and how the surrogate is fitted.

    ``schedule="converge"`` (default): proximal gradient descent with a backtracking step (see
    :func:`fit_surrogate`), at most ``max_iter`` iterations, stopped when the relative loss change
    of an iteration is <= ``ftol`` or the proximal-gradient norm has fallen to ``gtol`` times its
    first value. ``schedule="paper"``: the paper's / authors' schedule, ``epochs`` of full-batch
    gradient descent with step ``lr`` (100 epochs, lr 0.1).
    """

    alpha: float = 2.0
    lam: float = 0.2
    epochs: int = 100
    lr: float = 0.1
    reduction: str = "authors"  # "authors" (sum BCE, mean NMF term, L1 once) or "mean"
    clamp_similarity: bool = True
    center: bool = False  # subtract the mean augment from x1 and x2 (not in the paper)
    schedule: str = "converge"  # "converge" (proximal gradient, backtracking) or "paper"
    max_iter: int = 100
    ftol: float = 1e-5
    gtol: float = 1e-3

    def __post_init__(self) -> None:
        if self.reduction not in ("authors", "mean"):
            raise ValueError(f"reduction must be 'authors' or 'mean', got {self.reduction!r}")
        if self.schedule not in ("converge", "paper"):
            raise ValueError(f"schedule must be 'converge' or 'paper', got {self.schedule!r}")
        if (
            self.epochs < 0
            or self.lr <= 0
            or self.alpha < 0
            or self.lam < 0
            or self.max_iter < 1
            or self.ftol < 0
            or self.gtol < 0
        ):
            raise ValueError(f"invalid surrogate config {self}")


@dataclass
class SurrogateFit:
    """The fitted surrogate of Eq. 2 and how the fit ended.

    ``loss``: the final total loss; ``grad_norm``: the final proximal-gradient norm
    ``||w - prox(w - t grad)|| / t`` (zero exactly at a minimum of the L1-regularised loss; for
    ``schedule="paper"`` the norm of the last gradient step's gradient); ``iterations``: epochs or
    iterations run; ``converged``: the stopping test was met (always False for the paper's
    schedule, which has none); ``history``: the loss terms per iteration.
    """

    weight: torch.Tensor  # [P]
    bias: torch.Tensor  # []
    history: list[dict[str, float]]
    loss: float
    grad_norm: float
    iterations: int
    converged: bool
    schedule: str


def surrogate_loss(
    logits: torch.Tensor,
    similarity: torch.Tensor,
    nmf_target: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    config: SurrogateConfig,
) -> dict[str, torch.Tensor]:
    """The three terms of Eq. 2 and their total, for logits ``(W x1 + W x2_i)/2 + b`` [B].

    ``bce``: binary cross-entropy of sigmoid(logits) against s_i (summed over i for
    ``reduction="authors"``, averaged for ``"mean"``); ``nmf``: alpha * mean_i (y_i - target_i)^2;
    ``l1``: lambda * (||W||_1 + |b|).
    """
    s = similarity.clamp(0.0, 1.0) if config.clamp_similarity else similarity
    bce = F.binary_cross_entropy_with_logits(
        logits, s, reduction="sum" if config.reduction == "authors" else "mean"
    )
    nmf = config.alpha * (torch.sigmoid(logits) - nmf_target).pow(2).mean()
    l1 = weight.abs().sum() + (bias.abs().sum() if bias is not None else 0.0)
    l1 = config.lam * l1
    return {"bce": bce, "nmf": nmf, "l1": l1, "total": bce + nmf + l1}


def _check_surrogate_inputs(
    x1: torch.Tensor, x2: torch.Tensor, similarity: torch.Tensor, nmf_target: torch.Tensor
) -> None:
    if x2.dim() != 2 or x1.dim() != 1 or x1.shape[0] != x2.shape[1]:
        raise ValueError(
            f"x1 must be [P] and x2 [B, P]; got {tuple(x1.shape)} and {tuple(x2.shape)}"
        )
    b = x2.shape[0]
    if similarity.shape != (b,) or nmf_target.shape != (b,):
        raise ValueError(
            f"similarity and nmf_target must be [{b}], "
            f"got {tuple(similarity.shape)}, {tuple(nmf_target.shape)}"
        )


def fit_surrogate(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similarity: torch.Tensor,
    nmf_target: torch.Tensor,
    config: SurrogateConfig | None = None,
) -> SurrogateFit:
    """Fit the linear surrogate of Eq. 2 (``x1`` [P], ``x2`` [B,P], ``similarity`` and
    ``nmf_target`` [B]); weights and bias start at zero, the batch is the full set.

    ``config.schedule="paper"``: ``epochs`` steps of ``torch.optim.SGD`` with step ``lr`` on the
    loss (the authors' code). With the summed BCE, lr x the loss's top curvature is far above 2
    (about 1e4 on notebook 01's problems), so these steps do not converge: the loss climbs from
    ``B log 2`` to 1e4-1e6 and the heatmap is the state of the oscillation at the last epoch.

    ``config.schedule="converge"`` (default): the same loss (same reduction, alpha, lambda, so the
    paper's alpha and lambda keep their meaning) minimised by monotone FISTA (Beck & Teboulle
    2009): a gradient step on the smooth BCE + NMF terms from the extrapolated point, then
    soft-thresholding for the L1 term (exact for the non-smooth L1, where L-BFGS stalls), and the
    better of that candidate and the last iterate, so the loss never increases. The step starts
    at 1 / (a bound of the top curvature: (1/4 + alpha/(2B)) ||[X, 1]||^2, by power iteration,
    for the summed BCE) and is halved until the sufficient-decrease test holds. It stops at
    ``max_iter`` or when the relative loss change of an iteration is <= ``ftol`` or the
    proximal-gradient norm <= ``gtol`` x its first value (``converged=True``).

    Why this default: it minimises the paper's objective and reports how far it got, where the
    paper's schedule diverges. Cost per iteration ~ one SGD epoch (float32). On notebook 01's
    problems (P = 3 x 32 x 32 > B = 500) the L1-regularised loss has a long flat valley: after
    the default 100 iterations the loss is about 300 (from B log 2 = 347; about 257 after 3000)
    and ``converged`` is False; the fit says so rather than hiding it.
    """
    config = config or SurrogateConfig()
    _check_surrogate_inputs(x1, x2, similarity, nmf_target)
    if config.schedule == "paper":
        return _fit_paper(x1, x2, similarity, nmf_target, config)
    return _fit_proximal(x1, x2, similarity, nmf_target, config)


def _fit_paper(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similarity: torch.Tensor,
    nmf_target: torch.Tensor,
    config: SurrogateConfig,
) -> SurrogateFit:
    dev = x2.device
    layer = nn.Linear(x2.shape[1], 1).to(dev)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
    opt = torch.optim.SGD(layer.parameters(), lr=config.lr)
    s = similarity.to(dev).float()
    t = nmf_target.to(dev).float()
    x1 = x1.to(dev).float()
    if config.center:
        mu = x2.mean(dim=0)
        x2 = x2 - mu
        x1 = x1 - mu
    history: list[dict[str, float]] = []
    grad_norm = float("nan")
    with torch.enable_grad():
        for _ in range(config.epochs):
            # (W x1 + b + W x2_i + b) / 2, the mean of the two surrogate outputs
            logits = 0.5 * (x2 @ layer.weight[0] + x1 @ layer.weight[0]) + layer.bias[0]
            terms = surrogate_loss(logits, s, t, layer.weight, layer.bias, config)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            grad_norm = float(
                torch.sqrt(layer.weight.grad.double().pow(2).sum() + layer.bias.grad.double() ** 2)
            )
            opt.step()
            history.append({k: float(v.detach()) for k, v in terms.items()})
    return SurrogateFit(
        weight=layer.weight.detach()[0].clone(),
        bias=layer.bias.detach()[0].clone(),
        history=history,
        loss=history[-1]["total"] if history else float("nan"),
        grad_norm=grad_norm,
        iterations=config.epochs,
        converged=False,
        schedule="paper",
    )


def _fit_proximal(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similarity: torch.Tensor,
    nmf_target: torch.Tensor,
    config: SurrogateConfig,
) -> SurrogateFit:
    dev = x2.device
    dt = torch.float32
    x1, x2 = x1.to(dev, dt), x2.to(dev, dt)
    if config.center:
        mu = x2.mean(dim=0)
        x2, x1 = x2 - mu, x1 - mu
    xbar = 0.5 * (x2 + x1)  # logits = xbar @ w + b
    n_b, n_p = xbar.shape
    s = similarity.to(dev, dt)
    t = nmf_target.to(dev, dt)
    s_c = s.clamp(0.0, 1.0) if config.clamp_similarity else s
    mean_bce = config.reduction == "mean"
    lam = config.lam

    def smooth(p: torch.Tensor) -> tuple[float, torch.Tensor, dict[str, float]]:
        """Smooth part (BCE + NMF term) at p = [w, b], its gradient, and the loss terms."""
        z = xbar @ p[:-1] + p[-1]
        sig = torch.sigmoid(z)
        bce = F.binary_cross_entropy_with_logits(z, s_c, reduction="mean" if mean_bce else "sum")
        r = sig - t
        nmf = config.alpha * r.pow(2).mean()
        gz = (sig - s_c) / (n_b if mean_bce else 1.0)
        gz = gz + config.alpha * 2.0 / n_b * r * sig * (1.0 - sig)
        l1 = lam * float(p.abs().sum())
        terms = {"bce": float(bce), "nmf": float(nmf), "l1": l1}
        terms["total"] = terms["bce"] + terms["nmf"] + l1
        return float(bce + nmf), torch.cat([xbar.T @ gz, gz.sum()[None]]), terms

    def prox(v: torch.Tensor, th: float) -> torch.Tensor:
        return torch.sign(v) * torch.clamp(v.abs() - th, min=0.0)

    # first step: 1 / (bound of the top curvature), ||[xbar, 1]||^2 by power iteration
    v = torch.ones(n_p + 1, dtype=dt, device=dev)
    for _ in range(20):
        u = xbar @ v[:-1] + v[-1]
        v = torch.cat([xbar.T @ u, u.sum()[None]])
        v = v / v.norm().clamp_min(1e-300)
    top = float((xbar @ v[:-1] + v[-1]).norm()) ** 2
    curv = (0.25 / (n_b if mean_bce else 1.0) + config.alpha * 2.0 / n_b * 0.25) * top
    step = 1.0 / max(curv, 1e-12)

    # monotone FISTA (Beck & Teboulle 2009, MFISTA): the accelerated step from y, then the
    # better of the candidate and the last iterate, so the loss never increases
    x = torch.zeros(n_p + 1, dtype=dt, device=dev)
    fx, gx, tx = smooth(x)
    y, fy, gy = x, fx, gx
    mom = 1.0
    history: list[dict[str, float]] = []
    g0 = grad_norm = float("nan")
    converged = False
    it = 0
    for it in range(1, config.max_iter + 1):
        while True:
            z = prox(y - step * gy, step * lam)
            d = z - y
            fz, gz_, tz = smooth(z)
            sq = float(d.pow(2).sum())
            if fz <= fy + float((gy * d).sum()) + sq / (2.0 * step) or step < 1e-300:
                break
            step *= 0.5
        grad_norm = math.sqrt(sq) / step
        g0 = grad_norm if it == 1 else g0
        old = tx["total"]
        x_prev = x
        if tz["total"] <= old:
            x, fx, gx, tx = z, fz, gz_, tz
        mom_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * mom * mom))
        y = x + (mom / mom_next) * (z - x) + ((mom - 1.0) / mom_next) * (x - x_prev)
        mom = mom_next
        fy, gy, _ = smooth(y)
        history.append(dict(tx))
        change = abs(old - tz["total"]) / max(1.0, abs(old))
        if change <= config.ftol or grad_norm <= config.gtol * g0:
            converged = True
            break
    return SurrogateFit(
        weight=x[:-1].float(),
        bias=x[-1].float(),
        history=history,
        loss=tx["total"],
        grad_norm=grad_norm,
        iterations=it,
        converged=converged,
        schedule="converge",
    )


def train_surrogate(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similarity: torch.Tensor,
    nmf_target: torch.Tensor,
    config: SurrogateConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, float]]]:
    """:func:`fit_surrogate` as (weight [P], bias [], per-iteration loss terms)."""
    fit = fit_surrogate(x1, x2, similarity, nmf_target, config)
    return fit.weight, fit.bias, fit.history


# ------------------------------------------------------------------------------------------------
# heatmaps
# ------------------------------------------------------------------------------------------------


def weights_to_heatmap(
    weight: torch.Tensor,
    size: int | tuple[int, int],
    out_size: tuple[int, int] | None = None,
    reduce: str = "max",
) -> torch.Tensor:
    """Surrogate weights [3*h*w] -> heatmap [H,W] in [0,1] (min-max normalised).

    ``reduce="max"``: max over channels of W (the authors' code); ``"absmax"``: max of |W|.
    ``out_size`` bilinearly resizes to the image size (before the min-max normalisation).
    """
    h, w = (size, size) if isinstance(size, int) else size
    if weight.numel() != 3 * h * w:
        raise ValueError(f"weight has {weight.numel()} entries, expected 3*{h}*{w}")
    wmap = weight.detach().float().reshape(3, h, w)
    if reduce == "max":
        hm = wmap.max(dim=0).values
    elif reduce == "absmax":
        hm = wmap.abs().max(dim=0).values
    else:
        raise ValueError(f"reduce must be 'max' or 'absmax', got {reduce!r}")
    if out_size is not None and tuple(out_size) != (h, w):
        hm = F.interpolate(
            hm[None, None], size=tuple(out_size), mode="bilinear", align_corners=False
        )[0, 0]
    return _minmax(hm)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    if float(hi - lo) <= 0:
        return torch.zeros_like(x)
    return (x - lo) / (hi - lo)


def display_heatmap(
    heatmap: torch.Tensor, trim: float = 0.5, kernel_size: int = 11, sigma: float = 5.0
) -> torch.Tensor:
    """The paper's display post-processing (not used for evaluation): values < ``trim`` set to 0,
    then a Gaussian blur (kernel 11, sigma 5, as in the authors' code; on a map smaller than 6 px
    the kernel is cut to 2 min(H, W) - 1, what reflect padding allows)."""
    hm = _minmax(heatmap.detach().float())
    hm = torch.where(hm < trim, torch.zeros_like(hm), hm)
    k = min(int(kernel_size), 2 * min(hm.shape[-2:]) - 1)
    if k > 1 and sigma > 0:
        hm = TF.gaussian_blur(hm[None], kernel_size=[k, k], sigma=[sigma, sigma])[0]
    return hm


# ------------------------------------------------------------------------------------------------
# the method
# ------------------------------------------------------------------------------------------------


@dataclass
class InvarianceData:
    """Everything the surrogate needs for one image (features cached so that V, alpha, lambda can
    be changed without new forward passes)."""

    image: torch.Tensor  # [3,H,W] in [0,1]
    x1: torch.Tensor  # [P] flattened, normalised, resized reference image
    x2: torch.Tensor  # [B,P] flattened augments
    similarity: torch.Tensor  # [B] raw cosine similarities s_i
    features: torch.Tensor  # [B,D] model outputs of the augments (before ReLU)
    size: tuple[int, int]  # surrogate resolution (h, w)


@dataclass
class InvarianceResult:
    heatmap: torch.Tensor  # [H,W] in [0,1], image resolution (used for evaluation)
    weight: torch.Tensor  # [3*h*w]
    bias: torch.Tensor
    nmf_target: torch.Tensor  # [B]
    history: list[dict[str, float]] = field(default_factory=list)
    fit: SurrogateFit | None = None  # how the surrogate fit ended (loss, converged, ...)
    size: tuple[int, int] | None = None  # surrogate resolution (h, w)
    reduce: str = "max"

    @property
    def display(self) -> torch.Tensor:
        """The trimmed and blurred heatmap of the paper's figures, in the authors' order: trim and
        blur at the surrogate's resolution, then resize to the image (bilinear)."""
        if self.size is None or tuple(self.size) == tuple(self.heatmap.shape):
            return display_heatmap(self.heatmap)
        hm = display_heatmap(weights_to_heatmap(self.weight, self.size, reduce=self.reduce))
        return F.interpolate(
            hm[None, None], size=tuple(self.heatmap.shape), mode="bilinear", align_corners=False
        )[0, 0]


class PixelInvariance:
    """Pixel Invariance for any ``model`` mapping a batch of normalised images to feature vectors.

    ``mean``/``std``: the model's input normalisation (images are given in [0, 1]). For the
    self-supervised models the features are the projection-head outputs (Sec. III); for a
    classifier use e.g. its penultimate layer (:func:`without_head`).

    The constructor takes the whole parameter set (the hyper-parameters of Eq. 2, the augments,
    the seed); the calls take only the data: ``pi(image)``, ``pi.prepare(image)`` then
    ``pi.fit(data)``. :meth:`replace` gives a copy with some parameters changed (another model,
    seed or alpha: notebook 01 builds one object from its parameters cell and derives the others).
    ``schedule``, ``max_iter``, ``center``: how the surrogate is fitted (:class:`SurrogateConfig`;
    ``epochs`` and ``lr`` apply to ``schedule="paper"`` only); :attr:`InvarianceResult.fit` says
    how the fit ended. ``erase_value``: the colour of random erasing in [0, 1] (None: ``mean``,
    the mean colour, as the authors' ``RandomErasing(value=0)`` after ``Normalize``; a model that
    normalises inside passes its own normalisation mean here).
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        n_augments: int = 1000,
        alpha: float = 2.0,
        lam: float = 0.2,
        n_components: int = 1,
        epochs: int = 100,
        lr: float = 0.1,
        surrogate_size: int | None = 64,
        heatmap_reduce: str = "max",
        reduction: str = "authors",
        center: bool = False,
        schedule: str = "converge",
        max_iter: int = 100,
        augment: AugmentConfig | None = None,
        erase_value: Sequence[float] | None = None,
        batch_size: int = 256,
        device: str | torch.device = "auto",
        amp: bool = False,
        seed: int = 0,
    ) -> None:
        if n_augments < 2:
            raise ValueError(f"n_augments (B) must be >= 2, got {n_augments}")
        #: the constructor's arguments, for :meth:`replace`
        self.params: dict[str, object] = dict(
            model=model,
            mean=mean,
            std=std,
            n_augments=n_augments,
            alpha=alpha,
            lam=lam,
            n_components=n_components,
            epochs=epochs,
            lr=lr,
            surrogate_size=surrogate_size,
            heatmap_reduce=heatmap_reduce,
            reduction=reduction,
            center=center,
            schedule=schedule,
            max_iter=max_iter,
            augment=augment,
            erase_value=erase_value,
            batch_size=batch_size,
            device=device,
            amp=amp,
            seed=seed,
        )
        self.model = model
        self._forward_model: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self._normalizer = Normalizer(mean, std)
        self.n_augments = int(n_augments)
        self.n_components = int(n_components)
        self.surrogate = SurrogateConfig(
            alpha=alpha,
            lam=lam,
            epochs=epochs,
            lr=lr,
            reduction=reduction,
            center=center,
            schedule=schedule,
            max_iter=max_iter,
        )
        self.surrogate_size = surrogate_size
        self.heatmap_reduce = heatmap_reduce
        # the authors erase after Normalize with value 0, i.e. with the normalisation's mean colour;
        # a model that normalises inside (mean 0 here) needs its own mean colour as erase_value
        erase = mean if erase_value is None else erase_value
        self.augment = InvarianceAugment(augment, erase_value=tuple(float(m) for m in erase))
        self.batch_size = batch_size
        self.device = pick_device(device)
        self.amp = amp
        self.seed = int(seed)

    def replace(self, **changes: object) -> PixelInvariance:
        """A new :class:`PixelInvariance` with the same parameters except ``changes``.

        ``changes`` are constructor arguments (``model``, ``mean``, ``std``, ``seed``, ``alpha``,
        ...); an unknown name raises ``TypeError``. The original object is not modified.
        """
        unknown = sorted(set(changes) - set(self.params))
        if unknown:
            raise TypeError(
                f"unknown PixelInvariance parameter(s) {unknown}; known: {list(self.params)}"
            )
        return PixelInvariance(**{**self.params, **changes})  # type: ignore[arg-type]

    # -- steps -------------------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return self._normalizer(x)

    def augments(
        self, image: torch.Tensor, n: int | None = None, seed: int | None = None
    ) -> torch.Tensor:
        """The augmented set ``{x2_i}`` [B,3,H,W] in [0,1] (seeded)."""
        n = self.n_augments if n is None else n
        return self.augment(image.to(self.device), n, self.seed if seed is None else seed)

    @property
    def forward_model(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model as the forward passes run it: for an ``nn.Module``, a frozen copy with its
        batch norms folded into the convolutions (:func:`visxai.models.inference.inference_copy`:
        the same function up to float rounding, fewer passes over memory); made on first use."""
        if self._forward_model is None:
            from ..models.inference import inference_copy

            m = self.model
            self._forward_model = inference_copy(m) if isinstance(m, nn.Module) else m
        return self._forward_model

    def features(self, images01: torch.Tensor) -> torch.Tensor:
        """Model outputs [N,D] for images in [0,1] (normalised on the device, batched)."""
        return extract_features(
            lambda x: self.forward_model(self.normalize(x)),
            images01,
            batch_size=self.batch_size,
            device=self.device,
            amp=self.amp,
        )

    def prepare(self, image: torch.Tensor, augments: torch.Tensor | None = None) -> InvarianceData:
        """Augment, run the model on (x1, x2_i), and flatten the surrogate inputs."""
        check_unit_image(image)
        image = image.float()
        x2 = self.augments(image) if augments is None else augments.to(self.device)
        if x2.dim() != 4 or x2.shape[1:] != image.shape:
            raise ValueError(f"augments must be [B, {tuple(image.shape)}], got {tuple(x2.shape)}")
        f1 = self.features(image[None].to(self.device))[0]
        f2 = self.features(x2)
        sim = cosine_similarities(f1, f2)
        h, w = image.shape[-2:]
        size = (h, w) if self.surrogate_size is None else (self.surrogate_size, self.surrogate_size)
        x1s = self._surrogate_input(image[None].to(self.device), size)[0]
        x2s = torch.cat([self._surrogate_input(x2[sl], size) for sl in _chunks(len(x2), 256)])
        return InvarianceData(
            image=image.cpu(), x1=x1s, x2=x2s, similarity=sim, features=f2, size=size
        )

    def _surrogate_input(self, x01: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.normalize(x01)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return x.flatten(1)

    def fit(self, data: InvarianceData) -> InvarianceResult:
        """NMF targets + surrogate training (Eq. 2) + heatmap, with this object's parameters.

        To try other values of alpha, lambda or V on the same data (no new forward passes), fit
        with a copy: ``pi.replace(alpha=1.0, n_components=3).fit(data)``.
        """
        cfg = self.surrogate
        _, target = nmf_targets(data.features, self.n_components, random_state=self.seed)
        fit = fit_surrogate(data.x1, data.x2, data.similarity, target.to(data.x2.device), cfg)
        heatmap = weights_to_heatmap(
            fit.weight.cpu(), data.size, tuple(data.image.shape[-2:]), reduce=self.heatmap_reduce
        )
        return InvarianceResult(
            heatmap=heatmap,
            weight=fit.weight.cpu(),
            bias=fit.bias.cpu(),
            nmf_target=target,
            history=fit.history,
            fit=fit,
            size=tuple(data.size),
            reduce=self.heatmap_reduce,
        )

    def explain(
        self, image: torch.Tensor, augments: torch.Tensor | None = None
    ) -> InvarianceResult:
        """Heatmap of pixel invariance for ``image`` [3,H,W] in [0,1]."""
        return self.fit(self.prepare(image, augments))

    __call__ = explain


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# ------------------------------------------------------------------------------------------------
# evaluation on the similarity score (Sec. IV-B)
# ------------------------------------------------------------------------------------------------


def similarity_score(
    explainer: PixelInvariance, image: torch.Tensor, n_transforms: int = 10, seed: int = 12345
) -> "SimilarityScore":
    """The paper's evaluation score for ``image`` [3,H,W] in [0,1]: cosine similarity between the
    (perturbed) evaluated image and each of ``n_transforms`` random transformations of it (the
    same augmentation family, another seed), averaged. Works on model-input (normalised) images."""
    from ..metrics.perturbation import SimilarityScore

    refs = explainer.augments(image, n=n_transforms, seed=seed)
    model = explainer.forward_model
    return SimilarityScore(
        model, explainer.normalize(refs).to(explainer.device), batch_size=explainer.batch_size
    )


def evaluate(
    explainer: PixelInvariance,
    image: torch.Tensor,
    heatmap: torch.Tensor,
    n_transforms: int = 10,
    step: int | None = None,
    seed: int = 12345,
    score: "SimilarityScore | None" = None,
) -> dict[str, object]:
    """Insertion / Deletion AUCs, the (full, masked) scores and the per-image drop and increase
    (Average Drop / Increase in Confidence before the mean over images) of one heatmap, all on
    the similarity score (Table I protocol).

    ``full`` / ``masked`` are the scores averaged over the ``T`` transformations (the score of
    Insertion / Deletion). The drop and the increase are computed per (image, transformation)
    pair, ``max(0, Y_t - O_t) / Y_t`` and ``1[O_t > Y_t]`` with ``Y_t`` / ``O_t`` the cosine
    similarity of the full / masked image to transformation ``t``, then averaged over the pairs of
    the image: the paper's Increase in Confidence of 0.004 over 100 images is only possible per
    pair, and a per-pair fraction moves in steps of 1/T where a per-image indicator jumps by 1.
    Pairs with ``Y_t <= 0`` have no defined drop and are left out of ``drop`` (counted in
    ``n_undefined_drop``; ``drop`` is NaN when every pair is undefined); they still count in
    ``increase``. A negative ``O_t`` is clamped to 0 in the drop (a drop is at most 1, as with
    Grad-CAM++'s probabilities).

    ``score``: a :func:`similarity_score` of this image to reuse (e.g. to evaluate a random map on
    the same transformations); by default one is drawn with ``n_transforms`` and ``seed``.
    """
    from ..metrics.confidence import drop_per_image, increase_per_image, masked_image
    from ..metrics.perturbation import deletion, insertion

    score = similarity_score(explainer, image, n_transforms, seed) if score is None else score
    x = explainer.normalize(image.float().to(explainer.device))
    ins = insertion(score, x, heatmap, step=step, batch_size=explainer.batch_size)
    dele = deletion(score, x, heatmap, step=step, batch_size=explainer.batch_size)
    with torch.no_grad():
        pairs = (
            score.per_reference(torch.stack([x, masked_image(x, heatmap)])).cpu().double().numpy()
        )  # [2, T]
    # a cosine can be negative: the masked score is clamped at 0 (as the similarities are for the
    # BCE), so that a drop is at most 1 as with the class probabilities of Grad-CAM++
    drops = drop_per_image(pairs[0], np.maximum(pairs[1], 0.0))
    return {
        "insertion": ins.auc,
        "deletion": dele.auc,
        "insertion_curve": ins.curve,
        "deletion_curve": dele.curve,
        "full": float(pairs[0].mean()),
        "masked": float(pairs[1].mean()),
        "drop": float(np.nanmean(drops)) if np.isfinite(drops).any() else float("nan"),
        "increase": float(increase_per_image(pairs[0], pairs[1]).mean()),
        "n_undefined_drop": int((~np.isfinite(drops)).sum()),
    }


# ------------------------------------------------------------------------------------------------
# Table I with its controls, over images and seeds
# ------------------------------------------------------------------------------------------------

#: Table I's metrics, per-image column names, and whether higher is better
TABLE1_METRICS = {
    "Insertion": ("insertion", True),
    "Deletion": ("deletion", False),
    "Avg. Drop": ("drop", False),
    "Inc. Conf.": ("increase", True),
}


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a.reshape(-1).numpy(), b.reshape(-1).numpy()).statistic
    return float(r) if np.isfinite(r) else float("nan")


#: a row of Table I: (feature model, normalisation mean, normalisation std)
ModelEntry = tuple[Callable[[torch.Tensor], torch.Tensor], Sequence[float], Sequence[float]]


def invariance_table(
    explainer: PixelInvariance,
    models: dict[str, ModelEntry],
    images: dict[str, torch.Tensor],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    n_transforms: int = 10,
    controls: bool = True,
    keep_images: Collection[str] | None = None,
    keep_seeds: Collection[int] | None = None,
    progress: bool = True,
    step: int | None = None,
    randomised_images: Collection[str] | None = None,
    workers: int = 1,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str, int], InvarianceResult]]:
    """Table I's per-image metrics of every model, image and seed, with both controls (notebook 01).

    ``explainer``: the Pixel Invariance parameters (B, alpha, lambda, V, surrogate size, device);
    every model of ``models`` (row name -> (model, mean, std)) is explained with
    ``explainer.replace(model=model, mean=mean, std=std, seed=s)``; ``images``: name -> [3,H,W]
    in [0,1]. For every seed ``s`` the seed enters the augments (also NMF's init) and the
    evaluation's transformations (``seed=s + 1000``). With ``controls`` the same run also scores

    * a random map (:func:`visxai.controls.random_saliency`, seed ``10000 s + image index``) on
      the same transformations as the heatmap (``saliency="random map"``), and
    * the model-randomisation check (Adebayo et al. 2018): the same protocol on
      :func:`visxai.controls.randomized_model` ``(model, seed=s)`` (``weights="randomised"``),
      with the random map too and the Spearman correlation of its heatmap with the trained one;
      on the images of ``randomised_images`` only (None: all).

    The augments of one image and seed are drawn once and shared by the models with the same
    normalisation mean (the erased colour). ``step``: pixels per Insertion / Deletion step (None:
    RISE's, about 224 steps). ``workers > 1`` deals the images round-robin to that many CPU
    processes (:func:`visxai.device.process_map`); the frame is the same, in the same order.
    Returns ``(frame, heatmaps)``: a long ``pandas.DataFrame`` with one row per (model, weights,
    saliency, image, seed) and columns ``insertion, deletion, full, masked, drop, increase,
    insertion_curve, deletion_curve, rank_corr`` (Spearman correlation of the trained and the
    randomised heatmap of the image, on every row of that model, image and seed), and a dict
    ``(model, weights, image, seed) -> InvarianceResult`` for the images in ``keep_images`` and
    the seeds in ``keep_seeds`` (None: all).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ..device import deal, process_map

    names = list(images)
    seeds = [int(s) for s in seeds]
    job = dict(
        explainer=explainer, models=models, seeds=seeds, n_transforms=n_transforms,
        controls=controls, keep_images=keep_images, keep_seeds=keep_seeds, step=step,
        randomised_images=randomised_images,
    )  # fmt: skip
    total = len(seeds) * len(models) * len(names)
    bar = tqdm(total=total, desc="Table I", disable=not progress, leave=False)
    w = max(1, min(int(workers), len(names))) if explainer.device.type == "cpu" else 1
    parts = [(job, {names[j]: images[names[j]] for j in idx}, idx) for idx in deal(len(names), w)]
    if w == 1:
        outs = [_invariance_part(*parts[0], bar=bar)]
    else:
        outs = process_map(_invariance_worker, parts, w, progress=bar)
    bar.close()
    records = [r for recs, _ in outs for r in recs]
    heatmaps = {k: v for _, maps in outs for k, v in maps.items()}
    rows, index = list(models), {n: k for k, n in enumerate(names)}
    order = {"trained": 0, "randomised": 1, "heatmap": 0, "random map": 1}
    records.sort(
        key=lambda r: (
            seeds.index(r["seed"]), rows.index(r["model"]), index[r["image"]],
            order[r["weights"]], order[r["saliency"]],
        )  # fmt: skip
    )  # the order of one process: seed, model, image, weights, saliency
    return pd.DataFrame.from_records(records), heatmaps


def _invariance_worker(part: tuple) -> tuple[list[dict], dict]:
    from ..device import worker_progress

    return _invariance_part(*part, bar=worker_progress())


def _invariance_part(
    job: dict[str, Any], images: dict[str, torch.Tensor], indices: list[int], bar: Any = None
) -> tuple[list[dict], dict]:
    """:func:`invariance_table` on some of its images (``indices``: their places in the whole)."""
    from ..controls import random_saliency, randomized_model

    explainer: PixelInvariance = job["explainer"]
    controls, keep_images, keep_seeds = job["controls"], job["keep_images"], job["keep_seeds"]
    randomised_images = job["randomised_images"]
    n_transforms, step = job["n_transforms"], job["step"]
    records: list[dict[str, object]] = []
    heatmaps: dict[tuple[str, str, str, int], InvarianceResult] = {}
    for s in job["seeds"]:
        params: dict[tuple, AugmentParams] = {}
        for row, (model, mean, std) in job["models"].items():
            variants = {"trained": model}
            if controls:
                variants["randomised"] = randomized_model(model, seed=int(s))
            pis = {
                w: explainer.replace(model=m, mean=mean, std=std, seed=int(s))
                for w, m in variants.items()
            }
            for k, name in zip(indices, images):
                img = images[name].float()
                h, w = img.shape[-2:]
                pi_t = pis["trained"]
                key = (h, w, pi_t.augment.erase_value)
                if key not in params:
                    params[key] = pi_t.augment.sample(pi_t.n_augments, h, w, pi_t.seed)
                x2 = pi_t.augment.apply(img.to(pi_t.device), params[key])
                rmap = random_saliency((h, w), seed=10000 * int(s) + k) if controls else None
                with_control = randomised_images is None or name in randomised_images
                here = {wt: pi for wt, pi in pis.items() if wt == "trained" or with_control}
                maps = {}
                n_before = len(records)
                for weights, pi in here.items():
                    res = pi.fit(pi.prepare(img, x2))
                    maps[weights] = res.heatmap
                    if (keep_images is None or name in keep_images) and (
                        keep_seeds is None or int(s) in keep_seeds
                    ):
                        heatmaps[(row, weights, name, int(s))] = res
                    score = similarity_score(pi, img, n_transforms, seed=int(s) + 1000)
                    sal = {"heatmap": res.heatmap}
                    if rmap is not None:
                        sal["random map"] = rmap
                    for kind, m in sal.items():
                        ev = evaluate(pi, img, m, score=score, step=step)
                        records.append(
                            {
                                "model": row,
                                "weights": weights,
                                "saliency": kind,
                                "image": name,
                                "seed": int(s),
                                **{
                                    c: ev[c]
                                    for c in (
                                        "insertion",
                                        "deletion",
                                        "full",
                                        "masked",
                                        "drop",
                                        "increase",
                                        "insertion_curve",
                                        "deletion_curve",
                                    )
                                },
                            }
                        )
                rc = (
                    _spearman(maps["trained"], maps["randomised"])
                    if "randomised" in maps
                    else float("nan")
                )
                for r in records[n_before:]:
                    r["rank_corr"] = rc
                if bar is not None:
                    bar.update(1)
    return records, heatmaps


def per_image(
    frame,
    model: str | Sequence[str],
    metric: str,
    weights: str = "trained",
    saliency: str = "heatmap",
    seed: int | None = None,
):
    """One value per image of ``metric`` (a column of :func:`invariance_table`'s frame).

    ``model`` may be several rows: their per-image mean. ``seed=None`` averages over the seeds
    (NaNs, e.g. an undefined drop, are skipped). Returns a ``pandas.Series`` indexed by image, in
    the frame's image order.
    """
    models = [model] if isinstance(model, str) else list(model)
    sel = frame[
        frame.model.isin(models) & (frame.weights == weights) & (frame.saliency == saliency)
    ]
    if seed is not None:
        sel = sel[sel.seed == seed]
    if sel.empty:
        raise ValueError(
            f"no rows for model={models}, weights={weights}, saliency={saliency}, seed={seed}"
        )
    present = set(sel.image)  # a control may cover a subset of the images
    order = [i for i in dict.fromkeys(frame.image) if i in present]
    return sel.groupby("image", sort=False)[metric].mean().reindex(order)


def claim_difference(
    frame,
    better: str | Sequence[str],
    worse: str | Sequence[str],
    metric: str,
    weights: str = "trained",
    seed: int | None = None,
    against: str | None = None,
):
    """Paired bootstrap over images of "``better`` scores better than ``worse`` on ``metric``".

    ``metric`` is a key of :data:`TABLE1_METRICS` (its direction is applied: a positive value means
    ``better`` is better). With ``against="random map"`` the comparison is the heatmap of the
    model(s) ``better`` against the random map on the same images (``worse`` is ignored).
    ``seed=None``: per-image values averaged over the seeds (``Estimate.seeds`` = their number).
    Returns a :class:`visxai.stats.Estimate` (mean difference, 95% CI, n images).
    """
    from ..stats import paired_difference

    col, higher = TABLE1_METRICS[metric]
    a = per_image(frame, better, col, weights, "heatmap", seed)
    if against is None:
        b = per_image(frame, worse, col, weights, "heatmap", seed)
    else:
        b = per_image(frame, better, col, weights, against, seed)
    a, b = a.align(b, join="inner")
    n_seeds = frame.seed.nunique() if seed is None else 1
    d = (a - b) if higher else (b - a)
    return paired_difference(d.to_numpy(), np.zeros(len(d)), seeds=int(n_seeds))
