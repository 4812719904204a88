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
  trained with ``torch.optim.SGD`` (full batch), the BCE is ``binary_cross_entropy_with_logits``;
  blur is torchvision's ``gaussian_blur``. Only the glue and the loss of Eq. 2 are written here.

Where the authors' code (fawazsammani/explain-cl, ``methods.py``) differs from the paper, and what
this module does:

* Loss reduction. Eq. 2 is written per augment. The authors sum the BCE over the ``B`` augments,
  average the NMF term (``MSELoss``) and add the L1 norm of all parameters (bias included) once.
  The paper's alpha=2 and lambda=0.2 were chosen with that reduction (with a per-sample mean
  the L1 term dominates and the weights collapse), so ``reduction="authors"`` is the default;
  ``reduction="mean"`` averages every per-sample term of Eq. 2 (L1 once) for comparison.
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
* NMF: scikit-learn's ``fit_transform(F)`` for ``F`` (B x D) returns the (B x V) factor, which is
  the paper's ``H`` transposed; its scale is NMF's (not rescaled), as in the authors' code.
* Average Drop / Increase in Confidence (:func:`evaluate`) are computed per (image,
  transformation) pair and averaged per image (the authors average the 10 cosines into one score
  per image first; the paper's IC of 0.004 is only possible per pair).

Notebook 01's protocol (written here so that the notebook only configures, calls, plots and
explains):

* :func:`invariance_case`: the profile's models (:func:`visxai.models.load_model`) and photos
  (:data:`INVARIANCE_PROFILES`, configuration only);
* :func:`invariance_table` / :func:`run_table1`: Table I over photos and seeds with both controls,
  per-image metrics for every model, photo and seed, the same protocol with a random map and on
  randomised copies of the models (Adebayo et al. 2018);
