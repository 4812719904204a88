"""Notebook 02 / AGF: its figures. Each function draws one figure and returns it; the notebook
saves (:func:`visxai.plotting.save_figure`) and shows it.

Method facts (label, signed) come from :mod:`visxai.methods.registry`. Written by hand:
matplotlib layout only; the heatmaps are drawn by :func:`visxai.plotting.show_heatmap`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..methods.agf import agf
from ..methods.registry import METHODS
from ..plotting import show_heatmap

__all__ = [
    "plot_fig1",
    "method_grid",
    "plot_class_specificity",
    "plot_fig3",
    "plot_fig3_ci",
    "plot_table2_photos",
    "plot_table3_examples",
    "plot_fig4",
    "plot_fig5",
]


def plot_fig1(
    lm: Any,
    x: torch.Tensor,
    maps: Sequence[torch.Tensor],
    top2: torch.Tensor,
    photos: Sequence[str],
) -> plt.Figure:
    """Fig. 1: each photo with its AGF maps for the top-1 and top-2 class."""
    imgs = lm.denormalize(x.detach().cpu()).clamp(0, 1)
    fig, axes = plt.subplots(3, len(photos), figsize=(2.1 * len(photos), 6.6))
    for i in range(len(photos)):
        axes[0, i].imshow(imgs[i].permute(1, 2, 0))
        axes[0, i].axis("off")
        for k in range(2):
            show_heatmap(
                axes[k + 1, i],
                maps[k][i],
                imgs[i],
                signed=True,
                alpha=0.6,
                title=f"top-{k + 1}: {lm.labels[top2[i, k]][:18]}",
            )
    fig.suptitle(f"Fig. 1 ({lm.name}): AGF, top-1 and top-2 class", fontsize=10)
    return fig


def method_grid(
    lm: Any,
    x: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    row_titles: Sequence[str],
    title: str,
    order: Sequence[str],
) -> plt.Figure:
    """Fig. 2: one row per image, the image and one map per method of ``order``."""
    imgs = lm.denormalize(x.detach().cpu()).clamp(0, 1)
    n = x.shape[0]
    fig, axes = plt.subplots(
        n, len(order) + 1, figsize=(1.55 * (len(order) + 1), 1.7 * n), squeeze=False
    )
    for i in range(n):
        axes[i, 0].imshow(imgs[i].permute(1, 2, 0))
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        axes[i, 0].set_ylabel(row_titles[i], fontsize=7)
        for j, m in enumerate(order):
            show_heatmap(
                axes[i, j + 1],
                maps[m][i],
                None,
                signed=METHODS[m].signed,
                title=METHODS[m].label if i == 0 else None,
            )
    fig.suptitle(title, fontsize=10)
    return fig


def plot_class_specificity(
    rows: Mapping[str, dict],
    corr: Mapping[tuple, np.ndarray],
    order: Sequence[str],
    threshold: float,
    n: int,
) -> plt.Figure:
    """Fig. 2c over many two-object images: mean correlation of the two maps with its 95% CI."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    colour = {"specific": "tab:red", "agnostic": "tab:blue", "-": "gray"}
    for j, m in enumerate(order):
        e = rows[m]["est"]
        ax.errorbar(
            j,
            e.value,
            yerr=[[e.value - e.lo], [e.hi - e.value]],
            fmt="o",
            capsize=3,
            color=colour[rows[m]["paper"]],
        )
        ax.scatter(np.full(len(corr[(m, 0)]), j) + 0.25, corr[(m, 0)], s=4, alpha=0.3, color="gray")
    ax.axhline(threshold, ls="--", color="black", lw=0.8)
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([METHODS[m].label for m in order], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("corr(map class A, map class B)")
    ax.set_title(
        f"Fig. 2c over {n} two-object images: mean and 95% CI "
        "(red: paper says class specific, blue: agnostic)",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def plot_fig3(
    curves: Mapping[tuple, Any],
    models: Sequence[str],
    order: Sequence[str],
    seed: int,
    label: Callable[[str], str],
) -> plt.Figure:
    """Fig. 3: accuracy while the least relevant pixels are removed, per model and class."""
    fig, axes = plt.subplots(1, 2 * len(models), figsize=(5.2 * 2 * len(models), 4), squeeze=False)
    for j, (mname, cls) in enumerate([(mn, c) for mn in models for c in ("predicted", "target")]):
        ax = axes[0, j]
        for m in order:
            c = curves[(mname, cls, m, seed)]
            ax.plot(
                100 * c.fractions,
                c.accuracy,
                marker="o" if m == "agf" else ".",
                lw=2.5 if m == "agf" else 1,
                color="black" if m == "agf" else None,
                label=f"{label(m)} ({c.auc:.1f}, n={len(c)})",
            )
        c = curves[(mname, cls, "random", seed)]
        ax.plot(
            100 * c.fractions,
            c.accuracy,
            ls=":",
            color="gray",
            label=f"random saliency ({c.auc:.1f})",
        )
        ax.set_xlabel("removed pixels, least relevant first (%)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"Fig. 3 ({mname}): {cls} class")
        ax.legend(fontsize=6.5)
    fig.tight_layout()
    return fig


def plot_fig3_ci(
    long: pd.DataFrame, models: Sequence[str], label: Callable[[str], str]
) -> plt.Figure:
    """Fig. 3b: the AUCs with their 95% CIs (filled: trained model; open: randomised model)."""
    keys = [(mn, c) for mn in models for c in ("predicted", "target")]
    fig, axes = plt.subplots(
        1, len(keys), figsize=(4.2 * len(keys), 4.2), squeeze=False, sharey=True
    )
    for j, (mname, cls) in enumerate(keys):
        ax = axes[0, j]
        sub = long[(long.model == mname) & (long.explained == cls)]
        for i, (_, r) in enumerate(sub.iterrows()):
            col = "black" if r["method"] == label("agf") else "C0"
            for e, face, dy in ((r["AUC"], col, 0.0), (r["randomised: AUC"], "none", 0.3)):
                ax.errorbar(
                    e.value,
                    i + dy,
                    xerr=[[e.value - e.lo], [e.hi - e.value]],
                    fmt="o",
                    ms=4,
                    capsize=2,
                    color=col,
                    mfc=face,
                )
        ax.set_yticks(range(len(sub)))
        ax.set_yticklabels(sub.method, fontsize=7)
        ax.set_xlabel("AUC (95% CI over images)")
        ax.set_title(f"{mname}, {cls}", fontsize=9)
    fig.suptitle(
        "Fig. 3b: negative perturbation AUC; open circles = randomised model (Adebayo et al. 2018)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_table2_photos(photos: Any, label: Callable[[str], str], show: int = 3) -> plt.Figure:
    """Table 2 on ImageNet weights (:class:`~visxai.evaluation.agf_study.PhotoRuns`): left, each
    method's AUC with its 95% CI over photos (filled; open: the randomised network); right, the
    maps of the first ``show`` photos (originals, predicted class)."""
    meths = list(photos.auc)
    shown = [m for m in meths if m in photos.maps][:6]
    fig = plt.figure(figsize=(4.2 + 1.5 * (len(shown) + 1), max(3.6, 1.5 * show)))
    grid = fig.add_gridspec(show, len(shown) + 3)
    ax = fig.add_subplot(grid[:, :2])
    for i, m in enumerate(meths):
        col = "black" if m == "agf" else "C0"
        for e, face, dy in ((photos.auc[m], col, 0.0), (photos.control_auc.get(m), "none", 0.3)):
            if e is not None:
                ax.errorbar(
                    e.value, i + dy, xerr=[[e.value - e.lo], [e.hi - e.value]], fmt="o", ms=4,
                    capsize=2, color=col, mfc=face,
                )  # fmt: skip
    ax.set_yticks(range(len(meths)))
    ax.set_yticklabels([label(m) for m in meths], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("AUC (95% CI over photos; higher = better)")
    ax.set_title(f"{photos.loaded.name}, {len(photos.images)} images", fontsize=9)
    for r in range(min(show, photos.n_photos)):
        a = fig.add_subplot(grid[r, 2])
        a.imshow(photos.images[r].permute(1, 2, 0))
        a.set_title(photos.names[r], fontsize=6)
        a.axis("off")
        for j, m in enumerate(shown):
            a = fig.add_subplot(grid[r, j + 3])
            show_heatmap(a, photos.maps[m][r], signed=METHODS[m].signed)
            if r == 0:
                a.set_title(label(m), fontsize=7)
            a.axis("off")
    fig.suptitle(
        "Table 2 on ImageNet weights: negative perturbation AUC (open = randomised network) "
        "and maps of the predicted class",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_table3_examples(
    t3: Mapping[str, dict],
    methods: Sequence[str],
    label: Callable[[str], str],
    show: Sequence[int] = (0, 1, 2, 3),
) -> plt.Figure:
    """Table 3 examples, the first images of each case. Table 3a: image, foreground mask, a few
    methods' maps. Table 3b (multi-label, the authors' protocol): image, ground-truth class map
    and each method's segmentation, the argmax of the softmax over the predicted classes' maps
    (what pixel accuracy scores); titles name the predicted labels."""
    meths = [
        m for m in ["agf", "rap", "gradcam", "lrp", "clrp", "integrated_gradients"] if m in methods
    ]
    rows = [(d, i) for d in t3.values() for i in show if i < len(d["case"])]
    fig, axes = plt.subplots(
        len(rows), len(meths) + 2, figsize=(1.7 * (len(meths) + 2), 1.8 * len(rows)), squeeze=False
    )
    for r, (d, i) in enumerate(rows):
        c = d["case"]
        axes[r, 0].imshow(c.images[i].permute(1, 2, 0))
        if c.multilabel:
            _table3b_row(axes[r], d, i, meths, label if r == 0 else None)
            continue
        axes[r, 0].set_title(f"{c.class_names[int(c.targets[i])]}", fontsize=7)
        axes[r, 1].imshow(c.masks[i].clamp(max=1), cmap="gray")
        axes[r, 1].set_title("mask", fontsize=7)
        for j, m in enumerate(meths):
            show_heatmap(
                axes[r, j + 2],
                d["maps"][m][i],
                signed=METHODS[m].signed,
                title=label(m) if r == 0 else None,
            )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "Table 3 examples: "
        + ", ".join(d["desc"] for d in t3.values())
        + "; 3b: ground truth and each method's argmax segmentation (black = background)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _table3b_row(
    axes: Sequence[Any], d: Mapping[str, Any], i: int, meths: Sequence[str], label: Any
) -> None:
    """One image of the multi-label Table 3b: ground truth and each method's argmax segmentation
    (:func:`visxai.metrics.segmentation.softmax_map`), one colour per class."""
    from matplotlib.colors import ListedColormap

    from ..metrics.segmentation import multilabel_vis, softmax_map

    c = d["case"]
    present = c.targets.bool()
    k = present.shape[1]
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20").colors[:k]
    cmap = ListedColormap([(0, 0, 0), *colours, (1, 1, 1)])  # background, classes, unlabelled
    idx, cls = torch.nonzero(present, as_tuple=True)
    sel = idx == i
    gt = c.masks[i].clone()
    gt[(gt < 0) | (gt > k)] = k + 1
    names = ", ".join(c.class_names[int(j)] for j in cls[sel]) or "none"
    axes[0].set_title(f"predicted: {names}", fontsize=6)
    axes[1].imshow(gt, cmap=cmap, vmin=0, vmax=k + 1, interpolation="nearest")
    axes[1].set_title("ground truth", fontsize=7)
    for j, m in enumerate(meths):
        cm = torch.zeros(1, k, *gt.shape)
        cm[0, cls[sel]] = d["maps"][m][sel].float()
        seg = softmax_map(
            multilabel_vis(cm, present[i : i + 1], METHODS[m].signed), present[i : i + 1]
        )
        axes[j + 2].imshow(seg[0].argmax(0), cmap=cmap, vmin=0, vmax=k + 1, interpolation="nearest")
        if label is not None:
            axes[j + 2].set_title(label(m), fontsize=7)


def plot_fig4(
    fig4a: Mapping[str, dict],
    fig4b_table: pd.DataFrame,
    methods: Sequence[str],
    seed: int,
    label: Callable[[str], str],
    n_pairs: int,
) -> plt.Figure:
    """Fig. 4a (segmentation of the SSL models, Algorithm 2) and Fig. 4b (AGF per probed block)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    markers = dict(zip(methods, "*osD^v<>phX8"))
    colors = dict(zip(fig4a, plt.cm.tab10.colors))
    for d, res in fig4a.items():
        for m in methods:  # random saliency is shown in the table
            s = res["scores"][(m, seed)]
            axes[0].scatter(
                s.pixel_accuracy,
                s.mean_ap,
                s=110 if m == "agf" else 40,
                marker=markers[m],
                color=colors[d],
                edgecolor="black" if m == "agf" else None,
                label=f"{d}: {label(m)}",
            )
            axes[0].annotate(
                label(m),
                (s.pixel_accuracy, s.mean_ap),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    axes[0].set_xlabel("pixel accuracy (%)")
    axes[0].set_ylabel("mAP (%)")
    axes[0].set_title("Fig. 4a: " + ", ".join(colors) + " (Alg. 2, Δ)")
    if len(colors) > 1:
        axes[0].legend(
            handles=[
                plt.Line2D([], [], marker="o", ls="", color=c, label=d) for d, c in colors.items()
            ],
            fontsize=7,
        )
    for col, mk, lab in (("pixel_accuracy", "o-", "pixel accuracy"), ("mAP", "s-", "mAP")):
        ests = fig4b_table[col]
        axes[1].errorbar(
            fig4b_table.index,
            [e.value for e in ests],
            yerr=[[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]],
            fmt=mk,
            capsize=3,
            label=lab + " (95% CI)",
        )
    axes[1].set_xticks(list(fig4b_table.index))
    axes[1].set_xlabel("RotNet block + linear probe")
    axes[1].set_ylabel("%")
    axes[1].set_title(f"Fig. 4b: AGF per block (linear probes), {n_pairs} pairs")
    axes[1].legend()
    fig.tight_layout()
    return fig


def plot_fig5(
    data: Any,
    probes: Sequence[torch.nn.Module],
    class_names: Sequence[str],
    device: Any,
    idx: Sequence[int] = (0, 1, 2),
) -> plt.Figure:
    """Fig. 5: AGF maps of the same images through the RotNet's probed blocks."""
    idx = list(idx)
    xv = data.images[idx]
    cls5 = data.object_classes[idx, 0]
    fig, axes = plt.subplots(
        len(idx), len(probes) + 2, figsize=(1.9 * (len(probes) + 2), 1.9 * len(idx)), squeeze=False
    )
    for r in range(len(idx)):
        axes[r, 0].imshow(xv[r].permute(1, 2, 0))
        axes[r, 0].set_title(class_names[int(cls5[r])], fontsize=8)
        axes[r, 1].imshow(data.class_mask(data.object_classes[:, 0])[idx[r]], cmap="gray")
        axes[r, 1].set_title("mask", fontsize=8)
    for b, pm in enumerate(probes):
        maps = agf(pm.to(device).eval(), xv.to(device), cls5)
        for r in range(len(idx)):
            show_heatmap(
                axes[r, b + 2], maps[r], signed=True, title=f"block {b + 1}" if r == 0 else None
            )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
