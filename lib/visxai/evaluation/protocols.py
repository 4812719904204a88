"""The quantitative protocols of notebook 02 / AGF (Gur et al., AAAI 2021): one code path for the
notebook and torchrun.

Glue between the explanation methods (:mod:`visxai.methods`) and the metrics
(:mod:`visxai.metrics.negative_perturbation`, :mod:`visxai.metrics.segmentation`): compute the
maps for a batch of images in chunks, then score them. The notebook (offline miniatures) and
:mod:`visxai.distributed` (paper scale) call the same functions, so the two profiles differ only
in configuration.

* :func:`explain_batched`: maps ``[N,H,W]`` for ``explain(model, normalize(x), target, method)``
  in chunks (``visxai.device.batched_map``), or for any ``explain_fn(model, x, target)``;
* :func:`negative_perturbation_eval`: Table 2 / Fig. 3 for one method, predicted or target class;
* :func:`segmentation_eval`: Table 3a (one map per image, for its top class, compared with the
  foreground mask);
* :func:`multilabel_segmentation_eval`: Table 3b as the authors evaluate it (a map for every
  predicted class of an image, one softmax over the classes, scored against the per-pixel class
  mask: :func:`visxai.metrics.segmentation.multilabel_scores`);
* :func:`timed`: wall time per image of an evaluation, reported next to the tables;
* verdicts with uncertainty (on :mod:`visxai.stats`): :func:`pooled_estimate` and
  :func:`paired_pooled_difference` (a pooled ratio such as Table 3's pixel accuracy, bootstrapped
  over images), :func:`compare_paired` ("A beats each of B, C, ... on the same images", one
  paired bootstrap per competitor) and :func:`combine_claims` ("A beats all of them": holds only
  if every comparison holds, fails if any fails).

Written by hand: a few loops around the library's methods and metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..device import batched_map
from ..metrics.negative_perturbation import (
    DEFAULT_FRACTIONS,
    PerturbationCurve,
    negative_perturbation,
)
from ..metrics.segmentation import SegmentationScores, multilabel_scores, segmentation_scores

__all__ = [
    "ExplainFn",
    "method_fn",
    "explain_batched",
    "explain_predicted_and_target",
    "negative_perturbation_both",
    "predict",
    "negative_perturbation_eval",
    "multilabel_segmentation_eval",
    "segmentation_eval",
    "timed",
    "pooled_estimate",
    "paired_pooled_difference",
    "Comparison",
    "compare_paired",
    "combine_claims",
]

ExplainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def method_fn(method: str, **kwargs: Any) -> ExplainFn:
    """``explain_fn`` for a method of :func:`visxai.methods.explain.explain` (``kwargs`` passed
    on)."""
    from ..methods.explain import explain

    def fn(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return explain(model, x, target, method=method, **kwargs)

    fn.__name__ = f"explain_{method}"
    return fn


def explain_batched(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    explain_fn: ExplainFn | str,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    progress: bool | str = False,
) -> torch.Tensor:
    """Explanation maps ``[N,H,W]`` (CPU, float32) of ``images`` in [0,1] for ``targets``
    ``[N]``."""
    fn = method_fn(explain_fn) if isinstance(explain_fn, str) else explain_fn
    norm = normalize if normalize is not None else (lambda t: t)
    targets = torch.as_tensor(targets).long()
    if len(targets) != len(images):
        raise ValueError(f"need one target per image ({len(images)}), got {len(targets)}")

    def chunk(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        maps = fn(model, norm(x), t)
        if maps.dim() != 3 or maps.shape[0] != len(x):
            raise ValueError(f"explain_fn must return [B,H,W], got {tuple(maps.shape)}")
        return maps.detach().float()

    dev = device if device is not None else next(model.parameters()).device
    return batched_map(chunk, images, targets, batch_size=batch_size, device=dev, progress=progress)


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, normalize: Callable | None = None, batch_size: int = 256
) -> torch.Tensor:
    """Logits ``[N,K]`` of ``model`` on ``images`` in [0,1] (CPU)."""
    norm = normalize if normalize is not None else (lambda t: t)
    dev = next(model.parameters()).device
    return batched_map(lambda x: model(norm(x)), images, batch_size=batch_size, device=dev)


def negative_perturbation_eval(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    explain_fn: ExplainFn | str,
    explain_class: str | torch.Tensor = "predicted",
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    fractions=DEFAULT_FRACTIONS,
    progress: bool | str = False,
    test_model: nn.Module | None = None,
) -> tuple[PerturbationCurve, torch.Tensor]:
    """Table 2 for one method: explain the ``"predicted"`` or ``"target"`` (ground-truth) class,
    or the classes given as a tensor, then run the negative perturbation test against ``labels``.
    ``test_model``: the model the test's forward passes run (default ``model``; e.g. its
    :func:`visxai.models.inference.inference_copy`, the same function). Returns
    ``(curve, maps)``."""
    if isinstance(explain_class, torch.Tensor):
        targets = explain_class.long()
    elif explain_class == "predicted":
        targets = predict(model, images, normalize).argmax(1)
    elif explain_class == "target":
        targets = torch.as_tensor(labels).long()
    else:
        raise ValueError(
            f"explain_class must be 'predicted', 'target' or a tensor, got {explain_class!r}"
        )
    maps = explain_batched(
        model, images, targets, explain_fn, normalize, batch_size, progress=progress
    )
    curve = negative_perturbation(
        model if test_model is None else test_model,
        images, maps, labels, fractions=fractions, normalize=normalize, batch_size=batch_size,
    )  # fmt: skip
    return curve, maps


def explain_predicted_and_target(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    explain_fn: ExplainFn | str,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    progress: bool | str = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maps for the predicted and for the ground-truth class: ``(pred, maps_pred, maps_target)``.

    Where the prediction is right the two explanations are the same call, so the target maps
    are computed only for the misclassified images and copied elsewhere (same result, less work).
    """
    pred = predict(model, images, normalize).argmax(1)
    labels = torch.as_tensor(labels).long()
    maps_pred = explain_batched(
        model, images, pred, explain_fn, normalize, batch_size, progress=progress
    )
    maps_target = maps_pred.clone()
    wrong = torch.nonzero(pred != labels).flatten()
    if len(wrong):
        maps_target[wrong] = explain_batched(
            model, images[wrong], labels[wrong], explain_fn, normalize, batch_size
        )
    return pred, maps_pred, maps_target


