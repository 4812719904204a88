"""One interface for every attribution method of paper 001: ``explain(model, x, target, method)``.

``METHODS`` maps a method name to a function ``(model, x, target, **kw) -> Tensor [B, H, W]``;
``METHOD_LABELS`` gives the display names used in the paper's figures, ``CLASS_AGNOSTIC`` the
methods the paper (Table 1) calls class agnostic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..targets import Target
from . import baselines
from .agf import AGFFlags, agf

Explainer = Callable[..., torch.Tensor]


def _agf(
    model: nn.Module, x: torch.Tensor, target: Target = None, flags: AGFFlags | None = None
) -> torch.Tensor:
    return agf(model, x, target, flags=flags)


METHODS: dict[str, Explainer] = {
    "agf": _agf,
    "integrated_gradients": baselines.integrated_gradients,
    "smoothgrad": baselines.smoothgrad,
    "gradient_shap": baselines.gradient_shap,
    "lrp": baselines.lrp,
    "lrp_ab": baselines.lrp_ab,
    "fullgrad": baselines.fullgrad,
    "gradcam": baselines.gradcam,
    "rap": baselines.rap,
    "clrp": baselines.clrp,
    "sglrp": baselines.sglrp,
    "meaningful_perturbation": baselines.meaningful_perturbation,
    "gradient": baselines.gradient,
}

METHOD_LABELS: dict[str, str] = {
    "agf": "AGF (ours)",
    "integrated_gradients": "Int. Grad",
    "smoothgrad": "SmoothGrad",
    "gradient_shap": "Gradient SHAP",
    "lrp": "LRP",
    "lrp_ab": "LRP αβ",
    "fullgrad": "FullGrad",
    "gradcam": "Grad-CAM",
    "rap": "RAP",
    "clrp": "CLRP",
    "sglrp": "SGLRP",
    "meaningful_perturbation": "Meaningful Pert.",
    "gradient": "Gradient×Input",
}

# Table 1 of the paper: methods that are not class specific
CLASS_AGNOSTIC = frozenset(
    {"integrated_gradients", "smoothgrad", "lrp", "lrp_ab", "fullgrad", "rap"}
)


def explain(
    model: nn.Module, x: torch.Tensor, target: Target = None, method: str = "agf", **kw
) -> torch.Tensor:
    """Attribution maps [B, H, W] (float, on CPU) for ``target`` (None: top-1 per image; an int;
    or one class per image) with ``method`` (a key of ``METHODS``); ``kw`` go to the method."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"x must be a float tensor [B, C, H, W], got {getattr(x, 'shape', type(x))}"
        )
    if model.training:
        raise ValueError("put the model in eval mode (model.eval()) before explaining it")
    out = METHODS[method](model, x, target, **kw)
    out = torch.as_tensor(out).detach().float().cpu()
    if out.shape != (x.shape[0], *x.shape[2:]):
        raise RuntimeError(
            f"{method} returned {tuple(out.shape)}, expected {(x.shape[0], *x.shape[2:])}"
        )
    return out


__all__ = ["CLASS_AGNOSTIC", "METHODS", "METHOD_LABELS", "explain"]
