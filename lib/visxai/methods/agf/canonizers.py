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

The other torchvision classification families (``EXTENDED_CANONIZERS``, issue 19) get one
canonizer per block type in the same style, each putting a small module of ops.py where the
block's forward has a functional operation: squeeze-excitation's ``scale * input`` (``Gate``),
the residual additions of MobileNetV2 / V3, EfficientNet (``MBConv``, ``FusedMBConv``),
RegNet and ConvNeXt (``Sum2``; stochastic depth is the identity in eval), ConvNeXt's layer
scale (``Scale``), DenseNet's and ShuffleNetV2's ``torch.cat`` (``Cat``), ShuffleNetV2's
channel split and shuffle (``Chunk``, ``ChannelShuffle``), MNASNet's residual add, GoogLeNet's
``F.relu`` and Inception ``torch.cat``, and the functional global pools in the DenseNet /
MobileNetV2 / ShuffleNetV2 / MNASNet forward (``HeadCanonizer``). Their flat convolutions
are the 1x1 convolutions inside a block (outside its squeeze-excitation), as in a ResNet
Bottleneck: the spatial (3x3, depthwise) convolutions get the full AGF step.

``canonized(model)`` (the AGF tracer's context manager) applies every canonizer, switches
in-place activations to out-of-place (hooks need the inputs) and undoes everything in
``finally``.

Written by hand: zennit's own ResNet canonizers sum with zennit's one-input ``Sum`` over a
stacked tensor, which our tracer's two-input z-rule cannot read, and zennit has none for
EfficientNet-Lite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from zennit.canonizers import AttributeCanonizer

from ...errors import UnsupportedLayerError
from ...layers import Sum2
from .ops import Cat, ChannelShuffle, Chunk, Gate, Scale, SpatialMean

__all__ = [
    "BLOCK_CANONIZERS",
    "EXTENDED_CANONIZERS",
    "BasicBlockCanonizer",
    "BlockCanonizer",
    "BlockResidualCanonizer",
    "BottleneckCanonizer",
    "ConvNeXtBlockCanonizer",
    "DenseBlockCanonizer",
    "DenseLayerCanonizer",
    "GoogLeNetConvCanonizer",
    "HeadCanonizer",
    "InceptionCanonizer",
    "MNASNetBlockCanonizer",
    "MBConvCanonizer",
    "MobileNetV2BlockCanonizer",
    "RegNetBlockCanonizer",
    "ShuffleBlockCanonizer",
    "SqueezeExcitationCanonizer",
    "canonized",
    "uses_extended_canonizers",
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

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        """The small modules set on the block for the duration (default: ``canonizer_sum``)."""
        return {"canonizer_sum": Sum2()}

    def _attribute_map(self, name: str, module: nn.Module) -> dict | None:
        if not self.matches(module):
            return None
        return {"forward": self.forward.__get__(module), **self.extra_modules(module)}

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


# ----------------------------------------------------------------------------- issue 19 families
def _convs_1x1(module: nn.Module) -> list[nn.Module]:
    """The 1 x 1 convolutions of a block, outside its squeeze-excitation (AGF's flat ones)."""
    from torchvision.ops import SqueezeExcitation

    skip = {
        id(m) for se in module.modules() if isinstance(se, SqueezeExcitation) for m in se.modules()
    }
    return [
        m
        for m in module.modules()
        if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1) and id(m) not in skip
    ]


def _is(module: nn.Module, path: str, name: str) -> bool:
    t = type(module)
    return t.__name__ == name and t.__module__ == path


class SqueezeExcitationCanonizer(BlockCanonizer):
    """torchvision ``SqueezeExcitation`` (MobileNetV3, EfficientNet, RegNet-Y): ``scale * input``
    becomes a ``Gate`` call; the gate is held constant for relevance (the squeeze branch gets
    none), as Ali et al. 2022 do for gating terms."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        from torchvision.ops import SqueezeExcitation

        return isinstance(module, SqueezeExcitation)

    @staticmethod
    def forward(self: nn.Module, input: torch.Tensor) -> torch.Tensor:
        return self.canonizer_gate(input, self._scale(input))

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        return []

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        return {"canonizer_gate": Gate()}


class MobileNetV2BlockCanonizer(BlockCanonizer):
    """torchvision MobileNetV2 ``InvertedResidual``: ``x + self.conv(x)``; flat: its 1x1 convs."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.mobilenetv2", "InvertedResidual")

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return self.canonizer_sum(x, self.conv(x))
        return self.conv(x)

    flat_convs = staticmethod(_convs_1x1)


