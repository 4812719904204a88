"""Segmentation test of explanations (notebook 02 / AGF: Gur et al., AAAI 2021, Table 3 and
Fig. 4).

An explanation is turned into a foreground/background segmentation and compared with a
ground-truth mask by pixel accuracy and mean average precision (mAP), as in the benchmark of
Nam et al. (2019) used by the paper. The caller says whether a map is signed (a fact of the
method: notebook 02 passes ``visxai.methods.registry.Method.signed``):

* **signed maps** (Gradient SHAP, LRP-alpha-beta, RAP, CLRP, SGLRP, AGF): the positive part is
  the object, i.e. foreground = ``map > 0``;
* **unsigned maps** (SmoothGrad, FullGrad, Grad-CAM, LRP, Meaningful Perturbation, and
  Integrated Gradients, whose maps are ``|IG|`` as in the authors' ``imagenet_seg_eval.py``):
  thresholded at their mean, i.e. foreground = ``map > mean(map)`` (the authors subtract the
  mean and then use the same ``> 0`` rule, which is the same thing);
* pixel accuracy is accumulated over the whole set (correct pixels / labelled pixels, ignoring
  pixels marked ``ignore_index`` such as VOC's 255 boundary);
* AP per image follows the authors' ``utils/metrices.py``: scikit-learn's
  ``average_precision_score`` of the one-hot (background, foreground) ground truth against the
  two-channel prediction, flattened together. By default the prediction is the binary
  segmentation, as in their code (``ap_scores="binary"``); ``ap_scores="continuous"`` scores the
  foreground channel with the (positive part of the) map and the background with its
  complement instead. mAP is the mean over images.

Table 3b as the authors evaluate it (their ``generate_segmentation.py`` and
``segmentation_eval_from_hdf5.py``, shirgur/AGFVisualization) is a different, 21-way protocol:
:func:`authors_multilabel_vis` (:func:`multilabel_vis` given the predicted classes) builds one
map per predicted class (sigmoid > 0.5), each divided
by its max (unsigned maps: after subtracting their mean), in channel ``class + 1`` of a
``[B, K+1, H, W]`` map whose channel 0 (background) is 0; :func:`softmax_map_scores` clamps it at
0, subtracts 0.1 on the channels of predicted-absent classes, takes the softmax over the ``K+1``
channels and scores it per image: AP of the one-hot ``K+1``-way ground truth against the
softmax, flattened together (continuous AP), and pixel accuracy of the argmax. The authors'
meter multiplies each image's correct-pixel count by its labelled count; we pool correct /
labelled pixels (a percentage, as the paper reports).

Written by hand around scikit-learn (thresholding and accumulation only, a few lines), because
the rule for signed vs unsigned maps is specific to this benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score

__all__ = [
    "segment",
    "SegmentationScores",
    "segmentation_scores",
    "authors_multilabel_vis",
    "multilabel_vis",
    "softmax_map",
    "softmax_map_scores",
    "multilabel_scores",
]


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def segment(maps: torch.Tensor, signed: bool) -> torch.Tensor:
    """Binary foreground ``[B,H,W]``: ``maps > 0`` if ``signed``, else ``maps > per-image mean``."""
    maps = _as_tensor(maps).float()
    if maps.dim() != 3:
        raise ValueError(f"maps must be [B,H,W], got {tuple(maps.shape)}")
    if signed:
        return maps > 0
    return maps > maps.mean(dim=(1, 2), keepdim=True)


@dataclass
class SegmentationScores:
    """Per-image ``correct`` and ``labeled`` pixel counts and ``ap`` (all ``[N]``)."""

    correct: np.ndarray
    labeled: np.ndarray
    ap: np.ndarray

    @property
    def pixel_accuracy(self) -> float:
        """Correct / labelled pixels over the whole set, in percent."""
        return 100.0 * float(self.correct.sum()) / max(float(self.labeled.sum()), 1.0)

    @property
    def image_accuracy(self) -> np.ndarray:
        """Per-image pixel accuracy in percent ``[N]`` (equal to the pooled one only if every image
        has the same number of labelled pixels; bootstrap the pooled ratio with
        :func:`visxai.evaluation.pooled_estimate`)."""
        return 100.0 * self.correct / np.maximum(self.labeled, 1)

    @property
    def mean_ap(self) -> float:
        """Mean over images of the per-image AP, in percent."""
        return 100.0 * float(np.mean(self.ap)) if len(self.ap) else float("nan")

    def __len__(self) -> int:
        return len(self.ap)

    @staticmethod
    def concat(parts: Sequence[SegmentationScores]) -> SegmentationScores:
        return SegmentationScores(
            np.concatenate([p.correct for p in parts]),
            np.concatenate([p.labeled for p in parts]),
            np.concatenate([p.ap for p in parts]),
        )


def segmentation_scores(
    maps: torch.Tensor | np.ndarray,
    masks: torch.Tensor | np.ndarray,
    signed: bool,
    ap_scores: str = "binary",
    ignore_index: int | None = 255,
) -> SegmentationScores:
    """Pixel accuracy counts and AP of explanation ``maps`` ``[B,H,W]`` vs ground-truth ``masks``.

    ``masks`` is ``[B,H,W]`` with 1 = object, 0 = background and ``ignore_index`` for unlabelled
    pixels. See the module docstring for the rules (positive part / mean threshold, AP).
    """
    maps_t = _as_tensor(maps).float()
    masks_t = _as_tensor(masks)
    if maps_t.dim() != 3 or tuple(maps_t.shape) != tuple(masks_t.shape):
        raise ValueError(
            f"maps {tuple(maps_t.shape)} and masks {tuple(masks_t.shape)} must both be [B,H,W]"
        )
    if ap_scores not in ("binary", "continuous"):
        raise ValueError(f"ap_scores must be 'binary' or 'continuous', got {ap_scores!r}")
    if not torch.isfinite(maps_t).all():
        raise ValueError("maps contain NaN or inf")
    gt = masks_t.long().cpu().numpy()
    valid_vals = {0, 1} | ({int(ignore_index)} if ignore_index is not None else set())
    if not set(np.unique(gt).tolist()) <= valid_vals:
        raise ValueError(
            f"masks must hold 0 (background), 1 (object) or ignore_index={ignore_index}, "
            f"got {np.unique(gt)[:10]}"
        )
    fg = segment(maps_t, signed).cpu().numpy()
    if signed:
        score = maps_t.clamp(min=0)
    else:
        score = (maps_t - maps_t.mean(dim=(1, 2), keepdim=True)).clamp(min=0)
    score = score / score.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    score_np = score.cpu().numpy()

    n = len(gt)
    correct = np.zeros(n, dtype=np.int64)
    labeled = np.zeros(n, dtype=np.int64)
    ap = np.zeros(n, dtype=np.float64)
    for i in range(n):
        valid = (
            gt[i] != ignore_index if ignore_index is not None else np.ones_like(gt[i], dtype=bool)
        )
        t = gt[i][valid].astype(np.int64)
        p = fg[i][valid]
        labeled[i] = int(valid.sum())
        correct[i] = int((p.astype(np.int64) == t).sum())
        if ap_scores == "binary":
            s_fg = p.astype(np.float64)
        else:
            s_fg = score_np[i][valid].astype(np.float64)
        y = np.concatenate([1 - t, t])  # one-hot (background, foreground), flattened together
        s = np.concatenate([1.0 - s_fg, s_fg])
        ap[i] = np.nan_to_num(average_precision_score(y, s)) if 0 < y.sum() < len(y) else 0.0
    return SegmentationScores(correct, labeled, ap)


def authors_multilabel_vis(
    class_maps: torch.Tensor, logits: torch.Tensor, signed: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' Table 3b input: ``(vis [B, K+1, H, W], present [B, K])`` from one map per
    class ``class_maps [B, K, H, W]`` and the multi-label ``logits [B, K]``, with
    ``present = sigmoid(logits) > 0.5`` (:func:`multilabel_vis`)."""
    logits = _as_tensor(logits).float()
    present = torch.sigmoid(logits) > 0.5
    return multilabel_vis(class_maps, present, signed), present


