"""One call for every attribution method of notebook 02 / AGF:
``explain(model, x, target, method)``.

The methods live in the registry (:mod:`visxai.methods.registry`): ``explain`` is
``get_method(method).explainer(model, **kw)(x, target)``. ``METHODS`` is the registry's dict
(name -> :class:`~visxai.methods.registry.Method`): labels, signed / class-specific facts and cost
tiers are read there.
"""

from __future__ import annotations

import torch
from torch import nn

from ..targets import Target
from .registry import METHODS, get_method


def explain(
    model: nn.Module, x: torch.Tensor, target: Target = None, method: str = "agf", **kw
) -> torch.Tensor:
    """Attribution maps [B, H, W] (float, on CPU) for ``target`` (None: top-1 per image; an int;
    or one class per image) with ``method`` (a registered name); ``kw`` go to the method."""
    return get_method(method).explainer(model, **kw)(x, target)


__all__ = ["METHODS", "explain"]
