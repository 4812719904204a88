"""Notebook 04 / Fill in the blanks: how would a classifier fill in a masked image? (Fill in the
blanks: Rethinking Interpretability in vision, 2024.)

A binary mask ``M`` blanks a ratio ``eta`` of the image in ``patch x patch`` blocks; the model
predicts the class of the masked image (Eq. 1), the input-space gradient step gives the update
``Delta x`` (Eq. 2), the threshold ``T`` keeps it on the blank pixels only, normalises and
binarises it (Eq. 4) and the fill is ``M(x) + T(Delta x)`` (Eq. 3). Section 4.1 averages the
update over random masks whose masked image is classified correctly (Eq. 5), section 4.2 fills
``k`` non-overlapping masks one after another, section 4.5 replaces the gradient step by a
BFGS (quasi-Newton) step.

Conventions (the paper has no public code; where it is silent we decided, and say why):

* A mask is stored as ``keep`` (float 0/1, shape ``[..., 1, H, W]``): 1 keeps the pixel, 0 blanks
  it, so ``M(x) = keep * x`` (the paper's element-wise product) and ``M~ = 1 - keep``. Masked
  pixels become 0, the background value of MNIST/Fashion-MNIST in [0, 1]; models that normalise
  their input must do it inside the model (see :func:`with_input_normalization`), so that the
  blank is "black" as in the paper, not "mean grey".
* Eq. 2 writes ``grad_x L(f(M(x)), y)``; taken literally through ``M`` the gradient is zero on
  every blank pixel and ``M~(Delta x)`` would vanish. We take the gradient with respect to the
  model's input at the masked image, ``z = M(x)``: ``Delta x = -gamma dL/dz |_{z = M(x)}``.
* ``T`` (Eq. 4): ``normalize`` divides ``M~(Delta x)`` by its largest absolute value over the
  blank pixels of each image, ``u in [-1, 1]``: the sign (red "add ink" / blue "remove ink" of
  Fig. 1) and the zero of "no update" are kept. (A min-max rescaling to [0, 1] would move "no
  update" to wherever the extremes put it: one strongly negative pixel then turns the whole
  blank background white after binarisation; we tried it and it does.) ``Binarize`` sets a
  blank pixel to 1 where ``u`` exceeds a threshold ``t > 0`` and to 0 elsewhere, so only the
  strongest positive updates become ink. The default ``t`` is Otsu's threshold
  (``skimage.filters.threshold_otsu``) of the positive values of ``u``, per image, because the
  scale and the sparsity of the update change from image to image; a float gives a fixed ``t``.
  ``binarize=None`` is the non-binarised variant of section 4.6: ``T = clip(u, 0, 1)``, the
  positive update in the intensity range of the image.
* The loss is cross-entropy computed in float64 from the model's logits: for a confidently
  classified masked image the float32 loss and its gradient round to exactly zero (no update,
  and BFGS cannot take a step), the float64 one does not.
* 4.1: ``E[Delta x]`` is, per pixel, the mean of ``M~_i(Delta x_i)`` over the correct masks in
  which that pixel was blank (Eq. 5 is a plain mean over the ``N*`` correct masks; with masks of
  exact ratio every pixel is blank in about ``eta N*`` of them, so the two differ by a near
  constant factor that the normalisation in ``T`` removes). Sampling stops at the first mask that
  makes ``N* > min_correct`` (paper: 10,000), so the estimate does not depend on the batch size
  (up to float rounding): the masks come from one sequential random stream.
  The paper visualises ``M(x) + T(E[Delta x])`` without saying which ``M``: we use the first
  sampled mask whose masked image is classified correctly (stored as ``ExpectedUpdate.keep``),
  so the fill is ``E[Delta x]`` on that mask's blank pixels (:meth:`FillInTheBlanks.expected_fill`;
  Fig. 2, Table 1 "random"). :meth:`FillInTheBlanks.expected_prototype` gives ``T(E[Delta x])``
  over the whole image (every pixel is blank in some mask), an extra view the paper does not show.
* 4.2: the target of each step is the class the model predicts for the current masked image
  ("how f selects a class for M(x) and suggests to improve it as an image of that class"), and
  the filled pixels ``T_i`` replace the blank ones before the next mask; after ``k`` steps no
  original pixel is left. ``target="label"`` uses the given labels instead.
* 4.5: BFGS, not L-BFGS: ``scipy.optimize.minimize(method="BFGS")`` on the loss as a function of
  the blank pixels only (the kept pixels fixed), started at ``M(x)``. Each iterate solves
  ``B_t p_t = -grad L(x_t)`` with the BFGS approximation ``B_t`` (scipy keeps its inverse); the
  second-order update ``Delta x_2`` is the sum of the accepted steps ``x_T - x_0`` after
  ``bfgs_iterations`` iterations (with ``B_0 = I`` the first step alone would equal the gradient
  step).

* 4.3 (Table 1): :func:`classification_scores` gives accuracy, macro F1 and weighted F1 (in %,
  scikit-learn's definitions, computed from the confusion counts so that a bootstrap can call it
  thousands of times); :func:`prototype_scores` attaches 95% CIs by resampling images (each image
  with its prototypes of every seed, so that seeds are not counted as independent images).

The method is :class:`FillInTheBlanks`: its constructor takes the whole parameter set (``gamma``,
``binarize``, ``ratio``, ``patch``, ``k``, ``min_correct``, ``max_masks``, ``seed``, ...), its
methods only the data, and :meth:`FillInTheBlanks.replace` gives a copy with other parameters.

Notebook 04's protocols live here too, below the method: the sample sizes of each profile
(:func:`notebook_settings`), the test sets, models and methods (:func:`load_study`), one
function per figure case (:func:`single_fill`, :func:`expected_panels`,
:func:`progressive_examples`, :func:`mask_sweep`, :func:`first_vs_second_order`,
:func:`binarisation_comparison`), Table 1 over mask seeds with its controls (:func:`table1`) and
its verdicts and scorecard rows (:func:`table1_verdicts`), and the figures (``plot_*``). The
notebook configures, calls them, plots and explains.

Written by hand, and why: the masks, ``T`` and the sampling loop are the paper's own method and
exist in no library (Captum's occlusion/feature-ablation baselines replace regions by a
baseline and score them, they do not fill them in); the gradient is plain ``torch.autograd``;
BFGS is scipy's, Otsu's threshold is scikit-image's.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_images
from ..device import frozen, make_generator, pick_device
from ..layers import Normalizer
from ..stats import Estimate, estimate, paired_difference
from ..targets import as_targets

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..models import LoadedModel
    from ..scorecard import Scorecard

__all__ = [
    "patch_masks",
    "partition_masks",
    "blank_fraction",
    "apply_mask",
    "threshold",
    "fill",
    "with_input_normalization",
    "ExpectedUpdate",
    "ProgressiveFill",
    "SecondOrderUpdate",
    "FillInTheBlanks",
    "classification_scores",
    "prototype_scores",
    # notebook 04's protocols and figures
    "NotebookSettings",
    "notebook_settings",
    "Study",
    "load_study",
    "masked_accuracy",
    "single_fill",
    "most_confident_per_class",
    "expected_panels",
    "expected_table",
    "convergence_check",
    "progressive_examples",
    "describe_progressive",
    "table_images",
    "table1_seed",
    "stack_seeds",
    "Table1",
    "table1",
    "table1_setting",
    "table1_verdicts",
    "ordering",
    "mask_sweep",
    "first_vs_second_order",
    "order_scorecard",
    "binarisation_comparison",
    "plot_single_fill",
    "plot_expected",
    "plot_progressive",
    "plot_table1",
    "plot_mask_sweep",
    "plot_orders",
    "plot_binarisation",
    "plot_fill_panel",
]

Binarize = str | float | None


# --------------------------------------------------------------------------------------- masks
def _grid(size: tuple[int, int], patch: int) -> tuple[int, int]:
    h, w = (int(s) for s in size)
    if not isinstance(patch, int | np.integer) or patch < 1:
        raise ValueError(f"patch must be a positive integer, got {patch!r}")
    if h % patch or w % patch:
        raise ValueError(
            f"image size {h}x{w} is not divisible by patch {patch}: masks are made of whole patches"
        )
    return h // patch, w // patch


def _upsample(cells: torch.Tensor, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """[n, gh*gw] cell values -> [n, 1, gh*patch, gw*patch] pixel values (each cell a block)."""
    n = cells.shape[0]
    gh, gw = grid
    blocks = cells.view(n, 1, gh, 1, gw, 1).expand(n, 1, gh, patch, gw, patch)
    return blocks.reshape(n, 1, gh * patch, gw * patch)


def blank_fraction(ratio: float, size: tuple[int, int], patch: int) -> float:
    """The exact fraction of blank pixels of :func:`patch_masks`:
    ``round(ratio * cells) / cells``."""
    gh, gw = _grid(size, patch)
    cells = gh * gw
    return round(ratio * cells) / cells


def patch_masks(
    n: int,
    size: tuple[int, int] = (28, 28),
    ratio: float = 0.25,
    patch: int = 2,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``n`` random masks ``keep`` [n, 1, H, W] (1 keep, 0 blank), each blanking exactly
    ``round(ratio * cells)`` of the ``(H/patch) * (W/patch)`` patch cells, drawn uniformly among all
    such masks (section 4.1: "a uniform distribution over all binary masks of ratio eta").

    The blank fraction is ``blank_fraction(ratio, size, patch)``, equal to ``ratio`` whenever
    ``ratio * cells`` is an integer (e.g. 28x28, patch 2, ratio 0.25: 49 of 196 cells).
    Masks are drawn on the CPU from ``generator`` (same seed, same masks on every device).
    """
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    grid = _grid(size, patch)
    cells = grid[0] * grid[1]
    m = round(ratio * cells)
    if m < 1 or m >= cells:
        raise ValueError(
            f"ratio {ratio} blanks {m} of {cells} cells (patch {patch}): "
            f"need between 1 and {cells - 1}"
        )
    # the m cells with the smallest of n*cells iid uniform scores: a uniform random m-subset
    blank_idx = (
        torch.rand(n, cells, generator=generator)
        .topk(m, dim=1, largest=False, sorted=False)
        .indices
    )
    blank = torch.zeros(n, cells).scatter_(1, blank_idx, 1.0)
    keep = _upsample(1.0 - blank, grid, patch)
    return keep.to(device) if device is not None else keep