def negative_perturbation_both(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    explain_fn: ExplainFn | str,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    fractions=DEFAULT_FRACTIONS,
    progress: bool | str = False,
) -> tuple[PerturbationCurve, PerturbationCurve]:
    """Table 2's two tests at once: ``(curve for the predicted class, curve for the target class)``.

    On correctly classified images the two maps are the same call, hence the same perturbed
    images and the same per-image results; only the misclassified images are explained and
    perturbed a second time (identical numbers, about half the work).
    """
    pred, maps_p, maps_t = explain_predicted_and_target(
        model, images, labels, explain_fn, normalize, batch_size, progress
    )
    labels = torch.as_tensor(labels).long()
    cp = negative_perturbation(
        model,
        images,
        maps_p,
        labels,
        fractions=fractions,
        normalize=normalize,
        batch_size=batch_size,
    )
    correct, preds = cp.correct.copy(), cp.predictions.copy()
    wrong = torch.nonzero(pred.cpu() != labels.cpu()).flatten()
    if len(wrong):
        cw = negative_perturbation(
            model,
            images[wrong],
            maps_t[wrong],
            labels[wrong],
            fractions=fractions,
            normalize=normalize,
            batch_size=batch_size,
        )
        correct[wrong.numpy()] = cw.correct
        preds[wrong.numpy()] = cw.predictions
    return cp, PerturbationCurve(cp.fractions.copy(), correct, preds)


def segmentation_eval(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    masks: torch.Tensor,
    explain_fn: ExplainFn | str,
    signed: bool | None = None,
    method: str | None = None,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    progress: bool | str = False,
) -> tuple[SegmentationScores, torch.Tensor]:
    """Table 3 for one method: maps for ``targets``, scored against ``masks`` ``[N,H,W]``.

    ``signed`` defaults to the registry's ``signed`` of ``method`` (or of ``explain_fn`` if it is
    a name): :func:`visxai.methods.registry.get_method`.
    """
    signed = _signed_of(signed, method, explain_fn)
    maps = explain_batched(
        model, images, targets, explain_fn, normalize, batch_size, progress=progress
    )
    return segmentation_scores(maps, masks, signed=signed), maps


def _signed_of(signed: bool | None, method: str | None, explain_fn: Any) -> bool:
    if signed is not None:
        return signed
    name = method or (explain_fn if isinstance(explain_fn, str) else None)
    if name is None:
        raise ValueError("give signed=True/False or the method name")
    from ..methods.registry import get_method

    return get_method(name).signed