def multilabel_vis(class_maps: torch.Tensor, present: torch.Tensor, signed: bool) -> torch.Tensor:
    """``vis [B, K+1, H, W]`` as the authors build it for Table 3b: channel ``c + 1`` holds class
    c's map divided by its max (unsigned maps: minus their mean first), 0 where c is not in
    ``present [B, K]`` (bool); channel 0 (background) is 0. Only the present classes' maps are
    read. A map whose max is <= 0 stays 0 (the authors do not guard this)."""
    class_maps, present = _as_tensor(class_maps).float(), _as_tensor(present).bool()
    if class_maps.dim() != 4 or tuple(present.shape) != tuple(class_maps.shape[:2]):
        raise ValueError(
            f"class_maps must be [B, K, H, W] and present / logits [B, K], got "
            f"{tuple(class_maps.shape)} and {tuple(present.shape)}"
        )
    cam = class_maps
    if not signed:
        cam = cam - cam.mean(dim=(2, 3), keepdim=True)
    top = cam.amax(dim=(2, 3), keepdim=True)
    cam = torch.where(top > 0, cam / top.clamp(min=1e-12), torch.zeros_like(cam))
    cam = cam * present[:, :, None, None]
    return torch.cat([torch.zeros_like(cam[:, :1]), cam], dim=1)


