"""The bottom floor: small modules that every layer above may use (no imports from the project).

* ``Sum2``: an explicit residual addition, so that hooks (the AGF tracer, zennit's canonizers)
  see the skip connection as a module with two inputs (z-rule).
* ``Normalizer``: the one per-channel normalisation ``(x / scale - mean) / std`` (or its inverse)
  that every model and method uses; ``scale=255`` takes pixel values in [0, 255] (TIO).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Sum2", "Normalizer"]


class Sum2(nn.Module):
    """Explicit residual addition ``a + b`` (relevance: z-rule)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Normalizer(nn.Module):
    """Per-channel ``(x / scale - mean) / std`` (or, ``inverse=True``, ``(x * std + mean) * scale``)
    on [B,C,H,W] or [C,H,W] float tensors; differentiable, and a module so that it can stand first
    in an ``nn.Sequential`` in front of a model."""

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], inverse: bool = False, scale: float = 1.0
    ) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError("mean and std must have the same length and std must be > 0")
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.inverse = inverse
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
            raise ValueError(
                f"expected a [B,C,H,W] or [C,H,W] tensor, got {getattr(x, 'shape', type(x))}"
            )
        if not x.is_floating_point():
            raise TypeError(f"expected a floating-point tensor, got {x.dtype}")
        c = x.shape[-3]
        if c != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} channels, got {c}")
        shape = (c, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        if self.inverse:
            y = x * std + mean
            return y * self.scale if self.scale != 1.0 else y
        if self.scale != 1.0:
            x = x / self.scale
        return (x - mean) / std

    def extra_repr(self) -> str:
        scale = f", scale={self.scale:g}" if self.scale != 1.0 else ""
        return f"mean={self.mean}, std={self.std}{scale}"

    def __repr__(self) -> str:
        kind = "Denormalize" if self.inverse else "Normalize"
        return f"{kind}({self.extra_repr()})"