* :func:`per_image` and :func:`claim_difference` (paired bootstrap over images,
  :func:`visxai.stats.paired_difference`) turn them into Table I entries and claims;
  :func:`table1_report` does it for the whole notebook: Table I with CIs, the paper comparison,
  the claim and the random-map test with their per-seed verdicts, the scorecard rows and the
  text of the verdict cells (:class:`Table1Report`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    from matplotlib.figure import Figure

    from ..metrics.perturbation import SimilarityScore
    from ..scorecard import Scorecard
    from ..stats import Estimate

__all__ = [
    "SurrogateConfig",
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
    "TABLE1_VARIANTS",
    "PAPER_TABLE1",
    "ModelEntry",
    "invariance_table",
    "per_image",
    "claim_difference",
    "Table1Report",
    "table1_report",
    "mean_curve",
    "INVARIANCE_PROFILES",
    "InvarianceCase",
    "invariance_case",
    "run_table1",
]

# ------------------------------------------------------------------------------------------------
# features, similarities, NMF
# ------------------------------------------------------------------------------------------------


def without_head(model: nn.Module, attr: str = "_fc") -> nn.Module:
    """``model`` with its classification layer ``attr`` replaced by ``Identity`` (penultimate
    features).

    The original model is not modified (its other modules are shared, not copied).
    """
    if not hasattr(model, attr):
        raise ValueError(f"{type(model).__name__} has no attribute {attr!r} to remove")

    class _Headless(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            saved = getattr(self.inner, attr)
            setattr(self.inner, attr, nn.Identity())
            try:
                return self.inner(x)
            finally:
                setattr(self.inner, attr, saved)

    return _Headless(model).eval()


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
    """Hyper-parameters of Eq. 2 and its training (paper: alpha=2, lambda=0.2, 100 epochs, lr
    0.1)."""

    alpha: float = 2.0
    lam: float = 0.2
    epochs: int = 100
    lr: float = 0.1
    reduction: str = "authors"  # "authors" (sum BCE, mean NMF term, L1 once) or "mean"
    clamp_similarity: bool = True
    center: bool = True  # subtract the mean augment from x1 and x2 (the bias absorbs it)

    def __post_init__(self) -> None:
        if self.reduction not in ("authors", "mean"):
            raise ValueError(f"reduction must be 'authors' or 'mean', got {self.reduction!r}")
        if self.epochs < 0 or self.lr <= 0 or self.alpha < 0 or self.lam < 0:
            raise ValueError(f"invalid surrogate config {self}")


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


def train_surrogate(
    x1: torch.Tensor,
    x2: torch.Tensor,
    similarity: torch.Tensor,
    nmf_target: torch.Tensor,
    config: SurrogateConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, float]]]:
    """Fit the linear surrogate of Eq. 2 by full-batch SGD.

    ``x1`` [P] (flattened reference image), ``x2`` [B,P] (flattened augments), ``similarity`` and
    ``nmf_target`` [B]. Returns (weight [P], bias [], per-epoch loss terms). Deterministic: the
    weights start at zero and the batch is the full set.
    """
    config = config or SurrogateConfig()
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
    with torch.enable_grad():
        for _ in range(config.epochs):
            # (W x1 + b + W x2_i + b) / 2, the mean of the two surrogate outputs
            logits = 0.5 * (x2 @ layer.weight[0] + x1 @ layer.weight[0]) + layer.bias[0]
            terms = surrogate_loss(logits, s, t, layer.weight, layer.bias, config)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            history.append({k: float(v.detach()) for k, v in terms.items()})
    return layer.weight.detach()[0].clone(), layer.bias.detach()[0].clone(), history


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
    then a Gaussian blur (kernel 11, sigma 5, as in the authors' code)."""
    hm = _minmax(heatmap.detach().float())
    hm = torch.where(hm < trim, torch.zeros_like(hm), hm)
    if kernel_size > 1 and sigma > 0:
        hm = TF.gaussian_blur(
            hm[None], kernel_size=[kernel_size, kernel_size], sigma=[sigma, sigma]
        )[0]
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

    @property
    def display(self) -> torch.Tensor:
        """The trimmed and blurred heatmap of the paper's figures."""
        return display_heatmap(self.heatmap)


class PixelInvariance:
    """Pixel Invariance for any ``model`` mapping a batch of normalised images to feature vectors.

    ``mean``/``std``: the model's input normalisation (images are given in [0, 1]). For the
    self-supervised models the features are the projection-head outputs (Sec. III); for a
    classifier use e.g. its penultimate layer (:func:`without_head`).

    The constructor takes the whole parameter set (the hyper-parameters of Eq. 2, the augments,
    the seed); the calls take only the data: ``pi(image)``, ``pi.prepare(image)`` then
    ``pi.fit(data)``. :meth:`replace` gives a copy with some parameters changed (another model,
    seed or alpha: notebook 01 builds one object from its parameters cell and derives the others).
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
        center: bool = True,
        augment: AugmentConfig | None = None,
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
            augment=augment,
            batch_size=batch_size,
            device=device,
            amp=amp,
            seed=seed,
        )
        self.model = model
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self._normalizer = Normalizer(mean, std)
        self.n_augments = int(n_augments)
        self.n_components = int(n_components)
        self.surrogate = SurrogateConfig(
            alpha=alpha, lam=lam, epochs=epochs, lr=lr, reduction=reduction, center=center
        )
        self.surrogate_size = surrogate_size
        self.heatmap_reduce = heatmap_reduce
        self.augment = InvarianceAugment(augment, erase_value=tuple(float(m) for m in mean))
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

    def features(self, images01: torch.Tensor) -> torch.Tensor:
        """Model outputs [N,D] for images in [0,1] (normalised on the device, batched)."""
        return extract_features(
            lambda x: self.model(self.normalize(x)),
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
        weight, bias, history = train_surrogate(
            data.x1, data.x2, data.similarity, target.to(data.x2.device), cfg
        )
        heatmap = weights_to_heatmap(
            weight.cpu(), data.size, tuple(data.image.shape[-2:]), reduce=self.heatmap_reduce
        )
        return InvarianceResult(
            heatmap=heatmap,
            weight=weight.cpu(),
            bias=bias.cpu(),
            nmf_target=target,
            history=history,
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
    model = explainer.model
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
      with the random map too and the Spearman correlation of its heatmap with the trained one.

    The augments of one image and seed are drawn once and shared by the models with the same
    normalisation mean (the erased colour). Returns ``(frame, heatmaps)``: a long
    ``pandas.DataFrame`` with one row per (model, weights, saliency, image, seed) and columns
    ``insertion, deletion, full, masked, drop, increase, insertion_curve, deletion_curve,
    rank_corr`` (Spearman correlation of the trained and the randomised heatmap of the image, on
    every row of that model, image and seed), and a dict ``(model, weights, image,
    seed) -> InvarianceResult`` for the images in ``keep_images`` and the seeds in
    ``keep_seeds`` (None: all).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ..controls import random_saliency, randomized_model

    records: list[dict[str, object]] = []
    heatmaps: dict[tuple[str, str, str, int], InvarianceResult] = {}
    names = list(images)
    total = len(seeds) * len(models) * len(names)
    bar = tqdm(total=total, desc="Table I", disable=not progress, leave=False)
    for s in seeds:
        params: dict[tuple, AugmentParams] = {}
        for row, (model, mean, std) in models.items():
            variants = {"trained": model}
            if controls:
                variants["randomised"] = randomized_model(model, seed=int(s))
            pis = {
                w: explainer.replace(model=m, mean=mean, std=std, seed=int(s))
                for w, m in variants.items()
            }
            for k, name in enumerate(names):
                img = images[name].float()
                h, w = img.shape[-2:]
                pi_t = pis["trained"]
                key = (h, w, pi_t.augment.erase_value)
                if key not in params:
                    params[key] = pi_t.augment.sample(pi_t.n_augments, h, w, pi_t.seed)
                x2 = pi_t.augment.apply(img.to(pi_t.device), params[key])
                rmap = random_saliency((h, w), seed=10000 * int(s) + k) if controls else None
                maps = {}
                for weights, pi in pis.items():
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
                        ev = evaluate(pi, img, m, score=score)
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
                for r in records[-len(maps) * (2 if rmap is not None else 1) :]:
                    r["rank_corr"] = rc
                bar.update(1)
    bar.close()
    return pd.DataFrame.from_records(records), heatmaps


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
    order = list(dict.fromkeys(frame.image))
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


# ------------------------------------------------------------------------------------------------
# notebook 01 / Pixel Invariance: Table I, the claim, the controls and their verdicts
# ------------------------------------------------------------------------------------------------

#: Table I's rows per model: variant -> (weights, saliency) in :func:`invariance_table`'s frame
TABLE1_VARIANTS = {
    "heatmap": ("trained", "heatmap"),
    "random map": ("trained", "random map"),
    "randomised model": ("randomised", "heatmap"),
}

#: Table I of the paper (ResNet-50 models, 100 ImageNet validation images), TABLE1_METRICS order
PAPER_TABLE1 = {
    "SimCLRv2 (1x)": (0.648, 0.281, 0.562, 0.004),
    "SimCLRv2 (2x)": (0.689, 0.269, 0.448, 0.024),
    "Barlow Twins": (0.619, 0.210, 0.623, 0.084),
    "SimSiam": (0.713, 0.330, 0.413, 0.054),
}

#: the paper's claim (Sec. IV-B): the negative-pair-free models are more invariant than SimCLRv2
CLAIM_BETTER = ("SimSiam", "Barlow Twins")
CLAIM_WORSE = ("SimCLRv2 (1x)", "SimCLRv2 (2x)")
CLAIM_TEXT = "SimSiam and Barlow Twins more invariant than SimCLRv2"
CLAIM_SHORT = "SimSiam + Barlow Twins minus SimCLRv2"

#: the metrics on which a heatmap is tested against a random map
RANDOM_MAP_METRICS = ("Insertion", "Deletion")

EstimateKey = tuple[str, str, str, int | None]  # (model, variant, metric, seed or None = pooled)
PerSeed = dict[int | None, "Estimate"]  # seed (None: per-image means over the seeds) -> Estimate


def _joined(verdicts: Sequence[str], width: int) -> str:
    from ..stats import verdict_over_seeds

    return f"{' / '.join(verdicts):{width}s} -> {verdict_over_seeds(verdicts)}"


@dataclass
class Table1Report:
    """Table I with its CIs, the paper comparison, the claim and the random-map test (notebook 01).

    Built by :func:`table1_report` from :func:`invariance_table`'s frame. Every estimate is a
    mean over the photos with a 95% bootstrap CI over the photos, per seed and pooled
    (``None``: per photo the mean over the seeds). Verdicts are per seed, in ``seeds`` order:

    * ``paper_verdicts[(row, metric)]``: :func:`visxai.stats.verdict_paper` of the heatmap row
      against ``paper`` with tolerance ``paper_tol``;
    * ``claim_verdicts[metric]``: :func:`visxai.stats.verdict_claim` (``margin``) of
      :attr:`claim` (the paired difference "better minus worse", signed so that > 0 supports the
      claim), made ``uninformative`` by :func:`visxai.stats.verdict_controlled` when the same
      comparison on the randomised models (:attr:`control`) gives the same holds/fails;
    * ``overall``: the claim on a seed holds (fails) only when all four metrics hold (fail);
    * ``random_verdicts[(row, metric)]``: "the heatmap beats a random map" with the same margin
      and randomised-model control.
    """

    rows: tuple[str, ...]
    seeds: tuple[int, ...]
    margin: float
    paper_tol: float
    paper: dict[str, tuple[float, ...]]
    estimates: dict[EstimateKey, Estimate]
    paper_verdicts: dict[tuple[str, str], list[str]]
    claim: dict[str, PerSeed]
    control: dict[str, PerSeed]
    claim_verdicts: dict[str, list[str]]
    overall: list[str]
    random: dict[tuple[str, str], PerSeed]
    random_control: dict[tuple[str, str], PerSeed]
    random_verdicts: dict[tuple[str, str], list[str]]
    rank_corr: dict[str, Estimate]
    n_photos: int
    claim_text: str = CLAIM_TEXT
    claim_short: str = CLAIM_SHORT

    def table(self) -> pd.DataFrame:
        """Table I: one row per (model, map variant), ``value [lo, hi]`` per metric (pooled)."""
        import pandas as pd

        est = self.estimates
        recs = [
            {
                "model": row,
                "map": v,
                "n photos": est[(row, v, "Insertion", None)].n,
                **{m: est[(row, v, m, None)].fmt() for m in TABLE1_METRICS},
            }
            for row in self.rows
            for v in TABLE1_VARIANTS
        ]
        return pd.DataFrame(recs).set_index(["model", "map"])

    def long(self) -> pd.DataFrame:
        """The pooled estimates, one row each: model, map, metric, value, ci_lo, ci_hi, n, seeds."""
        import pandas as pd

        return pd.DataFrame(
            [
                dict(model=row, map=v, metric=m, value=e.value, ci_lo=e.lo, ci_hi=e.hi, n=e.n)
                | {"seeds": e.seeds}
                for (row, v, m, s), e in self.estimates.items()
                if s is None
            ]
        )

    def paper_text(self, per_seed: bool = True) -> str:
        """Table I against the paper: the per-seed verdicts (``per_seed``) or only their verdict."""
        from ..stats import verdict_over_seeds

        band = f"Table I vs paper (band paper +- {self.paper_tol})"
        if per_seed:
            head = f"{band}, verdicts for seeds {self.seeds}:"
            body = [
                f"  {r:14s} {m:10s} {_joined(vs, 40)}" for (r, m), vs in self.paper_verdicts.items()
            ]
        else:
            head = f"{band}, verdict over seeds {self.seeds}:"
            body = [
                f"  {r:14s} {m:10s} {verdict_over_seeds(vs)}"
                for (r, m), vs in self.paper_verdicts.items()
            ]
        return "\n".join([head, *body])

    def ci_text(self) -> str:
        """The CIs behind the claim and random-map verdicts, per seed (trained | randomised)."""
        from ..stats import verdict_claim

        def show(e: Estimate) -> str:
            return f"{e.fmt():24s} {verdict_claim(e, margin=self.margin):12s}"

        out = [f"{self.claim_short} (> {self.margin} = claim): trained | randomised models"]
        for m in TABLE1_METRICS:
            for s in self.seeds:
                out.append(
                    f"  {m:10s} seed {s}: {show(self.claim[m][s])} | {show(self.control[m][s])}"
                )
        out.append(
            f"\nheatmap minus random map (> {self.margin} = heatmap better): "
            "trained | randomised model"
        )
        for (r, m), est in self.random.items():
            ctl = self.random_control[(r, m)]
            for s in self.seeds:
                out.append(f"  {r:14s} {m:10s} seed {s}: {show(est[s])} | {show(ctl[s])}")
        return "\n".join(out)

    def claim_lines(self) -> str:
        """The claim's and the random-map test's verdicts per seed and over the seeds."""
        out = [
            f"claim: {self.claim_text} (margin {self.margin}, randomised-model control), "
            f"seeds {self.seeds}"
        ]
        out += [f"  {m:10s} {_joined(vs, 45)}" for m, vs in self.claim_verdicts.items()]
        out.append(f"  {'all four':10s} {_joined(self.overall, 45)}")
        out.append(
            f"\nheatmap beats a random map (margin {self.margin}, randomised-model control), "
            f"seeds {self.seeds}"
        )
        out += [
            f"  {r:14s} {m:10s} {_joined(vs, 45)}" for (r, m), vs in self.random_verdicts.items()
        ]
        return "\n".join(out)

    def verdict_table(self) -> dict[str, list[str]]:
        """Every per-seed holds/fails verdict, for :func:`visxai.scorecard.stability_table`."""
        table = {f"claim on {m}": v for m, v in self.claim_verdicts.items()}
        table["claim on all four metrics"] = self.overall
        table.update(
            {
                f"{r} heatmap beats random map on {m}": v
                for (r, m), v in self.random_verdicts.items()
            }
        )
        return table

    def stability_text(self) -> str:
        """The closing cell: the stability table, the verdict counts, Table I vs the paper."""
        from ..scorecard import stability_table

        stab = stability_table(self.verdict_table(), seeds=self.seeds)
        counts = stab.verdict.value_counts().to_dict()
        return (
            f"{stab.to_string()}\n\nfinal verdicts: {counts}\n\n{self.paper_text(per_seed=False)}"
        )

    def plot_table1(self) -> Figure:
        """Table I as error bars: per metric, every model's heatmap, random map and randomised
        model (pooled estimates, 95% CI over photos)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharey=True)
        colors = {"heatmap": "C3", "random map": "C7", "randomised model": "C0"}
        for ax, metric in zip(axes, TABLE1_METRICS):
            for k, variant in enumerate(TABLE1_VARIANTS):
                for i, row in enumerate(self.rows):
                    e = self.estimates[(row, variant, metric, None)]
                    ax.errorbar(
                        e.value,
                        i + 0.22 * (k - 1),
                        xerr=[[e.value - e.lo], [e.hi - e.value]],
                        fmt="o",
                        ms=4,
                        color=colors[variant],
                        label=variant if i == 0 else None,
                        capsize=2,
                    )
            arrow = "higher" if TABLE1_METRICS[metric][1] else "lower"
            ax.set_title(f"{metric} ({arrow} = better)", fontsize=9)
            ax.set_yticks(range(len(self.rows)), list(self.rows))
        axes[0].invert_yaxis()
        axes[-1].legend(fontsize=7, loc="lower right")
        fig.suptitle(
            f"Table I: mean over {self.n_photos} photos and seeds {self.seeds}, "
            "95% bootstrap CI over photos",
            fontsize=10,
        )
        fig.tight_layout()
        return fig

    def plot_claim(self) -> Figure:
        """Left: the claim's paired difference per metric, per seed and pooled, trained and
        randomised (the control); right: heatmap minus random map, pooled; dashed: ``margin``."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        labels = list(TABLE1_METRICS)
        for k, (name, src) in enumerate(
            (("trained", self.claim), ("randomised (control)", self.control))
        ):
            for j, s in enumerate((*self.seeds, None)):
                xs = np.arange(len(labels)) + 0.15 * (j - 1.5) + 0.04 * k
                e = [src[m][s] for m in labels]
                axes[0].errorbar(
                    xs,
                    [x.value for x in e],
                    yerr=[[x.value - x.lo for x in e], [x.hi - x.value for x in e]],
                    fmt="o" if k == 0 else "s",
                    ms=4,
                    capsize=2,
                    color=f"C{j}" if s is not None else "k",
                    alpha=1.0 if k == 0 else 0.45,
                    label=f"{name}, {'seed ' + str(s) if s is not None else 'seeds pooled'}",
                )
        axes[0].axhline(self.margin, color="grey", lw=0.8, ls="--")
        axes[0].axhline(0, color="grey", lw=0.5)
        axes[0].set_xticks(range(len(labels)), labels)
        axes[0].set_ylabel("SimSiam+BT better than SimCLRv2")
        axes[0].set_title(
            "claim: paired difference, 95% CI over photos (dashed: margin)", fontsize=9
        )
        axes[0].legend(fontsize=5.5, ncol=2)
        keys = list(self.random)
        e = [self.random[k][None] for k in keys]
        axes[1].errorbar(
            range(len(keys)),
            [x.value for x in e],
            yerr=[[x.value - x.lo for x in e], [x.hi - x.value for x in e]],
            fmt="o",
            capsize=2,
            color="C3",
        )
        axes[1].axhline(self.margin, color="grey", lw=0.8, ls="--")
        axes[1].axhline(0, color="grey", lw=0.5)
        axes[1].set_xticks(
            range(len(keys)), [f"{r}\n{m}" for r, m in keys], fontsize=6, rotation=45, ha="right"
        )
        axes[1].set_title("heatmap better than a random map (seeds pooled), 95% CI", fontsize=9)
        fig.tight_layout()
        return fig

    def add_to(self, scorecard: Scorecard, setting: str) -> None:
        """Add notebook 01's scorecard rows; ``setting`` describes the run (profile, B, n)."""
        from ..stats import verdict_claim, verdict_over_seeds

        sc, base, est = scorecard, setting, self.estimates
        for row in self.rows:
            for k, metric in enumerate(TABLE1_METRICS):
                sc.add(
                    row,
                    f"Table I {metric}",
                    self.paper[row][k],
                    est[(row, "heatmap", metric, None)],
                    f"{base}; agrees = CI within paper +- {self.paper_tol}",
                    verdict_over_seeds(self.paper_verdicts[(row, metric)]),
                )
        item = f"claim: {self.claim_text}"
        for metric in TABLE1_METRICS:
            ctl = ", ".join(
                verdict_claim(self.control[metric][s], margin=self.margin) for s in self.seeds
            )
            sc.add(
                item,
                f"{metric} (paired difference, > 0 = claim)",
                "holds (Table I)",
                self.claim[metric][None],
                f"{base}, paired; margin {self.margin}; randomised-model control per seed: {ctl}",
                verdict_over_seeds(self.claim_verdicts[metric]),
            )
            sc.add(
                "control: the same claim on randomised models",
                f"{metric} (paired difference)",
                "-",
                self.control[metric][None],
                f"{base}, paired; re-initialised weights (Adebayo et al. 2018)",
                "observed",
            )
        sc.add(
            item,
            "all four metrics",
            "holds (Table I)",
            "per seed: " + ", ".join(self.overall),
            f"{base}; holds/fails on a seed only when all four metrics do",
            verdict_over_seeds(self.overall),
        )
        for (row, metric), vs in self.random_verdicts.items():
            sc.add(
                f"control: {row} heatmap beats a random map",
                f"{metric} AUC difference (> 0 = heatmap better)",
                "-",
                self.random[(row, metric)][None],
                f"{base}, paired; margin {self.margin}; randomised-model control",
                verdict_over_seeds(vs),
            )
        for row, e in self.rank_corr.items():
            sc.add(
                f"control: {row} vs its randomised copy",
                "Spearman of the two heatmaps",
                "-",
                e,
                f"{base}; 1 = the heatmap ignores the weights",
                "observed",
            )


