"""One call for every attribution method of notebook 02 / AGF:
``explain(model, x, target, method)``.

The methods live in the registry (:mod:`visxai.methods.registry`): ``explain`` is
``get_method(method).explainer(model, **kw)(x, target)``. ``METHODS`` is the registry's dict
(name -> :class:`~visxai.methods.registry.Method`). ``METHOD_LABELS`` (name -> display label) and
``CLASS_AGNOSTIC`` (the methods the AGF paper's Table 1 calls class agnostic) are derived from it
and kept only until their last callers read the registry.
"""

from __future__ import annotations

import torch
from torch import nn

from ..targets import Target
from .registry import METHODS, get_method

METHOD_LABELS: dict[str, str] = {m.name: m.label for m in METHODS.values()}

CLASS_AGNOSTIC = frozenset(m.name for m in METHODS.values() if not m.class_specific)


def explain(
    model: nn.Module, x: torch.Tensor, target: Target = None, method: str = "agf", **kw
) -> torch.Tensor:
    """Attribution maps [B, H, W] (float, on CPU) for ``target`` (None: top-1 per image; an int;
    or one class per image) with ``method`` (a registered name); ``kw`` go to the method."""
    return get_method(method).explainer(model, **kw)(x, target)


__all__ = ["CLASS_AGNOSTIC", "METHODS", "METHOD_LABELS", "explain"]
