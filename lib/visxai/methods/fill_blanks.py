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
  blank background white after binarisation; we tried it and it does.) ``Binarize`` has three
  modes (the ``binarize`` parameter, :func:`binarize_mode`):

  - ``fixed(t)``, a float ``t`` (default ``0.5``): a blank pixel is 1 where ``u > t``, else 0.
    This is the default because it is the plainest reading of the text: "a normalisation
    followed by a binary thresholding ... to visualise the patterns on the same range of values
    of the input image" names a normalisation to the image's range and a binary threshold, and
    no adaptive rule; 0.5 is the middle of the normalised positive range.
  - ``"otsu"``: ``t`` is Otsu's threshold (``skimage.filters.threshold_otsu``) of the positive
    values of ``u``, per image: an adaptive reading (the project's earlier default), which the
    paper does not name.
  - ``"none"`` (or None): the non-binarised variant of section 4.6, ``T = clip(u, 0, 1)``, the
    positive update in the intensity range of the image.

  What each reading gives on Table 1 is measured in notebook 04's ablation (binarisation x
  target rule, ResNet5 and CNN3).
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
* 4.2: one target per image, held through all ``k`` steps (``progressive_target="first"``, the
  default): ``y_hat``, the class predicted for the first masked input ``M_1(x)``, which section
  4.3 also uses as the prototype's label ("for each image, the label is the predicted label
  y_hat for the masked input"). The filled pixels ``T_i`` replace the blank ones before the next
  mask; after ``k`` steps no original pixel is left. Fig. 3's caption ("progressively the
  prediction of each mask is used to generate an update") can also be read as a new target per
  step: ``progressive_target="predicted"`` does that (the project's earlier default; measured in
  notebook 04's ablation), ``"label"`` uses the given labels.
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

Notebook 04's protocols and figures (its profiles, cases, Table 1 loops and verdicts) are in
:mod:`visxai.evaluation.fill_blanks`.

Written by hand, and why: the masks, ``T`` and the sampling loop are the paper's own method and
exist in no library (Captum's occlusion/feature-ablation baselines replace regions by a
baseline and score them, they do not fill them in); the gradient is plain ``torch.autograd``;
BFGS is scipy's, Otsu's threshold is scikit-image's.
"""

from __future__ import annotations

import copy
import hashlib
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
from ..stats import Estimate, estimate
from ..targets import as_targets

if TYPE_CHECKING:
    pass

__all__ = [
    "patch_masks",
    "partition_masks",
    "binarize_mode",
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
]

Binarize = str | float | None
#: the default of ``binarize``: ``fixed(0.5)`` (see the module docstring)
DEFAULT_BINARIZE = 0.5
PROGRESSIVE_TARGETS = ("first", "predicted", "label")


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


def binarize_mode(binarize: Binarize) -> tuple[str, float | None]:
    """``(mode, t)`` of a ``binarize`` value: ``("fixed", t)`` for a number ``t`` in [0, 1),
    ``("otsu", None)`` for ``"otsu"``, ``("none", None)`` for ``"none"`` or None. Anything else
    is a ``ValueError`` naming the three modes."""
    if binarize is None or (isinstance(binarize, str) and binarize.lower() == "none"):
        return "none", None
    if isinstance(binarize, str):
        if binarize.lower() == "otsu":
            return "otsu", None
        raise ValueError(
            f"binarize must be a float threshold t in [0, 1) (fixed), 'otsu' or 'none', "
            f"got {binarize!r}"
        )
    if isinstance(binarize, bool) or not isinstance(binarize, int | float | np.floating):
        raise ValueError(
            f"binarize must be a float threshold t in [0, 1) (fixed), 'otsu' or 'none', "
            f"got {binarize!r}"
        )
    t = float(binarize)
    if not 0.0 <= t < 1.0:
        raise ValueError(
            f"a fixed binarize threshold applies to the update normalised to [-1, 1]: "
            f"it must be in [0, 1), got {t}"
        )
    return "fixed", t


def threshold(
    delta: torch.Tensor, keep: torch.Tensor, binarize: Binarize = DEFAULT_BINARIZE
) -> torch.Tensor:
    """``T(Delta x) = Binarize(normalize(M~(Delta x)))`` (Eq. 4), per image of ``delta``
    [B, C, H, W].

    ``M~`` keeps the update on the blank pixels (``keep == 0``) only; ``normalize`` divides those
    values by their largest absolute value (``u`` in [-1, 1], zero stays zero); ``Binarize``
    (:func:`binarize_mode`) is ``1[u > t]`` with ``t`` a given float (fixed) or Otsu's threshold
    of the positive ``u`` (``"otsu"``); ``"none"`` returns the non-binarised variant
    ``clip(u, 0, 1)`` (section 4.6). Kept pixels are 0 in the output, so ``fill(x, keep, T)``
    changes only blank pixels.
    """
    if delta.dim() != 4:
        raise ValueError(f"delta must be [B, C, H, W], got shape {tuple(delta.shape)}")
    mode, fixed_t = binarize_mode(binarize)
    blank = (1.0 - keep).expand_as(delta).bool()
    if mode != "otsu":
        # fixed and none, for the whole batch at once: the same element-wise operations as the
        # per-image loop below (per-image max-abs over the blank pixels), so the same bits
        scale = torch.where(blank, delta, 0.0).abs().amax(dim=(1, 2, 3), keepdim=True)
        u = torch.where(scale > 0, delta / torch.where(scale > 0, scale, 1.0), 0.0)
        u = u.clamp(0.0, 1.0) if mode == "none" else (u > fixed_t).to(delta.dtype)
        return torch.where(blank, u, 0.0)
    out = torch.zeros_like(delta)
    for b in range(delta.shape[0]):
        vals = delta[b][blank[b]]
        if vals.numel() == 0:
            continue
        scale = vals.abs().max()
        u = vals / scale if scale > 0 else torch.zeros_like(vals)
        if mode == "none":
            u = u.clamp(0.0, 1.0)
        else:
            if mode == "otsu":
                pos = u[u > 0].detach().cpu().double().numpy()
                t = _otsu(pos) if pos.size else 1.0
            else:
                t = fixed_t
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
    * ``binarize``: ``Binarize`` of Eq. 4 (:func:`binarize_mode`): a float ``t`` (fixed
      threshold, default 0.5), ``"otsu"``, or ``"none"`` (section 4.6).
    * ``ratio``, ``patch``: the mask ratio ``eta`` and the patch size of the random masks
      (4.1, 4.4).
    * ``k``: the number of non-overlapping masks of the progressive fill (4.2).
    * ``min_correct``: :meth:`expected_update` samples until ``N* > min_correct`` (paper: 10,000).
    * ``max_masks``: it stops (with a warning) after this many masks;
      None: ``20 * (min_correct + 1)``.
    * ``seed``: the seed of the random masks of :meth:`expected_update` and :meth:`progressive`.
    * ``progressive_target``: ``"first"`` (the class predicted for ``M_1(x)``, held for all
      ``k`` steps; section 4.3's label), ``"predicted"`` (each step's predicted class) or
      ``"label"`` (the given labels).
    * ``bfgs_iterations``: the iterations of :meth:`second_order_update` (4.5).
    * ``batch_size``: masked images per forward/backward pass in :meth:`expected_update` and
      :meth:`progressive` (measure it: ``benchmarks/bench_fill_blanks.py``); in
      :meth:`expected_update` halved on a CUDA out-of-memory error.
    * ``forward_first_below``: in :meth:`expected_update`, once the rate of correct masks so far
      is below this value, a batch is first classified without gradient and only its correct
      masks go forward and backward (the others add nothing to E[dx]); faster when the rate is
      below about ``1 - t_forward / t_forward+backward`` (measured on a CPU, 1 thread: ResNet5
      1.19x at rate 0.46, CNN3 0.86x at 0.75); the same N* and masks, E[dx] equal up to float
      rounding. 0 (default): never.
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
        "forward_first_below",
    )

    def __init__(
        self,
        model: nn.Module,
        gamma: float = 1.0,
        binarize: Binarize = DEFAULT_BINARIZE,
        ratio: float = 0.25,
        patch: int = 2,
        k: int = 4,
        min_correct: int = 10_000,
        max_masks: int | None = None,
        seed: int = 0,
        progressive_target: str = "first",
        bfgs_iterations: int = 10,
        device: str | torch.device = "auto",
        batch_size: int = 256,
        channels_last: bool = False,
        forward_first_below: float = 0.0,
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
        self.forward_first_below = forward_first_below
        self._validate()  # before the model moves
        self.device = pick_device(device)
        self.model = model.eval().to(self.device)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _validate(self) -> None:
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        binarize_mode(self.binarize)  # raises on anything but fixed(t) / "otsu" / "none"
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
        if self.progressive_target not in PROGRESSIVE_TARGETS:
            raise ValueError(
                f"progressive_target must be one of {PROGRESSIVE_TARGETS}, "
                f"got {self.progressive_target!r}"
            )
        if self.bfgs_iterations < 1:
            raise ValueError(f"bfgs_iterations must be >= 1, got {self.bfgs_iterations}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= float(self.forward_first_below) <= 1.0:
            raise ValueError(
                "forward_first_below is a rate of correct masks in [0, 1] (0: never), "
                f"got {self.forward_first_below}"
            )
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

    def _update_correct(
        self, x: torch.Tensor, keep: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_update` with ``Delta x`` left 0 for the masks not classified as ``target``:
        one forward pass without gradient for all, forward and backward for the correct ones."""
        z = apply_mask(x, keep)
        if self.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        with frozen(self.model), torch.no_grad():
            logits = self.model(z)
        ok = logits.argmax(dim=1) == target
        delta = torch.zeros_like(x)
        if bool(ok.any()):
            delta[ok], _ = self._update(x[ok], keep[ok], target[ok])
        return delta, logits

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
            update = (
                self._update_correct
                if n_sampled and rate < self.forward_first_below
                else self._update
            )
            try:
                delta, logits = update(
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
        ``progressive_target="first"`` holds the class predicted at step 1 (for ``M_1(x)``) as
        the target of every step, ``"predicted"`` uses each step's predicted class, ``"label"``
        the given ``labels``. The images run in chunks of ``self.batch_size`` (the same result).
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
        # images are independent: chunks of batch_size (on a CPU a batch of 256 runs 1.6x the
        # passes per second of one of 2,000, with the same bits: measured)
        parts = [
            self._progressive(
                x[s : s + self.batch_size],
                keeps[s : s + self.batch_size],
                None if y is None else y[s : s + self.batch_size],
            )
            for s in range(0, max(n, 1), self.batch_size)
        ]
        return ProgressiveFill(*(torch.cat(t) for t in zip(*parts)))

    def _progressive(
        self, x: torch.Tensor, keeps: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        k = keeps.shape[1]
        cur = x
        region = torch.zeros_like(keeps[:, 0])
        fills, regions, preds = [], [], []
        for i in range(k):
            keep = keeps[:, i]
            delta, logits = self._update(cur, keep, y)
            if i == 0 and self.progressive_target == "first":
                y = logits.argmax(dim=1)  # y_hat of M_1(x), held for the later steps
            t = self.threshold(delta, keep)
            cur = fill(cur, keep, t)
            region = torch.maximum(region, 1.0 - keep)
            fills.append(cur)
            regions.append(region)
            preds.append(logits.argmax(dim=1))
        return (
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
    key = hashlib.blake2b(
        b"".join([np.array(y.shape).tobytes(), y.tobytes(), p.tobytes(), str(seed).encode()]),
        digest_size=16,
    ).digest()
    if key not in _SCORES_MEMO:  # the same pairs give the same CIs: computed once per process
        if len(_SCORES_MEMO) >= 1024:
            _SCORES_MEMO.clear()
        _SCORES_MEMO[key] = _bootstrap_scores(y, p, seed)
    return dict(_SCORES_MEMO[key])


_SCORES_MEMO: dict[bytes, dict[str, Estimate]] = {}


def _bootstrap_scores(y: np.ndarray, p: np.ndarray, seed: int) -> dict[str, Estimate]:
    """:func:`prototype_scores` without the memo. Each resample's three scores come from the
    per-image confusion counts (the counts of :func:`classification_scores`, summed with the
    resample's image weights: the same integers, so the same floats) and are computed once for
    the three metrics (their bootstraps draw the same resamples: same seed, same images)."""
    n_img, n_seeds = y.shape
    n_cls = int(max(y.max(), p.max())) + 1
    rows = np.repeat(np.arange(n_img), n_seeds)
    per_tp, per_support, per_pred = (np.zeros((n_img, n_cls)) for _ in range(3))
    hit = (y == p).reshape(-1)
    np.add.at(per_tp, (rows[hit], y.reshape(-1)[hit]), 1.0)
    np.add.at(per_support, (rows, y.reshape(-1)), 1.0)
    np.add.at(per_pred, (rows, p.reshape(-1)), 1.0)
    per_hit = (y == p).sum(1).astype(float)
    cache: dict[bytes, tuple[float, float, float]] = {}

    def scores(i: np.ndarray) -> tuple[float, float, float]:
        ii = i.astype(int)
        k = hashlib.blake2b(ii.tobytes(), digest_size=16).digest()
        if k not in cache:
            w = np.bincount(ii, minlength=n_img).astype(float)
            tp, support, predicted = w @ per_tp, w @ per_support, w @ per_pred
            present = (support + predicted) > 0
            f1 = 2 * tp[present] / (support[present] + predicted[present])
            weighted = float((f1 * support[present]).sum() / support.sum())
            acc = float(w @ per_hit) / float(ii.size * n_seeds)
            cache[k] = (100 * acc, 100 * float(f1.mean()), 100 * weighted)
        return cache[k]

    idx = np.arange(n_img, dtype=float)
    return {
        name: estimate(
            idx,
            statistic=lambda i, k=k: scores(i)[k],
            unit="images",
            seeds=n_seeds,
            seed=seed,
        )
        for k, name in enumerate(SCORE_NAMES)
    }