def table1_report(
    frame: pd.DataFrame,
    rows: Iterable[str],
    seeds: Sequence[int],
    *,
    margin: float = 0.01,
    paper_tol: float = 0.05,
    paper: dict[str, tuple[float, ...]] | None = None,
    better: Sequence[str] = CLAIM_BETTER,
    worse: Sequence[str] = CLAIM_WORSE,
) -> Table1Report:
    """Table I, the paper comparison, the claim and the random-map test from ``frame``.

    ``frame``: :func:`invariance_table`'s output with both controls; ``rows``: the models (Table
    I's rows, in order; e.g. the keys of the case's ``models``); ``seeds``: the seeds of the
    frame, in order; ``paper``: row -> the paper's four Table I values (default
    :data:`PAPER_TABLE1`). See :class:`Table1Report` for the verdicts. Deterministic: every
    bootstrap is seeded.
    """
    from ..stats import estimate, verdict_claim, verdict_controlled, verdict_paper

    rows, seeds = tuple(rows), tuple(int(s) for s in seeds)
    paper = PAPER_TABLE1 if paper is None else paper
    all_seeds: tuple[int | None, ...] = (None, *seeds)
    est: dict[EstimateKey, Estimate] = {}
    for row in rows:
        for variant, (weights, saliency) in TABLE1_VARIANTS.items():
            for metric, (col, _) in TABLE1_METRICS.items():
                for s in all_seeds:
                    vals = per_image(frame, row, col, weights, saliency, seed=s)
                    n = len(seeds) if s is None else 1
                    est[(row, variant, metric, s)] = estimate(vals.to_numpy(), seeds=n)
    paper_verdicts = {
        (row, metric): [
            verdict_paper(est[(row, "heatmap", metric, s)], paper[row][k], paper_tol) for s in seeds
        ]
        for row in rows
        for k, metric in enumerate(TABLE1_METRICS)
    }

    def controlled(trained: PerSeed, randomised: PerSeed) -> list[str]:
        return [
            verdict_controlled(
                verdict_claim(trained[s], margin=margin),
                verdict_claim(randomised[s], margin=margin),
            )
            for s in seeds
        ]

    claim, control, claim_verdicts = {}, {}, {}
    for metric in TABLE1_METRICS:
        claim[metric] = {
            s: claim_difference(frame, better, worse, metric, seed=s) for s in all_seeds
        }
        control[metric] = {
            s: claim_difference(frame, better, worse, metric, weights="randomised", seed=s)
            for s in all_seeds
        }
        claim_verdicts[metric] = controlled(claim[metric], control[metric])
    overall = [v[0] if len(set(v)) == 1 else "inconclusive" for v in zip(*claim_verdicts.values())]

    random, random_control, random_verdicts = {}, {}, {}
    for row in rows:
        for metric in RANDOM_MAP_METRICS:
            key = (row, metric)
            random[key] = {
                s: claim_difference(frame, row, None, metric, seed=s, against="random map")
                for s in all_seeds
            }
            random_control[key] = {
                s: claim_difference(
                    frame, row, None, metric, weights="randomised", seed=s, against="random map"
                )
                for s in all_seeds
            }
            random_verdicts[key] = controlled(random[key], random_control[key])

    rank_corr = {}
    for row in rows:
        sel = frame[
            (frame.model == row) & (frame.weights == "trained") & (frame.saliency == "heatmap")
        ]
        per_photo = sel.groupby("image", sort=False).rank_corr.mean().to_numpy()
        rank_corr[row] = estimate(per_photo, seeds=len(seeds))
    return Table1Report(
        rows=rows,
        seeds=seeds,
        margin=margin,
        paper_tol=paper_tol,
        paper=dict(paper),
        estimates=est,
        paper_verdicts=paper_verdicts,
        claim=claim,
        control=control,
        claim_verdicts=claim_verdicts,
        overall=overall,
        random=random,
        random_control=random_control,
        random_verdicts=random_verdicts,
        rank_corr=rank_corr,
        n_photos=int(frame.image.nunique()),
    )