class BlockResidualCanonizer(BlockCanonizer):
    """torchvision MobileNetV3 ``InvertedResidual``, EfficientNet ``MBConv`` / ``FusedMBConv``:
    ``result = block(input)`` (+ stochastic depth, the identity in eval) ``+= input``; flat:
    the 1x1 convs outside the squeeze-excitation."""

    _TYPES = (
        ("torchvision.models.mobilenetv3", "InvertedResidual"),
        ("torchvision.models.efficientnet", "MBConv"),
        ("torchvision.models.efficientnet", "FusedMBConv"),
    )

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return any(_is(module, p, n) for p, n in BlockResidualCanonizer._TYPES)

    @staticmethod
    def forward(self: nn.Module, input: torch.Tensor) -> torch.Tensor:
        result = self.block(input)
        if self.use_res_connect:
            if hasattr(self, "stochastic_depth"):
                result = self.stochastic_depth(result)
            result = self.canonizer_sum(result, input)
        return result

    flat_convs = staticmethod(_convs_1x1)


class RegNetBlockCanonizer(BlockCanonizer):
    """torchvision RegNet ``ResBottleneckBlock``: ``proj(x) + f(x)`` (or ``x + f(x)``), then the
    activation; flat: the 1x1 convs (a, c, proj), as in a ResNet Bottleneck."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.regnet", "ResBottleneckBlock")

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            x = self.canonizer_sum(self.proj(x), self.f(x))
        else:
            x = self.canonizer_sum(x, self.f(x))
        return self.activation(x)

    flat_convs = staticmethod(_convs_1x1)


class ShuffleBlockCanonizer(BlockCanonizer):
    """torchvision ShuffleNetV2 ``InvertedResidual``: the channel split (``Chunk``), the
    concatenation (``Cat``) and ``channel_shuffle`` (``ChannelShuffle``); flat: its 1x1 convs."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.shufflenetv2", "InvertedResidual")

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = self.canonizer_half0(x), self.canonizer_half1(x)
            out = self.canonizer_cat(x1, self.branch2(x2))
        else:
            out = self.canonizer_cat(self.branch1(x), self.branch2(x))
        return self.canonizer_shuffle(out)

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        return {
            "canonizer_half0": Chunk(2, 0),
            "canonizer_half1": Chunk(2, 1),
            "canonizer_cat": Cat(1),
            "canonizer_shuffle": ChannelShuffle(2),
        }

    flat_convs = staticmethod(_convs_1x1)


class ConvNeXtBlockCanonizer(BlockCanonizer):
    """torchvision ConvNeXt ``CNBlock``: ``layer_scale * block(input)`` (``Scale``), stochastic
    depth (the identity in eval), ``+= input``. No flat convs: its pointwise layers are Linear
    layers on [B, H, W, C], which AGF propagates with C only (see ``AGFRules.linear``)."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.convnext", "CNBlock")

    @staticmethod
    def forward(self: nn.Module, input: torch.Tensor) -> torch.Tensor:
        result = self.canonizer_scale(self.block(input))
        result = self.stochastic_depth(result)
        return self.canonizer_sum(result, input)

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        return {"canonizer_sum": Sum2(), "canonizer_scale": Scale(module.layer_scale)}

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        return []


class DenseLayerCanonizer(BlockCanonizer):
    """torchvision DenseNet ``_DenseLayer``: ``torch.cat`` of the previous features (``Cat``);
    flat: its 1x1 bottleneck conv."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.densenet", "_DenseLayer")

    @staticmethod
    def forward(self: nn.Module, input: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        prev = [input] if isinstance(input, torch.Tensor) else input
        out = self.conv1(self.relu1(self.norm1(self.canonizer_cat(*prev))))
        new = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0 and self.training:
            new = F.dropout(new, p=self.drop_rate, training=self.training)
        return new

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        return {"canonizer_cat": Cat(1)}

    flat_convs = staticmethod(_convs_1x1)


class DenseBlockCanonizer(BlockCanonizer):
    """torchvision DenseNet ``_DenseBlock``: the final ``torch.cat`` (``Cat``)."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.densenet", "_DenseBlock")

    @staticmethod
    def forward(self: nn.Module, init_features: torch.Tensor) -> torch.Tensor:
        features = [init_features]
        for name, layer in self.items():
            if not name.startswith("canonizer_"):  # a ModuleDict: our Cat is one of its items
                features.append(layer(features))
        return self.canonizer_cat(*features)

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        return {"canonizer_cat": Cat(1)}

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        return []


class MNASNetBlockCanonizer(BlockCanonizer):
    """torchvision MNASNet ``_InvertedResidual``: ``layers(input) + input``; flat: its 1x1
    convs."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.mnasnet", "_InvertedResidual")

    @staticmethod
    def forward(self: nn.Module, input: torch.Tensor) -> torch.Tensor:
        if self.apply_residual:
            return self.canonizer_sum(self.layers(input), input)
        return self.layers(input)

    flat_convs = staticmethod(_convs_1x1)


