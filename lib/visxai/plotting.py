"""Plotting helpers: one theme, heatmap overlays, image grids, saving under figures/, and the
slider panels of notebooks 01, 03 and 04 (:func:`busy_panel`: ipywidgets' ``interactive`` with a
status line and disabled controls while an update runs, which ``interact`` does not offer)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from .paths import figures_dir

__all__ = [
    "set_theme",
    "to_numpy_image",
    "show_heatmap",
    "image_grid",
    "save_figure",
    "describe_values",
    "busy_panel",
]


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


def describe_values(values: Mapping[str, Any]) -> str:
    """``{"α": 2.0, "λ": 0.2}`` -> ``"α = 2, λ = 0.2"`` (the panels' status line and titles)."""
    return ", ".join(
        f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in values.items()
    )


#: while a panel computes, its old figure fades (the style lives in the status line meanwhile)
_BUSY_STYLE = "<style>.visxai-busy .widget-output {opacity: 0.35}</style>"


def busy_panel(
    show: Callable[..., plt.Figure | None],
    controls: Mapping[str, Any],
    *,
    manual_name: str | None = None,
) -> Any:
    """A slider panel that shows it is working: ``ipywidgets.interactive(show, **controls)``
    with a status line under the controls.

    While ``show(**values)`` runs, the controls (and the button) are disabled, the figure on
    display fades and the status reads ``computing <description> = <value>, ...``; afterwards
    it reads ``showing ...`` with the values of the figure on display (or ``failed ...``).
    ``show`` draws with ``plt.show()`` or returns the figure (``None``: nothing to draw, it
    printed why). ``controls`` maps the keyword of ``show`` to its widget; the widget's
    ``description`` names the value in the status line (the paper's symbol). Sliders update on
    release (``continuous_update=False``), so a drag computes once. ``manual_name`` makes the
    panel wait for a button of that label (``interact_manual``). Returns the panel widget
    (display it, or end the cell with it)."""
    import ipywidgets as widgets
    from IPython.display import display

    if not controls:
        raise ValueError("busy_panel needs at least one control (keyword -> widget)")
    for key, w in controls.items():
        if not isinstance(w, widgets.ValueWidget):
            raise TypeError(
                f"busy_panel: control {key!r} is a {type(w).__name__}, not an ipywidgets value "
                "widget (give a slider, dropdown, ...)"
            )
        if hasattr(w, "continuous_update"):
            w.continuous_update = False
    names = {key: (w.description or key) for key, w in controls.items()}
    status = widgets.HTML(layout=widgets.Layout(min_height="1.6em"))
    status.add_class("visxai-status")

    def text(values: Mapping[str, Any]) -> str:
        return describe_values({names[k]: v for k, v in values.items()})

    built: dict[str, Any] = {}  # the panel, once built (interactive runs ``run`` while building)

    def run(**values: Any) -> None:
        panel = built.get("panel")
        if panel is not None:
            panel.add_class("visxai-busy")
        for w in controls.values():
            w.disabled = True
        status.value = f"<b>computing</b> {text(values)} ...{_BUSY_STYLE}"
        try:
            fig = show(**values)
            if fig is not None:
                display(fig)
                plt.close(fig)
        except Exception:
            status.value = f"<b>failed</b> {text(values)} (the error is below)"
            raise
        else:
            status.value = f"showing {text(values)}"
        finally:
            for w in controls.values():
                w.disabled = False
            if panel is not None:
                panel.remove_class("visxai-busy")

    options = {"manual": manual_name is not None, "manual_name": manual_name or "Run Interact"}
    panel = built["panel"] = widgets.interactive(run, options, **controls)
    if manual_name:
        panel.manual_button.layout.width = "max-content"  # the whole label
        status.value = f"press <i>{manual_name}</i> to compute with the values above"
    *head, out = panel.children
    panel.children = (*head, status, out)
    return panel