def mean_curve(
    frame: pd.DataFrame,
    model: str,
    curve: str,
    saliency: str = "heatmap",
    weights: str = "trained",
) -> np.ndarray:
    """The mean over photos and seeds of ``curve`` (``"insertion_curve"``, ``"deletion_curve"``) of
    one model's rows of :func:`invariance_table`'s frame."""
    sel = frame[(frame.model == model) & (frame.weights == weights) & (frame.saliency == saliency)]
    if sel.empty:
        raise ValueError(f"no rows for model={model}, weights={weights}, saliency={saliency}")
    return np.stack(sel[curve].to_list()).mean(0)


# ------------------------------------------------------------------------------------------------
# notebook 01 / Pixel Invariance: the case (models and photos of a profile) and the run
# ------------------------------------------------------------------------------------------------

#: notebook 01's profiles (configuration only). offline: the four objectives trained by the
#: project on ONE small ResNet (2x = twice the width) on 32x32 crops of the offline photos, plus
#: the supervised EfficientNet-Lite0 (Fig. 2 only); B=500 to fit 3 seeds x 2 models x 17 photos
#: into the CPU budget. paper: the authors' ResNet-50 checkpoints, 224x224 images, a 64x64
#: surrogate (authors' notebook) and the notebook's B. ``augments=None``: the notebook's B.
#: ``ssl_models``: Table I's rows -> :func:`visxai.models.load_model` names.
INVARIANCE_PROFILES: dict[str, dict[str, object]] = {
    "offline": dict(
        ssl_models={
            "SimCLRv2 (1x)": "ssl-simclrv2-1x",
            "SimCLRv2 (2x)": "ssl-simclrv2-2x",
            "Barlow Twins": "ssl-barlowtwins",
            "SimSiam": "ssl-simsiam",
        },
        ssl_size=32,
        surrogate_size=None,
        augments=500,
        classifier="efficientnet-lite0",
        classifier_size=64,
        classifier_photos=2,
        classifier_augments=250,
        description="project-trained small ResNet",
    ),
    "paper": dict(
        ssl_models={
            "SimCLRv2 (1x)": "simclrv2-r50-1x",
            "SimCLRv2 (2x)": "simclrv2-r50-2x",
            "Barlow Twins": "barlowtwins-r50",
            "SimSiam": "simsiam-r50",
        },
        ssl_size=224,
        surrogate_size=64,
        augments=None,
        classifier=None,
        classifier_size=224,
        classifier_photos=0,
        classifier_augments=None,
        description="authors' ResNet-50 checkpoint",
    ),
}