class GoogLeNetConvCanonizer(BlockCanonizer):
    """torchvision GoogLeNet ``BasicConv2d``: the functional ``F.relu`` becomes a ReLU module.
    No flat convs of its own (an ``Inception`` block makes its 1x1 convs flat)."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.googlenet", "BasicConv2d")

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.canonizer_relu(self.bn(self.conv(x)))

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        return {"canonizer_relu": nn.ReLU()}

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        return []


class InceptionCanonizer(BlockCanonizer):
    """torchvision GoogLeNet ``Inception``: ``torch.cat`` of the four branches (``Cat``);
    flat: its 1x1 convs."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return _is(module, "torchvision.models.googlenet", "Inception")

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.canonizer_cat(*self._forward(x))

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        return {"canonizer_cat": Cat(1)}

    flat_convs = staticmethod(_convs_1x1)


class HeadCanonizer(BlockCanonizer):
    """The functional global pools in the classifiers' own forward: DenseNet
    (``F.relu``, ``F.adaptive_avg_pool2d``), MobileNetV2 (``F.adaptive_avg_pool2d``),
    ShuffleNetV2 and MNASNet (``x.mean([2, 3])``) become module calls. No flat convs."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return any(
            _is(module, p, n)
            for p, n in (
                ("torchvision.models.densenet", "DenseNet"),
                ("torchvision.models.mobilenetv2", "MobileNetV2"),
                ("torchvision.models.shufflenetv2", "ShuffleNetV2"),
                ("torchvision.models.mnasnet", "MNASNet"),
            )
        )

    @staticmethod
    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if name == "DenseNet":
            x = self.canonizer_pool(self.canonizer_relu(self.features(x)))
            return self.classifier(torch.flatten(x, 1))
        if name == "MobileNetV2":
            x = self.canonizer_pool(self.features(x))
            return self.classifier(torch.flatten(x, 1))
        if name == "MNASNet":
            return self.classifier(self.canonizer_pool(self.layers(x)))
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(self.canonizer_pool(x))

    @staticmethod
    def extra_modules(module: nn.Module) -> dict[str, nn.Module]:
        name = type(module).__name__
        if name in ("ShuffleNetV2", "MNASNet"):
            return {"canonizer_pool": SpatialMean((2, 3))}
        out: dict[str, nn.Module] = {"canonizer_pool": nn.AdaptiveAvgPool2d((1, 1))}
        if name == "DenseNet":
            out["canonizer_relu"] = nn.ReLU()
        return out

    @staticmethod
    def flat_convs(module: nn.Module) -> list[nn.Module]:
        return []


#: the canonizers added for the torchvision families beyond VGG / ResNet (zennit has none)
EXTENDED_CANONIZERS: tuple[type[BlockCanonizer], ...] = (
    SqueezeExcitationCanonizer,
    MobileNetV2BlockCanonizer,
    BlockResidualCanonizer,
    RegNetBlockCanonizer,
    ShuffleBlockCanonizer,
    ConvNeXtBlockCanonizer,
    DenseLayerCanonizer,
    DenseBlockCanonizer,
    MNASNetBlockCanonizer,
    GoogLeNetConvCanonizer,
    InceptionCanonizer,
    HeadCanonizer,
)


def uses_extended_canonizers(model: nn.Module) -> bool:
    """True if a block of ``model`` needs one of ``EXTENDED_CANONIZERS``."""
    return any(c.matches(m) for m in model.modules() for c in EXTENDED_CANONIZERS)


BLOCK_CANONIZERS: tuple[type[BlockCanonizer], ...] = (
    BasicBlockCanonizer,
    BottleneckCanonizer,
    MBConvCanonizer,
    *EXTENDED_CANONIZERS,
)


#: activations whose in-place form is switched off for the duration (hooks need the inputs)
_INPLACE = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh)


@contextlib.contextmanager
def canonized(model: nn.Module) -> Iterator[set[int]]:
    """Canonize ``model`` in place for the duration (every canonizer of ``BLOCK_CANONIZERS``);
    yields the ids of the "flat" convolutions.

    Raises ``UnsupportedLayerError`` for an MBConvBlock with squeeze-excitation:
    its sigmoid gating is not a supported layer.
    """
    instances: list[BlockCanonizer] = []
    inplace: list[nn.Module] = []
    flat: set[int] = set()
    try:
        for module in model.modules():
            if isinstance(module, _INPLACE) and module.inplace:
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
