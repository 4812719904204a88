"""Input validation shared by the methods and models.

One place that says what was wrong and what to do.
"""

from __future__ import annotations

import torch

__all__ = ["InputError", "check_images"]


class InputError(ValueError, TypeError):
    """Bad input (wrong type, shape, dtype or value range); both a ValueError and a TypeError."""


def _shape_text(ndim: int, channels: int | None) -> str:
    c = str(channels) if channels is not None else "C"
    return {4: f"[B, {c}, H, W]", 3: f"[{c}, H, W]"}.get(ndim, f"{ndim}-D")


def check_images(
    x: object,
    *,
    name: str = "images",
    ndim: int = 4,
    channels: int | None = None,
    value_range: tuple[float, float] | None = None,
    tol: float = 1e-4,
    hint: str = "",
    dtype: torch.dtype | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a float tensor of rank ``ndim`` (with ``channels`` at dim -3 if given)
    whose values lie in ``value_range`` (within ``tol``); return it unchanged.

    ``dtype`` (e.g. the model's ``torch.float32``) is required exactly when given; ``finite``
    rejects NaN and infinite values (an explanation of a NaN image is silently wrong).
    Raises :class:`InputError` whose message names the argument, what was expected, what was
    found, and ``hint`` (what to do).
    """
    want = _shape_text(ndim, channels)
    rgb = " RGB" if channels == 3 else ""
    rng = f" in [{value_range[0]:g}, {value_range[1]:g}]" if value_range else ""
    tail = f"; {hint}" if hint else ""
    if not isinstance(x, torch.Tensor):
        raise InputError(
            f"{name} must be a{rgb} float tensor {want}{rng}, got {type(x).__name__}{tail}"
        )
    if x.dim() != ndim:
        raise InputError(
            f"{name} must be a{rgb} float tensor {want}{rng}, got shape {tuple(x.shape)}{tail}"
        )
    if channels is not None and x.shape[-3] != channels:
        raise InputError(
            f"{name} must have {channels}{' (RGB)' if rgb else ''} channel(s) at dim {ndim - 3} "
            f"({want}), got shape "
            f"{tuple(x.shape)} with {x.shape[-3]}{tail}"
        )
    if not x.is_floating_point():
        scale = " (uint8 images: x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise InputError(f"{name} must be floating point{rng}, got dtype {x.dtype}{scale}{tail}")
    if dtype is not None and x.dtype != dtype:
        raise InputError(
            f"{name} must be {dtype} (the model's dtype), got {x.dtype}: convert with "
            f"x.to({dtype}){tail}"
        )
    if finite and x.numel():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            n_nan = int(torch.isnan(x).sum())
            raise InputError(
                f"{name} has {bad} non-finite value(s) ({n_nan} NaN, {bad - n_nan} infinite) "
                f"of {x.numel()}; an explanation of such an input is meaningless{tail}"
            )
    if value_range is not None and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < value_range[0] - tol or hi > value_range[1] + tol:
            raise InputError(f"{name} must lie{rng}, got values in [{lo:.3g}, {hi:.3g}]{tail}")
    return x