#: the row name of the supervised classifier of Fig. 2
CLASSIFIER_ROW = "EfficientNet-Lite0 (supervised)"


@dataclass
class InvarianceCase:
    """The models and photos of notebook 01 for one profile (see :func:`invariance_case`).

    ``models``: Table I's rows -> (projection-head model, mean, std); ``images``: every photo
    -> [3, size, size] in [0, 1] (the Fig. 2 photos, ``shown``, first); ``classifier``: the
    supervised model of Fig. 2's last row (penultimate features, :func:`without_head`) with its
    own ``classifier_images`` and ``classifier_augments`` (empty in the paper profile).
    """

    profile: str
    models: dict[str, ModelEntry]
    images: dict[str, torch.Tensor]
    shown: tuple[str, ...]
    size: int
    surrogate_size: int | None
    n_augments: int
    description: str
    classifier: dict[str, ModelEntry] = field(default_factory=dict)
    classifier_images: dict[str, torch.Tensor] = field(default_factory=dict)
    classifier_size: int = 0
    classifier_augments: int = 0

    def summary(self, seeds: Sequence[int]) -> str:
        """What the run evaluates: models, size, photos, B, seeds (and the Fig. 2 classifier)."""
        out = [
            f"{len(self.models)} SSL models at {self.size}x{self.size}, {len(self.images)} photos, "
            f"B={self.n_augments}, seeds {tuple(seeds)}"
        ]
        out += [
            f"{row}: {self.classifier_size}x{self.classifier_size}, "
            f"{len(self.classifier_images)} photos, B={self.classifier_augments}, "
            f"seed {seeds[0]} (Fig. 2 only)"
            for row in self.classifier
        ]
        return "\n".join(out)

    def setting(self, seeds: Sequence[int]) -> str:
        """The scorecard's setting column for a run over ``seeds``."""
        return (
            f"{self.profile}: {self.description}, {self.size}px, {len(self.images)} photos, "
            f"B={self.n_augments}, seeds {tuple(seeds)}; 95% CI: bootstrap over photos"
        )


