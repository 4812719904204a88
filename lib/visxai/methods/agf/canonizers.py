"""Canonizers: one zennit-style canonizer per residual block type, shared by the AGF tracer and
the zennit baselines (notebook 02 / AGF).

Each canonizer is a zennit ``AttributeCanonizer`` (as zennit's ``ResNetBottleneckCanonizer``):
``apply(model)`` overloads the ``forward`` of every block of its type with an instance-level
forward in which the skip addition is a call of a ``Sum2`` module (``canonizer_sum``, two
inputs, so that hooks see the residual sum), and ``remove()`` restores the block.

* ``BasicBlockCanonizer``, ``BottleneckCanonizer``: torchvision ResNet blocks;
* ``MBConvCanonizer``: EfficientNet-Lite's ``MBConvBlock`` (not in the paper): the block's
  forward exists here only; ``visxai.methods.baselines`` hands the same canonizer to zennit for
  LRP on EfficientNet-Lite (next to zennit's BatchNorm merging). A block with squeeze-excitation
  is refused (its sigmoid gating is not a supported layer).

``flat_convs(block)`` names the convolutions that the AGF authors propagate with the plain |z|
("flat") rule inside a block (their AGF code: in a ResNet Bottleneck only the 3x3 conv gets the
full AGF step; conv1, conv3 and the downsample conv are flat; in a BasicBlock conv2 and the
downsample conv are flat; we follow the same pattern in an MBConvBlock: the spatial (depthwise)
conv gets the full step, the 1x1 expand / project convs are flat).

``canonized(model)`` (the AGF tracer's context manager) applies the three canonizers, switches
in-place ReLUs to out-of-place (hooks need the inputs) and undoes everything in ``finally``.

Written by hand: zennit's own ResNet canonizers sum with zennit's one-input ``Sum`` over a
stacked tensor, which our tracer's two-input z-rule cannot read, and zennit has none for
EfficientNet-Lite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from zennit.canonizers import AttributeCanonizer

from ...errors import UnsupportedLayerError
from ...layers import Sum2

__all__ = [
    "BLOCK_CANONIZERS",
    "BasicBlockCanonizer",
    "BlockCanonizer",
    "BottleneckCanonizer",
    "MBConvCanonizer",
    "canonized",
]


class BlockCanonizer(AttributeCanonizer):
    """zennit-style canonizer of one block type: ``forward`` overloaded, the skip addition a
    ``Sum2`` module named ``canonizer_sum``. Subclasses define ``matches``, ``forward`` and
    ``flat_convs``, and may refuse a block in ``check``."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def matches(module: nn.Module) -> bool:
        raise NotImplementedError

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        """The convolutions of the block that AGF propagates with the flat rule."""
        raise NotImplementedError

    def check(self, name: str, module: nn.Module) -> None:
        """Raise ``UnsupportedLayerError`` for a block this canonizer cannot express."""

    def _attribute_map(self, name: str, module: nn.Module) -> dict | None:
        if not self.matches(module):
            return None
        return {"forward": self.forward.__get__(module), "canonizer_sum": Sum2()}

    def apply(self, root_module: nn.Module) -> list[AttributeCanonizer]:
        # every block is checked before any is changed: a refusal leaves the model untouched
        for name, module in root_module.named_modules():
            if self.matches(module):
                self.check(name, module)
        return super().apply(root_module)

    def copy(self) -> BlockCanonizer:
        return type(self)()


def _resnet_flat(module: nn.Module, flat: list[nn.Module]) -> list[nn.Module]:
    if module.downsample is not None:
        flat = flat + [m for m in module.downsample.modules() if isinstance(m, nn.Conv2d)]
    return flat


class BasicBlockCanonizer(BlockCanonizer):
    """torchvision ``BasicBlock``; flat: conv2 and the downsample conv."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        from torchvision.models.resnet import BasicBlock

        return isinstance(module, BasicBlock)

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(self.canonizer_sum(out, identity))

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        return _resnet_flat(module, [module.conv2])


class BottleneckCanonizer(BlockCanonizer):
    """torchvision ``Bottleneck``; flat: conv1, conv3 and the downsample conv."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        from torchvision.models.resnet import Bottleneck

        return isinstance(module, Bottleneck)

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(self.canonizer_sum(out, identity))

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        return _resnet_flat(module, [module.conv1, module.conv3])


class MBConvCanonizer(BlockCanonizer):
    """EfficientNet-Lite ``MBConvBlock`` (``efficientnet_lite_pytorch``); flat: the 1x1 expand
    and project convs. Refuses squeeze-excitation."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return type(module).__name__ == "MBConvBlock" and hasattr(module, "_depthwise_conv")

    @staticmethod
    def forward(
        self: nn.Module, inputs: torch.Tensor, drop_connect_rate: float | None = None
    ) -> torch.Tensor:
        # Same computation as efficientnet_lite_pytorch.model.MBConvBlock.forward in eval mode
        # (drop connect is the identity at inference), with the skip addition as a module.
        x = inputs
        if self._block_args.expand_ratio != 1:
            x = self._swish(self._bn0(self._expand_conv(inputs)))
        x = self._swish(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        bargs = self._block_args
        if bargs.id_skip and bargs.stride == 1 and bargs.input_filters == bargs.output_filters:
            x = self.canonizer_sum(x, inputs)
        return x

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        flat = [module._project_conv]
        if module._block_args.expand_ratio != 1:
            flat.append(module._expand_conv)
        return flat

    def check(self, name: str, module: nn.Module) -> None:
        if getattr(module, "has_se", False):
            raise UnsupportedLayerError(
                f"module '{name}' ({type(module).__name__}) uses squeeze-excitation "
                "(sigmoid gating), which AGF does not support"
            )


BLOCK_CANONIZERS: tuple[type[BlockCanonizer], ...] = (
    BasicBlockCanonizer,
    BottleneckCanonizer,
    MBConvCanonizer,
)


@contextlib.contextmanager
def canonized(model: nn.Module) -> Iterator[set[int]]:
    """Canonize ``model`` in place for the duration; yields the ids of the "flat" convolutions.

    Raises ``UnsupportedLayerError`` for an MBConvBlock with squeeze-excitation:
    its sigmoid gating is not a supported layer.
    """
    instances: list[BlockCanonizer] = []
    inplace: list[nn.Module] = []
    flat: set[int] = set()
    try:
        for module in model.modules():
            if isinstance(module, (nn.ReLU, nn.ReLU6)) and module.inplace:
                module.inplace = False
                inplace.append(module)
        for canonizer in BLOCK_CANONIZERS:
            applied = canonizer().apply(model)
            instances.extend(applied)
            for instance in applied:
                flat.update(id(m) for m in instance.flat_convs(instance.module))
        yield flat
    finally:
        for instance in reversed(instances):
            instance.remove()
        for module in inplace:
            module.inplace = True
