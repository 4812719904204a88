"""Small modules that the canonizers put in place of functional operations (notebook 02 / AGF).

Module hooks cannot see ``scale * input``, ``torch.cat``, ``x.chunk``, ``channel_shuffle``,
``layer_scale * x`` or ``x.mean([2, 3])`` in a block's forward; the canonizers (canonizers.py)
replace such a forward with one that calls these modules, each computing exactly what the
original expression computes (bitwise), so that the tracer records one call per operation and
the rule sets (rules.py) can give it a relevance rule. Written by hand: zennit has only its
one-input ``Sum``.

* ``Gate(x, g) = x * g``: a multiplicative gate held constant (squeeze-excitation);
  relevance goes to ``x`` only (Ali et al. 2022, "XAI for Transformers: Better Explanations
  through Conservative Propagation", treat gating terms as constants).
* ``Cat(*xs)``: ``torch.cat`` along ``dim``; relevance is split by the inputs' sizes.
* ``Chunk(x)``: ``x.chunk(chunks, dim)[index]``; relevance is put back in place (0 elsewhere).
* ``ChannelShuffle(x)``: torchvision's ``channel_shuffle`` (a permutation); relevance is
  permuted back.
* ``Scale(x) = s * x``: ConvNeXt's layer scale (a per-channel linear map; z-rule = pass).
* ``SpatialMean(x) = x.mean(dims)``: a global average pool written as a mean (z-rule).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Cat", "ChannelShuffle", "Chunk", "Gate", "Scale", "SpatialMean"]


class Gate(nn.Module):
    """``gate * x`` with ``gate`` held constant for relevance (squeeze-excitation)."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return gate * x


class Cat(nn.Module):
    """``torch.cat(xs, dim)``."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)


class Chunk(nn.Module):
    """``x.chunk(chunks, dim)[index]`` (a view of ``x``)."""

    def __init__(self, chunks: int, index: int, dim: int = 1) -> None:
        super().__init__()
        self.chunks, self.index, self.dim = chunks, index, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.chunks, self.dim)[self.index]

    def place(self, x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        """Relevance at ``x``: ``R`` where this chunk lies, 0 elsewhere."""
        out = torch.zeros_like(x)
        out.chunk(self.chunks, self.dim)[self.index].copy_(R)
        return out


class ChannelShuffle(nn.Module):
    """torchvision's ``channel_shuffle(x, groups)`` (ShuffleNetV2)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.models.shufflenetv2 import channel_shuffle

        return channel_shuffle(x, self.groups)

    def unshuffle(self, R: torch.Tensor) -> torch.Tensor:
        """The inverse permutation (relevance at the input)."""
        b, c, h, w = R.shape
        return R.reshape(b, c // self.groups, self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class Scale(nn.Module):
    """``scale * x`` for a parameter owned by the block (ConvNeXt's ``layer_scale``); the
    parameter is held in a list so that it is not registered twice."""

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self._scale = [scale]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scale[0] * x


class SpatialMean(nn.Module):
    """``x.mean(dims)`` (ShuffleNetV2's global pool)."""

    def __init__(self, dims: tuple[int, ...] = (2, 3)) -> None:
        super().__init__()
        self.dims = list(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(self.dims)