def invariance_case(
    profile: str = "offline", n_augments: int = 1000, device: str | torch.device = "cpu"
) -> InvarianceCase:
    """Notebook 01's models and photos for ``profile`` (:data:`INVARIANCE_PROFILES`).

    All 17 offline photos: the 6 held out of the SSL training (``EVAL_PHOTOS``, shown in Fig. 2)
    first, then the 11 whose crops were trained on. ``n_augments``: B where the profile does not
    fix it (paper). A missing paper checkpoint raises ``ArtefactMissing`` naming
    ``python -m visxai fetch ...``.
    """
    from ..data import list_photos
    from ..models import load_model, ssl_miniatures

    if profile not in INVARIANCE_PROFILES:
        raise ValueError(f"profile must be one of {list(INVARIANCE_PROFILES)}, got {profile!r}")
    cfg = INVARIANCE_PROFILES[profile]
    dev = pick_device(device)
    shown = tuple(ssl_miniatures.EVAL_PHOTOS)
    photos = list(shown) + [n for n in list_photos() if n not in shown]
    models: dict[str, ModelEntry] = {}
    for row, name in cfg["ssl_models"].items():  # type: ignore[attr-defined]
        lm = load_model(name, profile=profile, device=dev, progress=False)
        models[row] = (lm.model, tuple(lm.mean), tuple(lm.std))
    size = int(cfg["ssl_size"])  # type: ignore[call-overload]
    images = {name: ssl_miniatures.photo_tensor(name, size) for name in photos}
    case = InvarianceCase(
        profile=profile,
        models=models,
        images=images,
        shown=shown,
        size=size,
        surrogate_size=cfg["surrogate_size"],  # type: ignore[arg-type]
        n_augments=int(cfg["augments"] or n_augments),  # type: ignore[call-overload]
        description=str(cfg["description"]),
    )
    if cfg["classifier"]:
        lm = load_model(str(cfg["classifier"]), profile=profile, device=dev)
        net = without_head(lm.model, "_fc").to(dev)
        case.classifier = {CLASSIFIER_ROW: (net, tuple(lm.mean), tuple(lm.std))}
        case.classifier_size = int(cfg["classifier_size"])  # type: ignore[call-overload]
        case.classifier_images = {
            n: ssl_miniatures.photo_tensor(n, case.classifier_size)
            for n in shown[: int(cfg["classifier_photos"])]  # type: ignore[call-overload]
        }
        case.classifier_augments = int(cfg["classifier_augments"])  # type: ignore[call-overload]
    return case