def softmax_map(
    vis: torch.Tensor, present: torch.Tensor, absent_offset: float = 0.1
) -> torch.Tensor:
    """The authors' 21-way class probabilities ``[B, K+1, H, W]`` from ``vis``
    (:func:`multilabel_vis`): clamped at 0, ``absent_offset`` subtracted on the channels of the
    classes not in ``present [B, K]``, softmax over the channels. Its argmax is the
    segmentation that Table 3b's pixel accuracy scores."""
    p = _as_tensor(vis).float().clamp(min=0)
    p[:, 1:] -= absent_offset * (~_as_tensor(present).bool()).float()[:, :, None, None]
    return torch.softmax(p, dim=1)


def softmax_map_scores(
    vis: torch.Tensor,
    present: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    ignore_index: int | None = 255,
    absent_offset: float = 0.1,
) -> SegmentationScores:
    """Table 3b per the authors' ``segmentation_eval_from_hdf5.py``: ``vis [B, K+1, H, W]``
    (:func:`authors_multilabel_vis`) clamped at 0, ``absent_offset`` subtracted on the channels
    of classes not in ``present [B, K]``, softmax over the ``K+1`` channels; per image the AP of
    the one-hot ground truth against it over all channels and labelled pixels (continuous AP)
    and the argmax's correct / labelled pixels. ``masks [B, H, W]``: 0 = background, ``c + 1``
    = class c, ``ignore_index`` = unlabelled."""
    vis, present = _as_tensor(vis).float(), _as_tensor(present).bool()
    gt = _as_tensor(masks).long()
    b, k1 = vis.shape[:2]
    if vis.dim() != 4 or tuple(present.shape) != (b, k1 - 1) or gt.shape != (b, *vis.shape[2:]):
        raise ValueError(
            f"vis must be [B, K+1, H, W], present [B, K] and masks [B, H, W], got "
            f"{tuple(vis.shape)}, {tuple(present.shape)}, {tuple(gt.shape)}"
        )
    valid = gt != ignore_index if ignore_index is not None else torch.ones_like(gt, dtype=bool)
    if ((gt[valid] < 0) | (gt[valid] >= k1)).any():
        raise ValueError(f"masks must hold 0..{k1 - 1} or ignore_index={ignore_index}")
    p = softmax_map(vis, present, absent_offset)
    correct = np.zeros(b, dtype=np.int64)
    labeled = np.zeros(b, dtype=np.int64)
    ap = np.zeros(b, dtype=np.float64)
    for i in range(b):
        v = valid[i]
        t = gt[i][v]  # [P]
        scores = p[i][:, v]  # [K+1, P]
        onehot = torch.zeros_like(scores).scatter_(0, t[None], 1.0)
        labeled[i] = int(v.sum())
        correct[i] = int((scores.argmax(0) == t).sum())
        y, s_ = onehot.flatten().numpy(), scores.flatten().numpy().astype(np.float64)
        ap[i] = np.nan_to_num(average_precision_score(y, s_)) if 0 < y.sum() < len(y) else 0.0
    return SegmentationScores(correct, labeled, ap)


def multilabel_scores(
    pair_maps: torch.Tensor,
    present: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    signed: bool,
    ignore_index: int | None = 255,
    chunk: int = 64,
) -> SegmentationScores:
    """Table 3b per image from the maps of the predicted classes: ``pair_maps [P, H, W]`` holds
    one map per ``True`` entry of ``present [B, K]``, in ``torch.nonzero`` order (image-major);
    they go through :func:`multilabel_vis` and :func:`softmax_map_scores` ``chunk`` images at a
    time (so that ``[chunk, K+1, H, W]`` is the largest array)."""
    pair_maps, present = _as_tensor(pair_maps).float(), _as_tensor(present).bool()
    gt = _as_tensor(masks).long()
    idx, cls = torch.nonzero(present, as_tuple=True)
    if pair_maps.dim() != 3 or len(pair_maps) != len(idx):
        raise ValueError(
            f"pair_maps must be [P, H, W] with one map per predicted class (P = "
            f"{len(idx)}), got {tuple(pair_maps.shape)}"
        )
    b, k = present.shape
    if gt.dim() != 3 or len(gt) != b:
        raise ValueError(f"masks must be [B, H, W] with B = {b}, got {tuple(gt.shape)}")
    parts = [SegmentationScores(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))]
    for s in range(0, b, chunk):
        e = min(s + chunk, b)
        sel = (idx >= s) & (idx < e)
        cm = torch.zeros(e - s, k, *gt.shape[1:])
        cm[idx[sel] - s, cls[sel]] = pair_maps[sel]
        vis = multilabel_vis(cm, present[s:e], signed)
        parts.append(softmax_map_scores(vis, present[s:e], gt[s:e], ignore_index))
    return SegmentationScores(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("correct", "labeled", "ap"))
    )
