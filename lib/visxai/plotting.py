"""Plotting helpers: one theme, heatmap overlays, image grids, and saving under figures/."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from .paths import figures_dir

__all__ = ["set_theme", "to_numpy_image", "show_heatmap", "image_grid", "save_figure"]


def set_theme() -> None:
    """The seaborn theme used by every notebook (white background, small fonts)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="white", font_scale=0.9)
    matplotlib.rcParams["figure.dpi"] = 100
    matplotlib.rcParams["savefig.dpi"] = 120
    matplotlib.rcParams["savefig.bbox"] = "tight"


def to_numpy_image(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C,H,W) or (H,W) tensor/array -> (H,W,C) or (H,W) float array for imshow."""
    if isinstance(img, torch.Tensor):
        img = img.detach().float().cpu().numpy()
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.transpose(img, (1, 2, 0))
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    return img


def show_heatmap(
    ax: plt.Axes,
    heatmap: torch.Tensor | np.ndarray,
    image: torch.Tensor | np.ndarray | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    title: str | None = None,
    signed: bool = False,
) -> None:
    """Draw ``heatmap`` (H,W) over ``image`` (in [0,1]); ``signed`` uses a centred bwr map."""
    hm = to_numpy_image(heatmap)
    if image is not None:
        ax.imshow(
            np.clip(to_numpy_image(image), 0, 1),
            cmap="gray" if to_numpy_image(image).ndim == 2 else None,
        )
    if signed:
        lim = float(np.abs(hm).max()) or 1.0
        ax.imshow(hm, cmap="bwr", vmin=-lim, vmax=lim, alpha=alpha if image is not None else 1.0)
    else:
        ax.imshow(hm, cmap=cmap, alpha=alpha if image is not None else 1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def image_grid(
    images: Sequence[torch.Tensor | np.ndarray],
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    size: float = 2.0,
    cmap: str | None = None,
) -> plt.Figure:
    """A grid of images (tensors in [0,1]) with optional titles."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = to_numpy_image(images[i])
            ax.imshow(img if img.ndim == 3 else img, cmap=cmap if img.ndim == 2 else None)
            if titles:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, notebook: str, name: str) -> Path:
    """Save ``fig`` as ``figures/<notebook>/<name>.png`` (atomically) and return the path."""
    out = figures_dir(notebook) / f"{name}.png"
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp)
    tmp.replace(out)
    return out