def run_table1(
    explainer: PixelInvariance,
    case: InvarianceCase,
    seeds: Sequence[int],
    n_transforms: int = 10,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str, int], InvarianceResult]]:
    """Notebook 01's run: Table I's frame and Fig. 2's heatmaps.

    :func:`invariance_table` over the case's SSL models and photos for every seed with both
    controls, keeping the heatmaps of the Fig. 2 photos at the first seed; then, where the case
    has one, the supervised classifier on its own photos with its own B, first seed only,
    without controls: its heatmaps join the dict (Fig. 2's last row), its rows are not in the
    frame (two photos and one seed are too few for a CI).
    """
    seeds = tuple(int(s) for s in seeds)
    frame, heatmaps = invariance_table(
        explainer,
        case.models,
        case.images,
        seeds=seeds,
        n_transforms=n_transforms,
        keep_images=case.shown,
        keep_seeds=seeds[:1],
        progress=progress,
    )
    if case.classifier:
        _, cls_maps = invariance_table(
            explainer.replace(n_augments=case.classifier_augments),
            case.classifier,
            case.classifier_images,
            seeds=seeds[:1],
            n_transforms=n_transforms,
            controls=False,
            progress=progress,
        )
        heatmaps.update(cls_maps)
    return frame, heatmaps