def multilabel_segmentation_eval(
    model: nn.Module,
    images: torch.Tensor,
    present: torch.Tensor,
    label_masks: torch.Tensor,
    explain_fn: ExplainFn | str,
    signed: bool | None = None,
    method: str | None = None,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 32,
    ignore_index: int | None = 255,
    progress: bool | str = False,
) -> tuple[SegmentationScores, torch.Tensor]:
    """Table 3b for one method, as the authors evaluate it (``generate_segmentation.py``,
    ``segmentation_eval_from_hdf5.py``): every class of ``present [N, K]`` (the predicted labels,
    sigmoid > 0.5) of every image is explained; the maps go through
    :func:`visxai.metrics.segmentation.multilabel_scores` against ``label_masks [N, H, W]`` (0
    background, ``c + 1`` class c, ``ignore_index`` unlabelled). Returns per-image scores and
    the maps ``[P, H, W]`` of the explained (image, class) pairs in ``torch.nonzero(present)``
    order."""
    signed = _signed_of(signed, method, explain_fn)
    present = torch.as_tensor(present).bool()
    if present.dim() != 2 or len(present) != len(images):
        raise ValueError(
            f"present must be [N, K] with one row per image ({len(images)}), got "
            f"{tuple(present.shape)}"
        )
    idx, cls = torch.nonzero(present, as_tuple=True)
    if len(idx):
        maps = explain_batched(
            model, images[idx], cls, explain_fn, normalize, batch_size, progress=progress
        )
    else:
        maps = torch.zeros(0, *images.shape[2:])
    return multilabel_scores(maps, present, label_masks, signed, ignore_index), maps


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _ratio_stat(num: np.ndarray, den: np.ndarray, scale: float) -> Callable[[np.ndarray], float]:
    def stat(idx: np.ndarray) -> float:
        i = idx.astype(np.int64)
        return scale * float(num[i].sum()) / max(float(den[i].sum()), 1e-12)

    return stat


def pooled_estimate(
    num, den, *, scale: float = 100.0, unit: str = "images", seeds: int = 1, seed: int = 0
):
    """``scale * sum(num) / sum(den)`` (e.g. correct / labelled pixels) with a 95% CI from a
    bootstrap over the units (images): each resample draws images with replacement and pools
    their counts, so large images weigh more, as in the pooled statistic itself."""
    from ..stats import estimate

    num, den = np.asarray(num, dtype=float).reshape(-1), np.asarray(den, dtype=float).reshape(-1)
    if num.shape != den.shape or num.size == 0:
        raise ValueError(f"num and den need one value per unit, got {num.shape} and {den.shape}")
    return estimate(
        np.arange(num.size),
        statistic=_ratio_stat(num, den, scale),
        unit=unit,
        seeds=seeds,
        seed=seed,
    )


def paired_pooled_difference(
    num_a,
    den_a,
    num_b,
    den_b,
    *,
    scale: float = 100.0,
    unit: str = "images",
    seeds: int = 1,
    seed: int = 0,
):
    """Pooled ratio of ``a`` minus that of ``b`` on the same units, with a paired bootstrap CI
    (one resample of the images serves both)."""
    from ..stats import estimate

    arrs = [np.asarray(v, dtype=float).reshape(-1) for v in (num_a, den_a, num_b, den_b)]
    if len({a.shape for a in arrs}) != 1 or arrs[0].size == 0:
        raise ValueError(
            "paired_pooled_difference needs one value per unit in all four, got "
            f"{[a.shape for a in arrs]}"
        )
    fa, fb = _ratio_stat(arrs[0], arrs[1], scale), _ratio_stat(arrs[2], arrs[3], scale)
    return estimate(
        np.arange(arrs[0].size),
        statistic=lambda i: fa(i) - fb(i),
        unit=unit,
        seeds=seeds,
        seed=seed,
    )


@dataclass(frozen=True)
class Comparison:
    """``reference - other`` on the same units, with the verdict on "reference is better"."""

    other: str
    diff: Any  # visxai.stats.Estimate
    verdict: str


def compare_paired(
    reference: np.ndarray | Iterable[float],
    others: Mapping[str, np.ndarray],
    *,
    greater: bool = True,
    margin: float = 0.0,
    unit: str = "images",
    seeds: int = 1,
) -> dict[str, Comparison]:
    """ "``reference`` beats each of ``others``": a paired bootstrap of ``reference - other`` per
    competitor (:func:`visxai.stats.paired_difference`), judged by
    :func:`visxai.stats.verdict_claim`.

    Each competitor's values are paired with the **first** ``len(other)`` reference values (the
    competitors that are run on fewer images use the first ``n`` of the same image list).
    ``greater=False`` claims that the reference is lower (e.g. a correlation).
    """
    from ..stats import paired_difference, verdict_claim

    ref = np.asarray(
        list(reference) if not isinstance(reference, np.ndarray) else reference, dtype=float
    )
    out = {}
    for name, vals in others.items():
        vals = np.asarray(vals, dtype=float).reshape(-1)
        if len(vals) > len(ref):
            raise ValueError(f"{name}: {len(vals)} values but the reference has only {len(ref)}")
        d = paired_difference(ref[: len(vals)], vals, unit=unit, seeds=seeds)
        out[name] = Comparison(name, d, verdict_claim(d, greater=greater, margin=margin))
    return out


def combine_claims(verdicts: Iterable[str]) -> str:
    """One verdict for "all of these claims": ``holds`` if every one holds, ``fails`` if at
    least one fails (its CI decides against it), otherwise ``inconclusive``; ``not run`` if
    empty."""
    v = list(verdicts)
    if not v:
        return "not run"
    if any(x == "fails" for x in v):
        return "fails"
    if all(x == "holds" for x in v):
        return "holds"
    return "inconclusive"
