"""The method registry: what an attribution method is, in one place (notebook 02 / AGF).

Every attribution method of notebook 02 (the AGF paper, Gur, Ali & Wolf, AAAI 2021, and the
baselines it compares with) is registered where it is defined, with a decorator, as zennit
registers its composites::

    @register("rap", label="RAP", signed=True, class_specific=False, cost="fast",
              paper="Nam et al. 2020")
    def rap(model, x, target=None): ...

A :class:`Method` record carries the function ``fn(model, x, target=None, **params) -> [B, H, W]``
and what the rest of the project needs to know about it:

``label``
    the display name of the paper's figures ("AGF (ours)", "Int. Grad", ...);
``signed``
    the AGF paper's segmentation treatment (Table 3, Fig. 4a): signed maps are segmented at 0
    (their positive part is the object), unsigned maps at their mean
    (:func:`visxai.metrics.segmentation.segment`). Integrated Gradients is unsigned: the paper's
    text lists it with the signed maps, but the authors' ``imagenet_seg_eval.py`` takes ``|IG|``
    and subtracts the mean, and our baseline returns ``|IG|`` too (with the positive part every
    pixel would be foreground). ``gradient`` (gradient x input) is signed: the method-name tables
    that ``metrics/segmentation.py`` held before the registry decided it, where notebook 02's
    former ``SIGNED`` set left it out (the notebook never segmented that method);
``class_specific``
    per the AGF paper's Table 1 (False: the paper calls the method class agnostic). Gradient SHAP,
    Meaningful Perturbation and gradient x input are not in Table 1 and count as class specific
    (as before: they were not in the class-agnostic list);
``cost``
    ``"fast"`` or ``"slow"``: notebook 02's tiers (slow methods run on fewer images in the
    offline profile: FullGrad, SmoothGrad, Gradient SHAP, Meaningful Perturbation);
    ``gradient`` is fast (one backward pass);
``paper``
    the method's own reference.

``METHODS`` holds the records in registration order, which is the paper's order (notebook 02's
figures and tables: Int. Grad ... SGLRP, then AGF), with ``gradient`` (a sanity baseline that
the AGF paper does not show) first: the paper's methods are ``method_names()[1:]``.
``visxai.methods`` imports the defining modules (the baselines, then AGF), so the registry is
complete whenever it is read.

:meth:`Method.explainer` binds the parameters once and returns a callable that takes only the
data, ``explainer(x, target=None) -> Tensor [B, H, W]`` (float, CPU), validated as
:func:`visxai.methods.explain.explain` does (which is ``get_method(m).explainer(model, **kw)``).

Written by hand: a dictionary and a decorator (a few lines); no maintained library offers a
registry of attribution methods with these fields.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_model_input
from ..targets import Target

__all__ = [
    "COSTS",
    "METHODS",
    "Method",
    "get_method",
    "input_channels",
    "method_names",
    "register",
]

COSTS = ("fast", "slow")
_HINT = (
    "pass the model's input: a batch of preprocessed, normalised images (LoadedModel.preprocess)"
)


def input_channels(model: nn.Module) -> int | None:
    """The input channels of ``model``'s first convolution (None for a model without one)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else int(conv.in_channels)


@dataclass(frozen=True)
class Method:
    """One registered attribution method (see the module docstring for the fields)."""

    name: str
    fn: Callable[..., torch.Tensor]
    label: str
    signed: bool
    class_specific: bool
    cost: str
    paper: str

    def explainer(self, model: nn.Module, **params) -> Callable[..., torch.Tensor]:
        """``model`` and the method's parameters bound once; the call takes only the data:
        ``explainer(x, target=None) -> Tensor [B, H, W]`` (float, on CPU).

        Unknown parameters raise ``TypeError`` here, not at the first call. The call checks
        that ``x`` is a finite float tensor [B, C, H, W] with the channels of the model's first
        convolution and the model's dtype (:func:`visxai.checks.check_model_input`: the message
        says what was found), that
        the model is in eval mode and that the method returned one map per image.
        """
        try:
            inspect.signature(self.fn).bind(model, None, None, **params)
        except TypeError as e:
            raise TypeError(f"{self.name}: {e}") from None
        fn, name = self.fn, self.name

        def explainer(x: torch.Tensor, target: Target = None) -> torch.Tensor:
            # rank, float, finite [B, C, H, W]; the first conv's channels; the model's dtype
            check_model_input(model, x, hint=_HINT)
            if model.training:
                raise ValueError("put the model in eval mode (model.eval()) before explaining it")
            out = torch.as_tensor(fn(model, x, target, **params)).detach().float().cpu()
            expected = (x.shape[0], *x.shape[2:])
            if out.shape != expected:
                raise RuntimeError(f"{name} returned {tuple(out.shape)}, expected {expected}")
            return out

        explainer.__name__ = explainer.__qualname__ = f"{name}_explainer"
        return explainer


METHODS: dict[str, Method] = {}


def register(
    name: str, *, label: str, signed: bool, class_specific: bool, cost: str, paper: str
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator: register ``fn(model, x, target=None, **params) -> [B, H, W]`` as ``name``.

    Returns the function unchanged. A name registered twice, an empty label or reference, or a
    cost outside ``COSTS`` raise ``ValueError``.
    """
    if name in METHODS:
        raise ValueError(f"method {name!r} is already registered ({METHODS[name].fn.__qualname__})")
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    if not name or not label or not paper:
        raise ValueError("name, label and paper must be non-empty")

    def decorator(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = Method(name, fn, label, bool(signed), bool(class_specific), cost, paper)
        return fn

    return decorator


def get_method(name: str) -> Method:
    """The registered method ``name``; an unknown name raises ``ValueError`` listing the names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}") from None


def method_names(
    *, cost: str | None = None, signed: bool | None = None, class_specific: bool | None = None
) -> list[str]:
    """Registered names in registry order, filtered by the fields that are not None."""
    if cost is not None and cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")
    return [
        m.name
        for m in METHODS.values()
        if (cost is None or m.cost == cost)
        and (signed is None or m.signed == signed)
        and (class_specific is None or m.class_specific == class_specific)
    ]