def partition_masks(
    k: int = 4,
    size: tuple[int, int] = (28, 28),
    patch: int = 2,
    n: int = 1,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``n`` random sequences of ``k`` masks, ``keep`` [n, k, 1, H, W], whose blank regions are
    pairwise disjoint and cover the image (section 4.2: ``M_1 u ... u M_k`` masks everything).

    The patch cells are shuffled and split into ``k`` groups whose sizes differ by at most one, so
    each mask blanks exactly ``1/k`` of the image when ``k`` divides the number of cells.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    grid = _grid(size, patch)
    cells = grid[0] * grid[1]
    if k > cells:
        raise ValueError(
            f"k={k} masks need at least k cells, the image has {cells} (patch {patch})"
        )
    # group index of every cell: a random permutation of [0]*c0 + [1]*c1 + ... (near-equal sizes)
    groups = torch.cat(
        [torch.full((len(c),), i) for i, c in enumerate(torch.arange(cells).tensor_split(k))]
    )
    perm = torch.rand(n, cells, generator=generator).argsort(dim=1)
    cell_group = groups[perm]  # [n, cells]
    blank = (cell_group.unsqueeze(1) == torch.arange(k).view(1, k, 1)).float()  # [n, k, cells]
    keep = _upsample((1.0 - blank).reshape(n * k, cells), grid, patch).view(
        n, k, 1, size[0], size[1]
    )
    return keep.to(device) if device is not None else keep


def apply_mask(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``M(x) = keep * x`` (Eq. 1's masked image), broadcasting ``keep`` over channels."""
    return x * keep


# ----------------------------------------------------------------------------------- threshold
def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    if values.size < 2 or np.ptp(values) == 0:
        return 0.5
    return float(threshold_otsu(values))


def threshold(delta: torch.Tensor, keep: torch.Tensor, binarize: Binarize = "otsu") -> torch.Tensor:
    """``T(Delta x) = Binarize(normalize(M~(Delta x)))`` (Eq. 4), per image of ``delta``
    [B, C, H, W].

    ``M~`` keeps the update on the blank pixels (``keep == 0``) only; ``normalize`` divides those
    values by their largest absolute value (``u`` in [-1, 1], zero stays zero); ``Binarize`` is
    ``1[u > t]`` with ``t`` Otsu's threshold of the positive ``u`` (``binarize="otsu"``) or a given
    float. ``binarize=None`` returns the non-binarised variant ``clip(u, 0, 1)`` (section 4.6).
    Kept pixels are 0 in the output, so ``fill(x, keep, T)`` changes only blank pixels.
    """
    if delta.dim() != 4:
        raise ValueError(f"delta must be [B, C, H, W], got shape {tuple(delta.shape)}")
    if isinstance(binarize, str) and binarize != "otsu":
        raise ValueError(f"binarize must be 'otsu', a float threshold or None, got {binarize!r}")
    blank = (1.0 - keep).expand_as(delta).bool()
    out = torch.zeros_like(delta)
    for b in range(delta.shape[0]):
        vals = delta[b][blank[b]]
        if vals.numel() == 0:
            continue
        scale = vals.abs().max()
        u = vals / scale if scale > 0 else torch.zeros_like(vals)
        if binarize is None:
            u = u.clamp(0.0, 1.0)
        else:
            if isinstance(binarize, str):
                pos = u[u > 0].detach().cpu().double().numpy()
                t = _otsu(pos) if pos.size else 1.0
            else:
                t = float(binarize)
            u = (u > t).to(delta.dtype)
        out[b][blank[b]] = u
    return out


def fill(x: torch.Tensor, keep: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``M(x) + T(Delta x)`` (Eq. 3): the kept pixels of ``x`` with the blanks filled by ``t``."""
    return apply_mask(x, keep) + t * (1.0 - keep)


def with_input_normalization(
    model: nn.Module, mean: Sequence[float], std: Sequence[float]
) -> nn.Module:
    """``model`` taking images in [0, 1]: ``Sequential(Normalize(mean, std), model)`` in eval mode,
    so that masks blank pixels to 0 in image space, as the paper's element-wise product does."""
    return nn.Sequential(Normalizer(mean, std), model).eval()


# ------------------------------------------------------------------------------------- results
@dataclass
class ExpectedUpdate:
    """Section 4.1 for one image: ``mean`` is E[Delta x] [C, H, W] over ``n_correct`` masks."""

    mean: torch.Tensor
    n_correct: int
    n_sampled: int
    label: int
    keep: torch.Tensor | None = None  # [1, H, W]: the first correct mask (the M of M(x) + T(E[dx]))
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def correct_rate(self) -> float:
        """Fraction of sampled masks whose masked image was classified as ``label``."""
        return self.n_correct / max(self.n_sampled, 1)


@dataclass
class ProgressiveFill:
    """Section 4.2 for a batch: per step i (dim 1) the mask, the predicted region so far, the
    image after filling, and the predicted class; ``image`` is the final, fully filled image."""

    keeps: torch.Tensor  # [B, k, 1, H, W]
    predicted_region: torch.Tensor  # [B, k, 1, H, W], 1 where pixels come from T_1..T_i
    fills: torch.Tensor  # [B, k, C, H, W]
    predictions: torch.Tensor  # [B, k]

    @property
    def image(self) -> torch.Tensor:
        return self.fills[:, -1]

    @property
    def first_prediction(self) -> torch.Tensor:
        """The label of the prototype in Table 1: the prediction for the first masked input."""
        return self.predictions[:, 0]


@dataclass
class SecondOrderUpdate:
    """Section 4.5: the BFGS update ``delta`` [C, H, W] and the loss before / after it."""

    delta: torch.Tensor
    loss_start: float
    loss_end: float
    n_iter: int


# -------------------------------------------------------------------------------------- method
class FillInTheBlanks:
    """How ``model`` fills in masked images (notebook 04 / Fill in the blanks, Eq. 1-5).

    The object holds the whole parameter set; its methods take only the data (images, masks,
    labels). ``model`` maps images in [0, 1] ([B, C, H, W]) to logits; it is put in eval mode and
    its parameters are frozen while the method runs (gradients w.r.t. the input only). The loss is
    cross-entropy.

    Parameters (the paper's values are the defaults):

    * ``gamma``: the step of Eq. 2; it only scales ``Delta x`` and cancels in ``T``.
    * ``binarize``: ``Binarize`` of Eq. 4: ``"otsu"``, a float threshold, or None (section 4.6).
    * ``ratio``, ``patch``: the mask ratio ``eta`` and the patch size of the random masks
      (4.1, 4.4).
    * ``k``: the number of non-overlapping masks of the progressive fill (4.2).
    * ``min_correct``: :meth:`expected_update` samples until ``N* > min_correct`` (paper: 10,000).
    * ``max_masks``: it stops (with a warning) after this many masks;
      None: ``20 * (min_correct + 1)``.
    * ``seed``: the seed of the random masks of :meth:`expected_update` and :meth:`progressive`.
    * ``progressive_target``: ``"predicted"`` (each step's predicted class) or ``"label"``.
    * ``bfgs_iterations``: the iterations of :meth:`second_order_update` (4.5).
    * ``batch_size``: masked images per forward/backward pass in :meth:`expected_update`
      (measure it: ``benchmarks/bench_fill_blanks.py``); halved on a CUDA out-of-memory error.
    * ``channels_last=True`` converts the model (in place) and the masked batches to channels_last
      memory format (faster for some models: measure).

    :meth:`replace` gives a copy with some parameters changed that shares the model (e.g. the
    sweep of Fig. 4 over ``ratio`` and ``patch``).
    """

    #: the parameters :meth:`replace` may change (device and memory layout stay with the model)
    PARAMETERS = (
        "gamma",
        "binarize",
        "ratio",
        "patch",
        "k",
        "min_correct",
        "max_masks",
        "seed",
        "progressive_target",
        "bfgs_iterations",
        "batch_size",
    )

    def __init__(
        self,
        model: nn.Module,
        gamma: float = 1.0,
        binarize: Binarize = "otsu",
        ratio: float = 0.25,
        patch: int = 2,
        k: int = 4,
        min_correct: int = 10_000,
        max_masks: int | None = None,
        seed: int = 0,
        progressive_target: str = "predicted",
        bfgs_iterations: int = 10,
        device: str | torch.device = "auto",
        batch_size: int = 256,
        channels_last: bool = False,
    ) -> None:
        self.gamma = gamma
        self.binarize = binarize
        self.ratio = ratio
        self.patch = patch
        self.k = k
        self.min_correct = min_correct
        self.max_masks = max_masks
        self.seed = seed
        self.progressive_target = progressive_target
        self.bfgs_iterations = bfgs_iterations
        self.batch_size = batch_size
        self._validate()  # before the model moves
        self.device = pick_device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _validate(self) -> None:
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        if isinstance(self.binarize, str) and self.binarize != "otsu":
            raise ValueError(
                f"binarize must be 'otsu', a float threshold or None, got {self.binarize!r}"
            )
        if not 0.0 < float(self.ratio) < 1.0:
            raise ValueError(f"mask ratio must be in (0, 1), got {self.ratio}")
        if not isinstance(self.patch, int | np.integer) or self.patch < 1:
            raise ValueError(f"patch must be a positive integer, got {self.patch!r}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.min_correct < 0:
            raise ValueError(f"min_correct must be >= 0, got {self.min_correct}")
        if self.max_masks is not None and self.max_masks < 0:
            raise ValueError(f"max_masks must be >= 0 or None, got {self.max_masks}")
        if self.progressive_target not in ("predicted", "label"):
            raise ValueError(
                "progressive_target must be 'predicted' or 'label', "
                f"got {self.progressive_target!r}"
            )
        if self.bfgs_iterations < 1:
            raise ValueError(f"bfgs_iterations must be >= 1, got {self.bfgs_iterations}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.gamma = float(self.gamma)
        self.batch_size = int(self.batch_size)

    def replace(self, **changes: object) -> FillInTheBlanks:
        """A copy with the given :data:`PARAMETERS` changed, sharing the model (and device)."""
        unknown = sorted(set(changes) - set(self.PARAMETERS))
        if unknown:
            raise TypeError(f"replace() got unknown parameters {unknown}; known: {self.PARAMETERS}")
        new = copy.copy(self)
        for name, value in changes.items():
            setattr(new, name, value)
        new._validate()
        return new

    def mask_limit(self) -> int:
        """The most masks :meth:`expected_update` samples: ``max_masks`` or ``20 * (N* target)``."""
        return 20 * (self.min_correct + 1) if self.max_masks is None else int(self.max_masks)

    def __repr__(self) -> str:
        params = ", ".join(f"{p}={getattr(self, p)!r}" for p in self.PARAMETERS)
        return f"FillInTheBlanks({type(self.model).__name__}, {params}, device={self.device})"

    # ------------------------------------------------------------------ checks
    def _check_images(self, x: torch.Tensor) -> torch.Tensor:
        check_images(
            x,
            name="images",
            ndim=4,
            value_range=(0.0, 1.0),
            tol=1e-6,
            hint=(
                "masks blank pixels to 0, so normalise inside the model (with_input_normalization)"
            ),
        )
        return x.to(self.device, torch.float32)

    def _labels(self, y: torch.Tensor | int | Sequence[int], n: int) -> torch.Tensor:
        return as_targets(y, n, device=self.device, what="labels")

    # ------------------------------------------------------------------ Eq. 1-2
    def update(
        self,
        x: torch.Tensor,
        keep: torch.Tensor,
        target: torch.Tensor | Sequence[int] | int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Delta x, logits)`` for images ``x`` under masks ``keep``: ``y_hat = f(M(x))`` (Eq. 1),
        ``Delta x = -gamma dL(f(z), y)/dz`` at ``z = M(x)`` (Eq. 2); ``target=None`` uses the
        predicted class ``argmax y_hat`` as ``y``."""
        x = self._check_images(x)
        keep = keep.to(self.device, x.dtype)
        return self._update(x, keep, None if target is None else self._labels(target, x.shape[0]))

    def _update(
        self, x: torch.Tensor, keep: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with frozen(self.model), torch.enable_grad():
            z = apply_mask(x, keep).detach()
            if self.channels_last:
                z = z.contiguous(memory_format=torch.channels_last)
            z.requires_grad_(True)
            logits = self.model(z)
            y = logits.argmax(dim=1) if target is None else target
            # summed loss: the gradient of image b is that of its own loss (eval mode, no coupling)
            loss = F.cross_entropy(
                logits.double(), y, reduction="sum"
            )  # float64: see module docstring
            (grad,) = torch.autograd.grad(loss, z)
        return -self.gamma * grad, logits.detach()

    def threshold(self, delta: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Eq. 4 (:func:`threshold`) with this method's ``binarize``."""
        return threshold(delta, keep.to(delta.device), self.binarize)

    def fill(
        self,
        x: torch.Tensor,
        keep: torch.Tensor,
        target: torch.Tensor | Sequence[int] | int | None = None,
    ) -> torch.Tensor:
        """``M(x) + T(Delta x)`` (Eq. 3) for one mask per image (``target=None``: predicted)."""
        delta, _ = self.update(x, keep, target)
        keep = keep.to(delta.device)
        return fill(self._check_images(x), keep, self.threshold(delta, keep))

    # ------------------------------------------------------------------ 4.1
    def expected_update(
        self,
        x: torch.Tensor,
        label: int | torch.Tensor,
        *,
        snapshots: Sequence[int] = (),
        progress: bool | str = False,
    ) -> ExpectedUpdate:
        """E[Delta x] for one image ``x`` [C, H, W] or [1, C, H, W] (section 4.1, Eq. 5).

        Random masks (:func:`patch_masks` of ``self.ratio`` and ``self.patch``, drawn from
        ``self.seed``) are evaluated in batches of ``self.batch_size``; the masks whose masked image
        is classified as ``label`` are kept until ``N* > self.min_correct``. Stops with a warning
        after :meth:`mask_limit` masks (``self.max_masks``, by default ``20 * (min_correct + 1)``).
        ``snapshots`` records the running estimate when ``N*`` first exceeds each value (it does
        not change the estimate); ``progress`` shows a progress bar (a string: its title).
        """
        ratio, patch, min_correct = self.ratio, self.patch, self.min_correct
        if x.dim() == 3:
            x = x.unsqueeze(0)
        x = self._check_images(x)
        if x.shape[0] != 1:
            raise ValueError(f"expected_update takes one image, got a batch of {x.shape[0]}")
        y = int(torch.as_tensor(label).reshape(()).item())
        target_count = min_correct + 1
        max_masks = self.mask_limit()
        gen = make_generator(self.seed)
        size = (x.shape[-2], x.shape[-1])
        total = torch.zeros_like(x[0])
        counts = torch.zeros_like(x[0, :1])
        n_correct = n_sampled = 0
        first_keep: torch.Tensor | None = None
        pending = sorted(int(s) for s in snapshots)
        recorded: dict[int, torch.Tensor] = {}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=target_count,
                desc=progress if isinstance(progress, str) else "E[dx]",
                leave=False,
            )
        batch = self.batch_size
        while n_correct < target_count and n_sampled < max_masks:
            # the last batches shrink to about what is still needed (no wasted passes at the end)
            rate = n_correct / n_sampled if n_sampled else 1.0
            need = math.ceil((target_count - n_correct) / max(rate, 0.05) * 1.05)
            b = min(batch, max_masks - n_sampled, max(need, 16))
            keep = patch_masks(b, size, ratio, patch, generator=gen).to(self.device)
            try:
                delta, logits = self._update(
                    x.expand(b, -1, -1, -1), keep, torch.full((b,), y, device=self.device)
                )
            except torch.cuda.OutOfMemoryError:
                if batch == 1:
                    raise
                batch = max(batch // 2, 1)
                torch.cuda.empty_cache()
                continue  # the masks drawn for the failed batch are skipped (only on a GPU OOM)
            correct = logits.argmax(dim=1) == y
            if first_keep is None and bool(correct.any()):
                first_keep = keep[int(torch.nonzero(correct)[0])].cpu()
            # keep masks up to (and including) the one that makes N* reach target_count
            cum = correct.long().cumsum(0)
            use = correct & (cum <= target_count - n_correct)
            last = (
                int(torch.nonzero(cum >= target_count - n_correct)[0]) + 1
                if cum[-1] >= target_count - n_correct
                else b
            )
            blank = 1.0 - keep[:last]
            w = use[:last].to(x.dtype).view(-1, 1, 1, 1)
            for s in list(pending):
                if (
                    n_correct + int(use.sum()) > s
                ):  # snapshot inside this batch: accumulate up to it
                    need = s + 1 - n_correct
                    idx = int(torch.nonzero(cum >= need)[0]) + 1
                    part_w = use[:idx].to(x.dtype).view(-1, 1, 1, 1)
                    t = total + (part_w * blank[:idx] * delta[:idx]).sum(0)
                    c = counts + (part_w * blank[:idx]).sum(0)
                    recorded[s] = (t / c.clamp_min(1)).cpu()
                    pending.remove(s)
            total += (w * blank * delta[:last]).sum(0)
            counts += (w * blank).sum(0)
            added = int(use.sum())
            n_correct += added
            n_sampled += last
            if bar is not None:
                bar.update(added)
        if bar is not None:
            bar.close()
        if n_correct < target_count:
            warnings.warn(
                f"expected_update: only {n_correct} of {n_sampled} masked images were "
                f"classified as {y} "
                f"(wanted more than {min_correct}); the estimate uses those",
                RuntimeWarning,
                stacklevel=2,
            )
        mean = (total / counts.clamp_min(1)).cpu()
        return ExpectedUpdate(mean, n_correct, n_sampled, y, first_keep, recorded)

    def expected_fill(self, x: torch.Tensor, expected: ExpectedUpdate) -> torch.Tensor:
        """``M(x) + T(E[Delta x])`` [C, H, W] (section 4.1; Fig. 2, Table 1 "random") with ``M`` the
        first correct mask of the estimate (``expected.keep``)."""
        if expected.keep is None:
            raise ValueError(
                "no sampled mask was classified correctly: there is no M for M(x) + T(E[dx])"
            )
        x = x.reshape(1, *x.shape[-3:]).cpu().float()
        keep = expected.keep.reshape(1, 1, *x.shape[-2:])
        return fill(x, keep, self.threshold(expected.mean.unsqueeze(0), keep))[0]

    def expected_prototype(self, expected: ExpectedUpdate | torch.Tensor) -> torch.Tensor:
        """``T(E[Delta x])`` [C, H, W] over the whole image (no original pixel kept)."""
        mean = expected.mean if isinstance(expected, ExpectedUpdate) else expected
        mean = mean.unsqueeze(0) if mean.dim() == 3 else mean
        keep = torch.zeros_like(mean[:, :1])
        return self.threshold(mean, keep)[0]

    # ------------------------------------------------------------------ 4.2
    def progressive(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | Sequence[int] | None = None,
        keeps: torch.Tensor | None = None,
    ) -> ProgressiveFill:
        """Progressive fill of images ``x`` [B, C, H, W] with ``self.k`` non-overlapping masks
        (4.2).

        Step i masks ``M_i`` (one random partition per image of ``self.patch`` cells from
        ``self.seed``, or ``keeps`` [B, k, 1, H, W]), computes ``Delta x`` on the current image, and
        replaces the blank pixels by ``T_i(Delta x)``; the filled image is the input of step i+1.
        ``progressive_target="predicted"`` uses each step's predicted class, ``"label"`` the given
        ``labels``.
        """
        x = self._check_images(x)
        y = None
        if self.progressive_target == "label":
            if labels is None:
                raise ValueError("progressive_target='label' needs labels")
            y = self._labels(labels, x.shape[0])
        n, _, h, w = x.shape
        if keeps is None:
            keeps = partition_masks(
                self.k, (h, w), self.patch, n=n, generator=make_generator(self.seed)
            )
        if keeps.dim() != 5 or keeps.shape[0] != n or keeps.shape[-2:] != (h, w):
            raise ValueError(f"keeps must be [B, k, 1, H, W] with B={n}, got {tuple(keeps.shape)}")
        keeps = keeps.to(self.device, x.dtype)
        k = keeps.shape[1]
        cur = x
        region = torch.zeros_like(keeps[:, 0])
        fills, regions, preds = [], [], []
        for i in range(k):
            keep = keeps[:, i]
            delta, logits = self._update(cur, keep, y)
            t = self.threshold(delta, keep)
            cur = fill(cur, keep, t)
            region = torch.maximum(region, 1.0 - keep)
            fills.append(cur)
            regions.append(region)
            preds.append(logits.argmax(dim=1))
        return ProgressiveFill(
            keeps.cpu(),
            torch.stack(regions, 1).cpu(),
            torch.stack(fills, 1).cpu(),
            torch.stack(preds, 1).cpu(),
        )

    # ------------------------------------------------------------------ 4.5
    def second_order_update(
        self,
        x: torch.Tensor,
        keep: torch.Tensor,
        target: int | None = None,
    ) -> SecondOrderUpdate:
        """BFGS update of the blank pixels of one image (section 4.5): minimise
        ``L(f(z), y)`` over the blank pixels of ``z`` (kept pixels fixed) from ``z_0 = M(x)`` with
        ``scipy.optimize.minimize(method="BFGS")`` for ``self.bfgs_iterations``; each step solves
        ``B_t p_t = -grad L(z_t)``. Returns ``Delta x_2 = z_T - z_0`` (zero on kept pixels).
        ``target=None`` uses the class predicted for ``M(x)``."""
        from scipy.optimize import minimize

        if x.dim() == 3:
            x = x.unsqueeze(0)
        x = self._check_images(x)
        if x.shape[0] != 1:
            raise ValueError("second_order_update takes one image")
        keep = keep.reshape(1, 1, *x.shape[-2:]).to(self.device, x.dtype)
        z0 = apply_mask(x, keep)
        blank = (1.0 - keep).expand_as(z0).bool()
        with torch.no_grad():
            logits = self.model(z0)
        y = logits.argmax(1) if target is None else self._labels(target, 1)

        def loss_and_grad(v: np.ndarray) -> tuple[float, np.ndarray]:
            z = z0.clone()
            z[blank] = torch.as_tensor(v, dtype=z.dtype, device=z.device)
            with frozen(self.model), torch.enable_grad():
                z.requires_grad_(True)
                loss = F.cross_entropy(self.model(z).double(), y)
                (g,) = torch.autograd.grad(loss, z)
            return float(loss.detach()), g[blank].double().cpu().numpy()

        v0 = z0[blank].double().cpu().numpy()
        loss0, _ = loss_and_grad(v0)
        res = minimize(
            loss_and_grad,
            v0,
            jac=True,
            method="BFGS",
            options={"maxiter": int(self.bfgs_iterations), "gtol": 0.0},
        )
        delta = torch.zeros_like(z0)
        delta[blank] = torch.as_tensor(res.x - v0, dtype=delta.dtype, device=delta.device)
        return SecondOrderUpdate(delta[0].cpu(), loss0, float(res.fun), int(res.nit))

    # ------------------------------------------------------------------ helpers
    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted classes of images ``x`` [B, C, H, W] (e.g. the prototypes of Table 1)."""
        x = self._check_images(x)
        out = [
            self.model(x[s : s + batch_size]).argmax(1) for s in range(0, x.shape[0], batch_size)
        ]
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.long)


# ------------------------------------------------------------------------------ Table 1 scores
SCORE_NAMES = ("accuracy", "macro avg. f1-score", "weighted avg. f1-score")


def classification_scores(labels: np.ndarray, preds: np.ndarray) -> tuple[float, float, float]:
    """``(accuracy, macro F1, weighted F1)`` in percent, as scikit-learn's ``accuracy_score`` and
    ``f1_score(average="macro" | "weighted")`` (classes: those in ``labels`` or ``preds``; a class
    never predicted correctly has F1 0), from the confusion counts (fast enough for a bootstrap)."""
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    p = np.asarray(preds, dtype=np.int64).reshape(-1)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need as many labels as predictions (> 0), got {y.size} and {p.size}")
    n = int(max(y.max(), p.max())) + 1
    tp = np.bincount(y[y == p], minlength=n).astype(float)
    support = np.bincount(y, minlength=n).astype(float)
    predicted = np.bincount(p, minlength=n).astype(float)
    present = (support + predicted) > 0
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    weighted = float((f1 * support[present]).sum() / support.sum())
    return 100 * float((y == p).mean()), 100 * float(f1.mean()), 100 * weighted


def prototype_scores(
    labels: np.ndarray, preds: np.ndarray, *, seed: int = 0
) -> dict[str, Estimate]:
    """Table 1's scores of prototypes with 95% CIs from a bootstrap over images.

    ``labels`` and ``preds`` are ``[n_images]`` or ``[n_images, n_seeds]`` (one prototype per image
    and mask seed). Each bootstrap sample resamples images, every image with all its seeds'
    prototypes, and recomputes :func:`classification_scores` on the pooled pairs: the image is the
    unit (``n`` counts images), the seeds only average out the masks. Keys: :data:`SCORE_NAMES`.
    """
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    y, p = (y[:, None], p[:, None]) if y.ndim == 1 else (y, p)
    if y.shape != p.shape or y.ndim != 2:
        raise ValueError(
            "labels and preds must both be [n_images] or [n_images, n_seeds], "
            f"got {y.shape}, {p.shape}"
        )
    idx = np.arange(y.shape[0], dtype=float)
    return {
        name: estimate(
            idx,
            statistic=lambda i, k=k: classification_scores(y[i.astype(int)], p[i.astype(int)])[k],
            unit="images",
            seeds=y.shape[1],
            seed=seed,
        )
        for k, name in enumerate(SCORE_NAMES)
    }


# =================================================================== notebook 04: the protocols
# What follows is notebook 04's protocol (its profiles, its cases, the Table 1 loops and verdicts,
# the figures): the notebook configures, calls these functions, plots and explains.

#: Table 1 of the paper (ResNet5, MNIST): accuracy of f on its own prototypes [%]
TABLE1_PAPER = {"random (4.1)": 99.0, "progressive (4.2)": 93.0}
#: points: the paper gives neither a CI nor its number of images; 3 points is about one binomial
#: s.e. of 95% on 50 images
TABLE1_TOL = 3.0
#: Fig. 5 bands, "nearly the same direction / fill": the median's 95% CI must lie inside
FIG5_BANDS = {"cosine(dx1, dx2)": (0.9, 1.0), "IoU(T(dx1), T(dx2))": (0.5, 1.0)}


@dataclass(frozen=True)
class NotebookSettings:
    """The sample sizes of notebook 04 for one profile (a profile changes only these numbers).

    ``offline``: CPU, 2 cores, a few minutes: the same code on smaller samples (about 1,000-2,500
    masked forward+backward passes per second there, ``benchmarks/bench_fill_blanks.py``).
    ``paper``: a GPU, the paper's sample sizes (``N* > 10,000`` for every image), full MNIST.
    """

    profile: str
    mnist_subset: str  # "10k": the real 10k subset (8000 train / 2000 test, fixed split); "full"
    fig_model: str  # "a simple three-layered CNN" (Fig. 1-6)
    fmnist_model: str  # "a ResNet model" on Fashion-MNIST (Fig. 2b)
    table_model: str  # "ResNet5" (Table 1); the CNN3 rows are extra
    fig2_min_correct: int  # N* of Fig. 2 (offline reduced from 10,000; the check compares)
    check_min_correct: int  # N* of the convergence check of Fig. 2
    table_per_class: int | None  # correctly classified test images per class (None: every one)
    table_min_correct: int  # N* of Table 1 (offline reduced: 3 mask seeds x 3 models)
    fig5_images: int  # images (2 per class offline) of the first- vs second-order comparison
    fig4_min_correct: int  # N* of every cell of Fig. 4
    max_masks_factor: int  # stop sampling after factor * (N* + 1) masks (rarely correct images)
    batch_size: int  # measured best batch (benchmarks/bench_fill_blanks.py)


def notebook_settings(profile: str, min_correct: int = 10_000) -> NotebookSettings:
    """Notebook 04's :class:`NotebookSettings` for ``profile`` ("offline" or "paper");
    ``min_correct`` is the paper's ``N* > 10,000`` (the notebook's parameter)."""
    profiles = {
        "offline": NotebookSettings(
            "offline", "10k", "mnist-cnn3", "fmnist-resnet5", "mnist-resnet5",
            fig2_min_correct=1_000, check_min_correct=min_correct, table_per_class=10,
            table_min_correct=100, fig5_images=20, fig4_min_correct=100, max_masks_factor=3,
            batch_size=1024,
        ),
        "paper": NotebookSettings(
            "paper", "full", "mnist-cnn3", "fmnist-resnet5", "mnist-resnet5",
            fig2_min_correct=min_correct, check_min_correct=min_correct, table_per_class=None,
            table_min_correct=min_correct, fig5_images=100, fig4_min_correct=min_correct,
            max_masks_factor=20, batch_size=8192,
        ),
    }  # fmt: skip
    if profile not in profiles:
        raise ValueError(f"profile must be one of {sorted(profiles)}, got {profile!r}")
    return profiles[profile]


@dataclass
class Study:
    """Notebook 04's test sets, models and one :class:`FillInTheBlanks` per model
    (:func:`load_study`). ``data`` maps "mnist" / "fashion-mnist" to ``(images, labels)``;
    ``predictions`` are each model's classes of its clean test images."""

    settings: NotebookSettings
    device: torch.device
    data: dict[str, tuple[torch.Tensor, torch.Tensor]]
    loaded: dict[str, LoadedModel]
    methods: dict[str, FillInTheBlanks]
    predictions: dict[str, torch.Tensor]

    def dataset(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The test set of model ``name``: Fashion-MNIST for "fmnist-*", MNIST otherwise."""
        return self.data["fashion-mnist" if name.startswith("fmnist") else "mnist"]

    def labels(self, name: str) -> list[str]:
        """The class names of model ``name``."""
        return list(self.loaded[name].labels)


def load_study(
    settings: NotebookSettings,
    *,
    device: str | torch.device = "auto",
    gamma: float = 1.0,
    binarize: Binarize = "otsu",
    ratio: float = 0.25,
    patch: int = 2,
    k: int = 4,
    seed: int = 0,
    bfgs_iterations: int = 10,
) -> Study:
    """Load notebook 04's test sets and its three models (figures, Table 1, Fashion-MNIST) and
    build one :class:`FillInTheBlanks` per model from the notebook's parameters. Each method
    samples ``N* > settings.fig2_min_correct`` masks (Fig. 2) up to ``max_masks_factor`` times as
    many; the other figures :meth:`~FillInTheBlanks.replace` what they change. channels_last is
    used for the three-layer CNN on a CPU only (measured faster there)."""
    from ..data import load_fashion_mnist, load_mnist
    from ..models import load_model

    dev = pick_device(device)
    data = {
        "mnist": load_mnist("test", subset=settings.mnist_subset),
        "fashion-mnist": load_fashion_mnist("test"),
    }
    names = [settings.fig_model, settings.table_model, settings.fmnist_model]
    loaded = {n: load_model(n, profile=settings.profile) for n in names}
    methods = {
        n: FillInTheBlanks(
            loaded[n].model,
            gamma=gamma,
            binarize=binarize,
            ratio=ratio,
            patch=patch,
            k=k,
            min_correct=settings.fig2_min_correct,
            max_masks=settings.max_masks_factor * (settings.fig2_min_correct + 1),
            seed=seed,
            bfgs_iterations=bfgs_iterations,
            device=dev,
            batch_size=settings.batch_size,
            channels_last=(n == "mnist-cnn3" and dev.type == "cpu"),
        )
        for n in names
    }
    study = Study(settings, dev, data, loaded, methods, {})
    study.predictions = {n: methods[n].predict(study.dataset(n)[0]) for n in names}
    return study


# --------------------------------------------------------------- models and data: masked accuracy
@dataclass(frozen=True)
class MaskedAccuracy:
    """Test accuracy of one model on its clean test images and on the same images under one
    random mask each; ``drop`` is the paired difference clean - masked over the images."""

    clean: Estimate
    masked: Estimate
    drop: Estimate
    n_images: int

    def summary(self, name: str) -> str:
        return (
            f"{name:<16} test accuracy {self.clean.fmt()} on {self.n_images} test images; "
            f"on masked test images M(x): {self.masked.fmt()} (95% CIs over test images)"
        )


def masked_accuracy(study: Study) -> dict[str, MaskedAccuracy]:
    """Per model, its accuracy on clean and on masked test images (one mask of the method's ratio
    and patch per image, drawn from its seed): how often a masked image is "correct", which
    section 4.1 relies on."""
    out = {}
    for n, f in study.methods.items():
        x, y = study.dataset(n)
        keep = patch_masks(len(x), x.shape[-2:], f.ratio, f.patch, generator=make_generator(f.seed))
        ok_clean = (study.predictions[n] == y).double().numpy()
        ok_masked = (f.predict(apply_mask(x, keep)) == y).double().numpy()
        # paired over the same test images
        drop = paired_difference(ok_clean, ok_masked)
        out[n] = MaskedAccuracy(estimate(ok_clean), estimate(ok_masked), drop, len(y))
    return out


# ---------------------------------------------------------------------------------- Fig. 1
@dataclass
class SingleFill:
    """Fig. 1: one test image ``x`` [1, C, H, W], one mask, its update and its fill."""

    model: str
    index: int
    x: torch.Tensor
    keep: torch.Tensor
    delta: torch.Tensor
    masked_prediction: int
    t: torch.Tensor
    filled: torch.Tensor
    fill_prediction: int


def single_fill(study: Study, label: int = 3) -> SingleFill:
    """Fig. 1 (section 3.2): the first MNIST test image of class ``label`` that the figure model
    classifies correctly, one random mask (the method's ratio, patch and seed), ``Delta x`` for
    the class predicted for ``M(x)``, ``T`` and ``M(x) + T(Delta x)``."""
    name = study.settings.fig_model
    f = study.methods[name]
    x_all, y_all = study.data["mnist"]
    i = int(torch.nonzero((y_all == label) & (study.predictions[name] == label))[0])
    x = x_all[i : i + 1]
    keep = patch_masks(1, x.shape[-2:], f.ratio, f.patch, generator=make_generator(f.seed))
    delta, logits = f.update(x, keep)  # target = predicted class of M(x)
    t = f.threshold(delta.cpu(), keep)
    filled = fill(x, keep, t)
    pred = int(f.predict(filled)[0])
    return SingleFill(name, i, x, keep, delta.cpu(), int(logits.argmax()), t, filled, pred)


# ---------------------------------------------------------------------------------- Fig. 2
@dataclass
class ExpectedPanel:
    """One panel of Fig. 2: per class, the test image ``indices[c]`` and its ``E[Delta x]``."""

    model: str
    x: torch.Tensor
    indices: list[int]
    estimates: list[ExpectedUpdate]


def most_confident_per_class(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, first: int = 500, batch: int = 1000
) -> list[int]:
    """Per class ``0 .. max(y)``, the index of the test image (among the first ``first`` of that
    class) whose softmax probability of its class is largest."""
    dev = next(model.parameters()).device
    with torch.no_grad():
        prob = torch.cat(
            [
                torch.softmax(model(x[s : s + batch].to(dev)), 1).cpu()
                for s in range(0, len(x), batch)
            ]
        )
    out = []
    for c in range(int(y.max()) + 1):
        cand = torch.nonzero(y == c).flatten()[:first]
        out.append(int(cand[prob[cand, c].argmax()]))
    return out


def expected_panels(study: Study, progress: bool = True) -> dict[str, ExpectedPanel]:
    """Fig. 2 (section 4.1): for the most confident test image of each class, ``E[Delta x]`` over
    random masks until ``N* > settings.fig2_min_correct`` (a) with the figure model on MNIST and
    (b) with the Fashion-MNIST model."""
    from tqdm.auto import tqdm

    s = study.settings
    out = {}
    for panel, (name, key) in {
        "MNIST": (s.fig_model, "mnist"),
        "Fashion-MNIST": (s.fmnist_model, "fashion-mnist"),
    }.items():
        x, y = study.data[key]
        f = study.methods[name]
        idx = most_confident_per_class(f.model, x, y)
        ests = [
            f.expected_update(x[i], c, progress=f"{panel} class {c}" if progress else False)
            for c, i in enumerate(tqdm(idx, desc=panel, disable=not progress))
        ]
        out[panel] = ExpectedPanel(name, x, idx, ests)
    return out


def expected_table(study: Study, panels: dict[str, ExpectedPanel]) -> pd.DataFrame:
    """Fig. 2's numbers: per panel and class, the image, ``N*``, the masks sampled, the rate of
    correct masks and whether ``f(M(x) + T(E[dx]))`` is the class."""
    import pandas as pd

    rows = []
    for panel, p in panels.items():
        f = study.methods[p.model]
        for c, (i, e) in enumerate(zip(p.indices, p.estimates)):
            proto = f.expected_fill(p.x[i], e)
            rows.append(
                {
                    "data": panel,
                    "model": p.model,
                    "class": c,
                    "test image": i,
                    "N*": e.n_correct,
                    "masks sampled": e.n_sampled,
                    "correct rate": round(e.correct_rate, 3),
                    "f(M(x)+T(E[dx])) == class": int(f.predict(proto[None])[0]) == c,
                }
            )
    return pd.DataFrame(rows)


def convergence_check(
    study: Study, panels: dict[str, ExpectedPanel], label: int = 3, progress: bool = True
) -> tuple[float, float]:
    """Fig. 2's sample-size check: one MNIST image to ``N* > settings.check_min_correct``,
    compared with its own running estimate at ``settings.fig2_min_correct``. Returns the cosine
    similarity of the two ``E[Delta x]`` and the IoU of their binarised whole-image prototypes."""
    s = study.settings
    p = panels["MNIST"]
    f = study.methods[p.model].replace(min_correct=s.check_min_correct, max_masks=None)
    chk = f.expected_update(
        p.x[p.indices[label]],
        label,
        snapshots=(s.fig2_min_correct,),
        progress="check" if progress else False,
    )
    small = chk.snapshots.get(s.fig2_min_correct, chk.mean).flatten()
    cos = float(F.cosine_similarity(small, chk.mean.flatten(), dim=0))
    ta = f.expected_prototype(small.view_as(chk.mean)).bool()
    tb = f.expected_prototype(chk).bool()
    iou = float((ta & tb).sum() / (ta | tb).sum().clamp_min(1))
    return cos, iou


# ---------------------------------------------------------------------------------- Fig. 3
@dataclass
class ProgressiveExample:
    """Fig. 3: the progressive fill of one test image ``x`` [C, H, W] of class ``label``."""

    model: str
    x: torch.Tensor
    label: int
    result: ProgressiveFill
    final_prediction: int


def progressive_examples(
    study: Study, examples: Sequence[tuple[str, int]] | None = None
) -> list[ProgressiveExample]:
    """Fig. 3 (section 4.2): for each ``(model, class)`` (default: the figure model's 3 and 7, the
    Fashion-MNIST model's Ankle boot) the first correctly classified test image of that class,
    filled progressively with the method's ``k`` masks."""
    s = study.settings
    if examples is None:
        examples = [(s.fig_model, 3), (s.fig_model, 7), (s.fmnist_model, 9)]
    out = []
    for name, c in examples:
        x, y = study.dataset(name)
        f = study.methods[name]
        i = int(torch.nonzero((y == c) & (study.predictions[name] == c))[0])
        res = f.progressive(x[i : i + 1])
        out.append(ProgressiveExample(name, x[i], c, res, int(f.predict(res.image)[0])))
    return out


def describe_progressive(study: Study, example: ProgressiveExample) -> str:
    """One line: the predicted class of every step and of the final image."""
    labels = study.labels(example.model)
    steps = ", ".join(labels[int(p)] for p in example.result.predictions[0])
    return (
        f"{example.model} class {labels[example.label]}: predictions per step: {steps}; "
        f"final image classified as {labels[example.final_prediction]}"
    )


# ------------------------------------------------------------------------------- Table 1
RANDOM, PROGRESSIVE = "random (4.1)", "progressive (4.2)"
WHOLE = "random, T(E[dx]) whole image (not in paper)"
NOISE = "random-saliency fill, same masks (control)"
PROGRESSIVE_ALL = "progressive (4.2), all correct test images (not in paper)"

#: (labels [n], predictions [n]) per mechanism
Pairs = dict[str, tuple[torch.Tensor, torch.Tensor]]


def table1_seed(f: FillInTheBlanks, x: torch.Tensor) -> tuple[Pairs, int]:
    """One mask seed (``f.seed``) of Table 1 for the images ``x``: (label, prediction) of the
    prototypes of every mechanism, and how many images stopped short of ``N* > f.min_correct``.

    *random*: ``M(x) + T(E[dx])`` labelled ``y_hat = f(x)`` (the class the kept masks must predict;
    the true label for correctly classified images); an image without any correct mask has no
    ``M``: its prototype is ``T(E[dx])``. *progressive*: the fully filled image, labelled with the
    prediction for ``M_1(x)``. Extra rows: ``T(E[dx])`` over the whole image, and a
    random-saliency fill of the same blanks (uniform noise of seed ``f.seed`` through the same
    ``T``: :func:`visxai.controls.random_saliency`)."""
    from ..controls import random_saliency

    lab = f.predict(x)
    ests = [f.expected_update(x[j], int(lab[j])) for j in range(len(x))]
    proto = torch.stack(
        [
            f.expected_fill(x[j], e) if e.keep is not None else f.expected_prototype(e)
            for j, e in enumerate(ests)
        ]
    )
    size = tuple(x.shape[-2:])
    keeps = torch.stack([e.keep if e.keep is not None else torch.ones(1, *size) for e in ests])
    noise = fill(
        x, keeps, threshold(random_saliency((len(x), 1, *size), seed=f.seed), keeps, f.binarize)
    )
    prog = f.progressive(x)
    pairs = {
        RANDOM: (lab, f.predict(proto)),
        PROGRESSIVE: (prog.first_prediction, f.predict(prog.image)),
        WHOLE: (lab, f.predict(torch.stack([f.expected_prototype(e) for e in ests]))),
        NOISE: (lab, f.predict(noise)),
    }
    return pairs, sum(e.n_correct <= f.min_correct for e in ests)


def stack_seeds(per_seed: Sequence[Pairs]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{mechanism: (labels [n, seeds], predictions [n, seeds])}`` from per-seed results."""
    return {
        k: tuple(np.stack([d[k][j].numpy() for d in per_seed], 1) for j in (0, 1))
        for k in per_seed[0]
    }


def table_images(
    predictions: torch.Tensor, labels: torch.Tensor, per_class: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Table 1's images, every correctly classified image)``: indices of the first
    ``per_class`` correctly classified test images of each class (None: all of them)."""
    ok = torch.nonzero(predictions == labels).flatten()
    if per_class is None:
        return ok, ok
    n_classes = int(labels.max()) + 1
    return torch.cat([ok[labels[ok] == c][:per_class] for c in range(n_classes)]), ok


@dataclass
class Table1:
    """Table 1 (section 4.3) for every run (model) and mechanism, over mask seeds ``seeds``:
    ``pairs[run][mechanism] = (labels, predictions)``, each ``[n_images, n_seeds]``; ``short[run]``
    per seed the number of images short of ``N*``; ``scores[run, mechanism]`` the
    :func:`prototype_scores`. ``control`` names the run of the randomised table model."""

    study: Study
    seeds: tuple[int, ...]
    control: str
    n_images: int
    pairs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    short: dict[str, list[int]]
    scores: dict[tuple[str, str], dict[str, Estimate]]

    def frame(self) -> pd.DataFrame:
        """The printed table: value [95% CI] per run, mechanism and metric."""
        import pandas as pd

        rows = []
        for (run, mech), sc_ in self.scores.items():
            lab = self.pairs[run][mech][0]
            rows.append(
                {
                    "Model f": run,
                    "Masking Mechanism": mech,
                    "n images": sc_["accuracy"].n,
                    "seeds": lab.shape[1],
                    **{k: v.fmt() for k, v in sc_.items()},
                }
            )
        return pd.DataFrame(rows)

    def to_text(self) -> str:
        """The printed table (:meth:`frame`) under its title, at most 60 characters a column."""
        import pandas as pd

        with pd.option_context("display.max_colwidth", 60, "display.width", 250):
            table = self.frame().to_string(index=False)
        return f"Table 1 [%], value [95% CI over images], masks of seeds {self.seeds}\n{table}"

    def short_lines(self) -> list[str]:
        """Per run, how many images stopped short of ``N*`` for each seed."""
        s = self.study.settings
        return [
            f"{run}: images short of N* > {s.table_min_correct} (stopped at "
            f"{s.max_masks_factor} x (N* + 1) masks), seeds {self.seeds}: {short} of "
            f"{self.n_images}"
            for run, short in self.short.items()
        ]

    def values(self) -> pd.DataFrame:
        """One row per run, mechanism and metric with value, CI, n and seeds (figures' CSV)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "model": run,
                    "mechanism": mech,
                    "metric": k,
                    "value": v.value,
                    "ci_lo": v.lo,
                    "ci_hi": v.hi,
                    "n_images": v.n,
                    "seeds": v.seeds,
                }
                for (run, mech), s_ in self.scores.items()
                for k, v in s_.items()
            ]
        )


def table1(study: Study, seeds: Sequence[int] = (0, 1, 2), progress: bool = True) -> Table1:
    """Table 1 over mask seeds ``seeds`` for the table model (ResNet5), the same model with
    re-initialised weights (the model-randomisation control, :func:`visxai.controls.
    randomized_model` with seed 0: only the masks change with the seed) and the figure model
    (CNN3, not in the paper), on ``settings.table_per_class`` correctly classified test images per
    class with ``N* > settings.table_min_correct``. The trained models get an extra row:
    progressive masking over every correctly classified test image."""
    from tqdm.auto import tqdm

    from ..controls import randomized_model

    s = study.settings
    tm, cm = s.table_model, s.fig_model
    x_all, y_all = study.data["mnist"]
    images = {m: table_images(study.predictions[m], y_all, s.table_per_class) for m in (tm, cm)}
    control = f"{tm}, randomised weights (control)"
    base = study.methods[tm]
    fb_control = FillInTheBlanks(
        randomized_model(base.model, seed=0),
        gamma=base.gamma,
        binarize=base.binarize,
        ratio=base.ratio,
        patch=base.patch,
        k=base.k,
        seed=base.seed,
        bfgs_iterations=base.bfgs_iterations,
        device=study.device,
        batch_size=s.batch_size,
    )
    runs = {tm: study.methods[tm], control: fb_control, cm: study.methods[cm]}
    pairs, short = {}, {}
    for run, f_run in runs.items():
        tidx, ok = images[cm if run == cm else tm]
        per_seed, n_short = [], []
        for sd in tqdm(seeds, desc=f"Table 1 {run}", disable=not progress):
            f = f_run.replace(
                min_correct=s.table_min_correct,
                max_masks=s.max_masks_factor * (s.table_min_correct + 1),
                seed=sd,
            )
            d, n = table1_seed(f, x_all[tidx])
            if run != control:
                prog_all = f.progressive(x_all[ok])
                d[PROGRESSIVE_ALL] = (prog_all.first_prediction, f.predict(prog_all.image))
            per_seed.append(d)
            n_short.append(n)
        pairs[run], short[run] = stack_seeds(per_seed), n_short
    scores = {
        (run, mech): prototype_scores(lab, pr)
        for run, mechs in pairs.items()
        for mech, (lab, pr) in mechs.items()
    }
    return Table1(study, tuple(seeds), control, len(images[tm][0]), pairs, short, scores)


def table1_setting(t1: Table1) -> str:
    """The scorecard's "setting" text of Table 1's rows."""
    s, f = t1.study.settings, t1.study.methods[t1.study.settings.table_model]
    per_class = "all" if s.table_per_class is None else s.table_per_class
    return (
        f"{s.profile}: {s.table_model} (ours, MNIST {s.mnist_subset}), {t1.n_images} correctly "
        f"classified test images ({per_class}/class), eta={f.ratio}, patch {f.patch}, "
        f"binarize={f.binarize}; 95% CI: bootstrap over images (each with its prototypes of mask "
        f"seeds {', '.join(map(str, t1.seeds))})"
    )


def table1_verdicts(t1: Table1, scorecard: Scorecard) -> dict[str, list[str]]:
    """Table 1's verdicts per mask seed, and its scorecard rows.

    * Every paper cell (:data:`TABLE1_PAPER`, ResNet5): per seed, ``verdict_paper`` of the
      seed's CI against the paper's value +- :data:`TABLE1_TOL` points.
    * The ordering "random > progressive" (paper 99 - 93 = 6): per seed, a paired bootstrap of
      the per-image difference of correctness on the same images (:func:`ordering`), for the
      trained and the randomised model; the final verdict is ``verdict_controlled``.
    * The controls' accuracies as ``observed`` rows.

    Returns ``{claim: verdicts per seed}`` (the notebook's stability table) in print order.
    """
    from ..stats import verdict_controlled, verdict_over_seeds, verdict_paper

    s = t1.study.settings
    tm, k = s.table_model, t1.study.methods[s.table_model].k
    setting = table1_setting(t1)
    stability: dict[str, list[str]] = {}
    for mech, pv in TABLE1_PAPER.items():
        extra = (
            f", N* > {s.table_min_correct} per image" if mech.startswith("random") else f", k={k}"
        )
        lab, pr = t1.pairs[tm][mech]
        seeds_sc = [prototype_scores(lab[:, j], pr[:, j]) for j in range(lab.shape[1])]
        for metric in SCORE_NAMES:
            vs = [verdict_paper(s_[metric], pv, TABLE1_TOL) for s_ in seeds_sc]
            item = f"Table 1, MNIST ResNet5, {mech}"
            stability[f"{item}: {metric}"] = vs
            scorecard.add(
                item,
                f"{metric} [%]",
                pv,
                t1.scores[tm, mech][metric],
                f"{setting}{extra}; verdict: CI of every seed inside paper "
                f"+- {TABLE1_TOL:g} points",
                verdict_over_seeds(vs),
                digits=1,
            )
    ord_v, ord_est = ordering(t1.pairs[tm])
    ord_ctrl_v, ord_ctrl_est = ordering(t1.pairs[t1.control])
    ord_final = [verdict_controlled(v, c) for v, c in zip(ord_v, ord_ctrl_v)]
    stability["Table 1, ResNet5: random accuracy > progressive accuracy"] = ord_v
    stability["Table 1, randomised ResNet5 (control): random accuracy > progressive accuracy"] = (
        ord_ctrl_v
    )
    stability["Table 1, ResNet5: random > progressive, with the model-randomisation control"] = (
        ord_final
    )
    scorecard.add(
        "Table 1, ordering (ResNet5)",
        "random accuracy - progressive accuracy [points], > 0",
        "99 - 93 = 6",
        ord_est,
        f"{setting}; verdict per seed: paired bootstrap of the per-image difference over the same "
        f"images, the same for every seed; control: the randomised ResNet5 gives "
        f"{verdict_over_seeds(ord_ctrl_v)} ({ord_ctrl_est.fmt()} points)",
        verdict_over_seeds(ord_final),
    )
    for run, mech, what in [
        (t1.control, RANDOM, "control: randomised ResNet5, random (4.1)"),
        (t1.control, PROGRESSIVE, "control: randomised ResNet5, progressive (4.2)"),
        (tm, NOISE, "control: random-saliency fill (ResNet5)"),
    ]:
        scorecard.add(
            f"Table 1, {what}",
            "accuracy [%]",
            "",
            t1.scores[run, mech]["accuracy"],
            setting + "; not in the paper",
            "observed",
        )
    return stability


def ordering(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[list[str], Estimate]:
    """ "random > progressive" for one run: per seed, ``verdict_claim`` of the paired bootstrap of
    correct(random) - correct(progressive) [points] over the same images; and the estimate
    pooled over seeds (each image's mean over seeds)."""
    from ..stats import verdict_claim

    (lr, pr), (lp, pp) = pairs[RANDOM], pairs[PROGRESSIVE]
    ok_r, ok_p = 100.0 * (lr == pr), 100.0 * (lp == pp)
    per_seed = [paired_difference(ok_r[:, j], ok_p[:, j]) for j in range(ok_r.shape[1])]
    pooled = paired_difference(ok_r.mean(1), ok_p.mean(1), seeds=ok_r.shape[1])
    return [verdict_claim(d) for d in per_seed], pooled


# ---------------------------------------------------------------------------------- Fig. 4
@dataclass
class MaskSweep:
    """Fig. 4: ``E[Delta x]`` of one test image ``index`` per (ratio, patch), and the rate of
    correctly classified masks (rows: ratios, columns: patch sizes)."""

    index: int
    label: int
    estimates: dict[tuple[float, int], ExpectedUpdate]
    rates: pd.DataFrame

    def rate_falls(self) -> tuple[bool, bool]:
        """Whether the rate of correct masks at the largest ratio is below that at the smallest,
        for every patch size; and at the largest patch below the smallest, for every ratio."""
        r = self.rates
        return bool((r.iloc[-1] < r.iloc[0]).all()), bool((r.iloc[:, -1] < r.iloc[:, 0]).all())


def mask_sweep(
    study: Study,
    label: int = 2,
    ratios: Sequence[float] = (0.1, 0.25, 0.5, 0.75),
    patches: Sequence[int] = (1, 2, 4, 7),
    progress: bool = True,
) -> MaskSweep:
    """Fig. 4 (section 4.4): the first correctly classified MNIST test image of class ``label``,
    ``E[Delta x]`` for every mask ratio x patch size with ``N* > settings.fig4_min_correct``
    (at most ``10 * (N* + 1)`` masks per cell)."""
    import pandas as pd
    from tqdm.auto import tqdm

    s = study.settings
    name = s.fig_model
    x_all, y_all = study.data["mnist"]
    i = int(torch.nonzero((y_all == label) & (study.predictions[name] == label))[0])
    base = study.methods[name].replace(
        min_correct=s.fig4_min_correct, max_masks=10 * (s.fig4_min_correct + 1)
    )
    ests = {}
    for r in tqdm(ratios, desc="Fig. 4", disable=not progress):
        for p in patches:
            ests[r, p] = base.replace(ratio=r, patch=p).expected_update(x_all[i], label)
    rates = pd.DataFrame(
        [[ests[r, p].correct_rate for p in patches] for r in ratios],
        index=[f"eta={r}" for r in ratios],
        columns=[f"patch {p}" for p in patches],
    )
    return MaskSweep(i, label, ests, rates)


# ---------------------------------------------------------------------------------- Fig. 5
@dataclass
class OrderComparison:
    """Fig. 5: per image the losses, BFGS iterations, cosine of the two updates on the blanks and
    IoU of their binarised fills (``stats``), the medians with 95% CIs over images
    (``medians``), and four examples ``(index, class, keep, fill first-order, fill BFGS)``."""

    stats: pd.DataFrame
    medians: dict[str, Estimate]
    examples: list[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]]
    bfgs_iterations: int

    def check_lines(self) -> list[str]:
        """The checked statements: each median's CI inside its :data:`FIG5_BANDS` band, BFGS
        within its iterations and never above the starting loss."""
        lines = []
        for key, (lo, hi) in FIG5_BANDS.items():
            e = self.medians[key]
            inside = "yes" if lo <= e.lo and e.hi <= hi + 1e-9 else "no"
            lines.append(f"median {key} over {e.n} images: 95% CI inside [{lo}, {hi}]: {inside}")
        st, it = self.stats, self.bfgs_iterations
        within = "yes" if (st["BFGS iterations"] <= it).all() else "no"
        lower = "yes" if (st["loss BFGS"] <= st["loss start"]).all() else "no"
        lines.append(f"BFGS stopped within {it} iterations on every image: {within}")
        lines.append(f"BFGS loss <= starting loss on every image: {lower}")
        return lines


def first_vs_second_order(study: Study, n_images: int | None = None) -> OrderComparison:
    """Fig. 5 (section 4.5): on ``n_images`` MNIST test images (image j: the (j // 10)-th
    correctly classified one of class j % 10, one mask of seed ``seed + j``) the gradient update
    ``Delta x_1`` against the BFGS update ``Delta x_2`` of the figure model, both through the same
    ``T``. An agreement measurement of two update rules, reported with medians over images."""
    import pandas as pd

    name = study.settings.fig_model
    f = study.methods[name]
    n = study.settings.fig5_images if n_images is None else n_images
    x_all, y_all = study.data["mnist"]
    examples, rec = [], []
    for j in range(n):
        c = j % 10
        i = int(torch.nonzero((y_all == c) & (study.predictions[name] == c))[j // 10])
        xi = x_all[i : i + 1]
        keep = patch_masks(1, xi.shape[-2:], f.ratio, f.patch, generator=make_generator(f.seed + j))
        d1 = f.update(xi, keep)[0].cpu()
        so = f.second_order_update(x_all[i], keep[0])
        d2 = so.delta[None]
        t_1, t_2 = f.threshold(d1, keep), f.threshold(d2, keep)
        bl = (1 - keep).bool().expand_as(d1)
        b1, b2 = t_1.bool(), t_2.bool()
        rec.append(
            {
                "image": i,
                "class": c,
                "loss start": so.loss_start,
                "loss BFGS": so.loss_end,
                "BFGS iterations": so.n_iter,
                "cosine(dx1, dx2)": float(F.cosine_similarity(d1[bl], d2[bl], dim=0)),
                "IoU(T(dx1), T(dx2))": float((b1 & b2).sum() / (b1 | b2).sum().clamp_min(1)),
            }
        )
        if j < 10 and c in (0, 3, 5, 8):
            examples.append((i, c, keep, fill(xi, keep, t_1), fill(xi, keep, t_2)))
    stats = pd.DataFrame(rec)
    medians = {k: estimate(stats[k], statistic="median") for k in FIG5_BANDS}
    return OrderComparison(stats, medians, examples, f.bfgs_iterations)


def order_scorecard(study: Study, comparison: OrderComparison, scorecard: Scorecard) -> None:
    """Fig. 5's two ``observed`` scorecard rows (median cosine and IoU, CIs over images)."""
    s = study.settings
    setting = (
        f"{s.profile}: {s.fig_model}, {len(comparison.stats)} images (2/class), one mask each, "
        f"BFGS <= {comparison.bfgs_iterations} iterations; 95% CI: bootstrap over images"
    )
    item = "Fig. 5, first- vs second-order (CNN3)"
    scorecard.add(
        item,
        "median cosine(dx1, dx2) on the blanks",
        "",
        comparison.medians["cosine(dx1, dx2)"],
        setting,
        "observed",
    )
    scorecard.add(
        item,
        "median IoU of T(dx1), T(dx2)",
        "",
        comparison.medians["IoU(T(dx1), T(dx2))"],
        setting,
        "observed",
    )


# ---------------------------------------------------------------------------------- Fig. 6
@dataclass
class BinarisationComparison:
    """Fig. 6: the fills of ``classes`` (random masking: ``E[Delta x]`` of Fig. 2; progressive)
    binarised and not, and their predicted classes per variant (``predictions``)."""

    classes: list[int]
    random_fills: dict[str, torch.Tensor]  # "binarised" / "not binarised": [n, C, H, W]
    progressive: dict[str, ProgressiveFill]
    predictions: dict[str, torch.Tensor]

    def kept_class(self, variant: str) -> int:
        """How many fills of ``variant`` are classified as their class."""
        return int((self.predictions[variant] == torch.tensor(self.classes)).sum())


def binarisation_comparison(
    study: Study, panels: dict[str, ExpectedPanel], classes: Sequence[int] = (0, 3, 5, 8)
) -> BinarisationComparison:
    """Fig. 6 (section 4.6): binarised ``T`` against ``binarize=None`` for random masking (the
    MNIST ``E[Delta x]`` of Fig. 2) and progressive masking of the same images."""
    p = panels["MNIST"]
    f = study.methods[p.model]
    soft = f.replace(binarize=None)
    xs = p.x[[p.indices[c] for c in classes]]
    random_fills = {
        v: torch.stack([g.expected_fill(p.x[p.indices[c]], p.estimates[c]) for c in classes])
        for v, g in (("binarised", f), ("not binarised", soft))
    }
    prog = {"binarised": f.progressive(xs), "not binarised": soft.progressive(xs)}
    preds = {f"random, {v}": f.predict(t) for v, t in random_fills.items()}
    preds.update({f"progressive, {v}": f.predict(r.image) for v, r in prog.items()})
    return BinarisationComparison(list(classes), random_fills, prog, preds)


# --------------------------------------------------------------------- notebook 04: figures
def _plt():
    import matplotlib.pyplot as plt

    return plt


def _clean_axes(axes: np.ndarray) -> None:
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])


def plot_single_fill(study: Study, case: SingleFill) -> Figure:
    """Fig. 1: x, the mask, M(x), the signed update on the blanks (red +, blue -) over M(x), and
    the fill M(x) + T(dx)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 5, figsize=(12, 2.8))
    keep = case.keep
    blank = (1 - keep)[0, 0].numpy().astype(bool)
    d = (case.delta * (1 - keep))[0, 0].numpy()
    lim = float(np.abs(d).max()) or 1.0
    masked = apply_mask(case.x, keep)[0, 0]
    panels = [(case.x[0, 0], "x"), (keep[0, 0], "mask M (black: blank)"), (masked, "M(x)")]
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
    axes[3].imshow(masked, cmap="gray", vmin=0, vmax=1)
    axes[3].imshow(np.ma.masked_where(~blank, d), cmap="bwr", vmin=-lim, vmax=lim)
    axes[3].set_title("M(x) + M~(dx): red +, blue -", fontsize=9)
    axes[4].imshow(case.filled[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[4].set_title("M(x) + T(dx)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    f = study.methods[case.model]
    fig.suptitle(f"Fig. 1 ({case.model}): eta={f.ratio}, patch {f.patch}x{f.patch}", fontsize=10)
    return fig


def plot_expected(study: Study, panels: dict[str, ExpectedPanel]) -> Figure:
    """Fig. 2: per panel and class, x, E[dx] (red +, blue -), M(x) + T(E[dx]) and T(E[dx]) over
    the whole image."""
    plt = _plt()
    fig, axes = plt.subplots(4 * len(panels), 10, figsize=(13, 11))
    for p, (panel, pn) in enumerate(panels.items()):
        f, labels = study.methods[pn.model], study.labels(pn.model)
        for c, (i, e) in enumerate(zip(pn.indices, pn.estimates)):
            col = axes[4 * p : 4 * p + 4, c]
            m = e.mean[0].numpy()
            lim = float(np.abs(m).max()) or 1.0
            col[0].imshow(pn.x[i, 0], cmap="gray", vmin=0, vmax=1)
            col[0].set_title(labels[c][:11], fontsize=8)
            col[1].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
            col[2].imshow(f.expected_fill(pn.x[i], e)[0], cmap="gray", vmin=0, vmax=1)
            col[3].imshow(f.expected_prototype(e)[0], cmap="gray", vmin=0, vmax=1)
        for r, text in enumerate(["x", "E[dx]", "M(x)+T(E[dx])", "T(E[dx]) whole"]):
            axes[4 * p + r, 0].set_ylabel(f"({'ab'[p]}) {text}" if r == 0 else text, fontsize=8)
    _clean_axes(axes)
    s = study.settings
    fig.suptitle(
        f"Fig. 2: (a) MNIST, {panels['MNIST'].model}; (b) Fashion-MNIST, "
        f"{panels['Fashion-MNIST'].model}; N* > {s.fig2_min_correct} per image",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_progressive(examples: Sequence[ProgressiveExample]) -> Figure:
    """Fig. 3: per example, the masks M_i, the region predicted so far and the image after each
    step."""
    plt = _plt()
    k = examples[0].result.keeps.shape[1]
    fig, axes = plt.subplots(
        3 * len(examples), k + 1, figsize=(1.9 * (k + 1), 1.9 * 3 * len(examples))
    )
    for e, ex in enumerate(examples):
        rows, res = axes[3 * e : 3 * e + 3], ex.result
        rows[0, 0].imshow(ex.x[0], cmap="gray", vmin=0, vmax=1)
        rows[0, 0].set_title(f"x ({ex.model})", fontsize=8)
        rows[1, 0].axis("off")
        rows[2, 0].axis("off")
        for i in range(k):
            rows[0, i + 1].imshow(res.keeps[0, i, 0], cmap="gray", vmin=0, vmax=1)
            rows[0, i + 1].set_title(f"M{i + 1}", fontsize=8)
            rows[1, i + 1].imshow(res.predicted_region[0, i, 0], cmap="gray", vmin=0, vmax=1)
            rows[1, i + 1].set_title(f"predicted {100 * (i + 1) // k}%", fontsize=8)
            rows[2, i + 1].imshow(res.fills[0, i, 0], cmap="gray", vmin=0, vmax=1)
            rows[2, i + 1].set_title(f"after step {i + 1}", fontsize=8)
    _clean_axes(axes)
    fig.suptitle(f"Fig. 3: progressive masking, k={k} masks of {100 // k}%", fontsize=10)
    fig.tight_layout()
    return fig


def plot_table1(t1: Table1) -> Figure:
    """Table 1 as a figure: value and 95% CI per run, mechanism and metric; the paper's value
    (star) and its +- tolerance band (grey)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    mechs = [RANDOM, PROGRESSIVE, WHOLE, NOISE]
    short_name = dict(
        zip(mechs, [RANDOM, PROGRESSIVE, "random, whole T(E[dx])", "random-saliency fill"])
    )
    for ax, metric in zip(axes, SCORE_NAMES):
        for r, (run, col) in enumerate(zip(t1.pairs, ["C0", "C3", "C2"])):
            ests = [t1.scores[run, m][metric] for m in mechs]
            ypos = np.arange(len(mechs)) + (r - 1) * 0.25
            xerr = [[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]]
            label = run if metric == SCORE_NAMES[0] else None
            values = [e.value for e in ests]
            ax.errorbar(values, ypos, xerr=xerr, fmt="o", color=col, capsize=3, label=label)
        for m, pv in TABLE1_PAPER.items():
            yp = mechs.index(m)
            first = metric == SCORE_NAMES[0] and m == RANDOM
            ax.plot(
                [pv], [yp], marker="*", color="k", markersize=11, linestyle="none",
                label="paper (ResNet5)" if first else None,
            )  # fmt: skip
            ax.fill_betweenx(
                [yp - 0.4, yp + 0.4], pv - TABLE1_TOL, pv + TABLE1_TOL, color="0.85", zorder=0
            )
        ax.set_yticks(range(len(mechs)), [short_name[m] for m in mechs], fontsize=8)
        ax.set_xlim(0, 102)
        ax.set_xlabel(f"{metric} [%]", fontsize=9)
        ax.invert_yaxis()
    fig.legend(loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(
        f"Table 1 (MNIST): value and 95% CI over {t1.n_images} images (masks of seeds "
        f"{t1.seeds}); grey: paper +- {TABLE1_TOL:g}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_mask_sweep(study: Study, sweep: MaskSweep) -> Figure:
    """Fig. 4: M(x) + T(E[dx]) per mask ratio (rows) x patch size (columns), with the achieved
    blank fraction in each title."""
    plt = _plt()
    name = study.settings.fig_model
    f, x = study.methods[name], study.data["mnist"][0][sweep.index]
    ratios = sorted({r for r, _ in sweep.estimates})
    patches = sorted({p for _, p in sweep.estimates})
    fig, axes = plt.subplots(
        len(ratios), len(patches), figsize=(2.2 * len(patches), 2.3 * len(ratios)), squeeze=False
    )
    for a, r in enumerate(ratios):
        for b, p in enumerate(patches):
            ax = axes[a, b]
            ax.imshow(f.expected_fill(x, sweep.estimates[r, p])[0], cmap="gray", vmin=0, vmax=1)
            frac = blank_fraction(r, tuple(x.shape[-2:]), p)
            ax.set_title(f"eta={r} (blank {frac:.2f}), {p}x{p}", fontsize=7)
            ax.axis("off")
    fig.suptitle(
        f"Fig. 4 ({name}): M(x) + T(E[dx]), mask ratio (rows) x patch size (columns)", fontsize=10
    )
    fig.tight_layout()
    return fig


def plot_orders(study: Study, comparison: OrderComparison) -> Figure:
    """Fig. 5: M(x) and the fills of the gradient and of the BFGS update for four images."""
    plt = _plt()
    x_all = study.data["mnist"][0]
    ex = comparison.examples
    fig, axes = plt.subplots(3, len(ex), figsize=(2.2 * len(ex), 6.8), squeeze=False)
    for b, (i, _c, keep, f1, f2) in enumerate(ex):
        axes[0, b].imshow(apply_mask(x_all[i : i + 1], keep)[0, 0], cmap="gray", vmin=0, vmax=1)
        axes[1, b].imshow(f1[0, 0], cmap="gray", vmin=0, vmax=1)
        axes[2, b].imshow(f2[0, 0], cmap="gray", vmin=0, vmax=1)
    for r, t in enumerate(["M(x)", "M(x)+T(dx1), gradient", "M(x)+T(dx2), BFGS"]):
        axes[r, 0].set_ylabel(t, fontsize=8)
    _clean_axes(axes)
    fig.suptitle(
        f"Fig. 5 ({study.settings.fig_model}): first-order vs second-order "
        f"(BFGS, <= {comparison.bfgs_iterations} iterations)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_binarisation(study: Study, comparison: BinarisationComparison) -> Figure:
    """Fig. 6: rows random masking binarised / not, progressive binarised / not."""
    plt = _plt()
    n = len(comparison.classes)
    fig, axes = plt.subplots(4, n, figsize=(2.2 * n, 9), squeeze=False)
    rows = [
        comparison.random_fills["binarised"],
        comparison.random_fills["not binarised"],
        comparison.progressive["binarised"].image,
        comparison.progressive["not binarised"].image,
    ]
    for r, imgs in enumerate(rows):
        for b in range(n):
            axes[r, b].imshow(imgs[b, 0], cmap="gray", vmin=0, vmax=1)
    names = ["random, binarised", "random, not binarised", "progressive, binarised"]
    for r, t in enumerate([*names, "progressive, not bin."]):
        axes[r, 0].set_ylabel(t, fontsize=8)
    _clean_axes(axes)
    fig.suptitle(f"Fig. 6 ({study.settings.fig_model}): binarised vs non-binarised T", fontsize=10)
    fig.tight_layout()
    return fig


def plot_fill_panel(
    study: Study, index: int, ratio: float, patch: int, mask_seed: int
) -> Figure | None:
    """The interactive panel: x, M(x) and the single-mask fill M(x) + T(dx) of MNIST test image
    ``index`` with the figure model, for one mask of ``ratio`` and ``patch`` drawn from
    ``mask_seed``. A ratio that blanks no whole patch, or every patch, is printed, not drawn."""
    plt = _plt()
    x_all, y_all = study.data["mnist"]
    xi = x_all[index : index + 1]
    try:
        keep = patch_masks(1, xi.shape[-2:], ratio, patch, generator=make_generator(mask_seed))
    except ValueError as err:
        print(err)
        return None
    f = study.methods[study.settings.fig_model]
    labels = study.labels(study.settings.fig_model)
    out = f.fill(xi, keep).cpu()
    fig, axes = plt.subplots(1, 3, figsize=(6.6, 2.4))
    titles = [
        f"x (label {labels[int(y_all[index])]})",
        f"M(x), blank {float((1 - keep).mean()):.2f}",
        f"M(x)+T(dx) -> {labels[int(f.predict(out)[0])]}",
    ]
    for ax, img, t in zip(axes, [xi, apply_mask(xi, keep), out], titles):
        ax.imshow(img[0, 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    return fig
