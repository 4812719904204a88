"""Canonizers: make residual additions explicit modules so that hooks can see them.

Like zennit's ``ResNetBottleneckCanonizer`` (an instance-level ``forward`` override plus a
``Sum`` module), but for our tracer: the addition becomes a call of ``Sum2`` (a module with two
inputs, z-rule), and the convolutions that the authors propagate with the plain |z| ("flat")
rule inside a block are marked (as in the authors' AGF code: in a ResNet Bottleneck only the 3x3 conv gets
the full AGF step; conv1, conv3 and the downsample conv are flat; in a BasicBlock conv2 and the
downsample conv are flat). For EfficientNet-Lite's MBConvBlock (not in the paper) we follow the
same pattern: the spatial (depthwise) conv gets the full step, the 1x1 expand / project convs
are flat. In-place ReLUs are switched to out-of-place while canonized (hooks need the inputs).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn

from ...errors import UnsupportedLayerError
from ...layers import Sum2


def _basic_block_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    return self.relu(self.agf_sum(out, identity))


def _bottleneck_forward(self, x: torch.Tensor) -> torch.Tensor:
    identity = x
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    if self.downsample is not None:
        identity = self.downsample(x)
    return self.relu(self.agf_sum(out, identity))


def _mbconv_forward(
    self, inputs: torch.Tensor, drop_connect_rate: float | None = None
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
        x = self.agf_sum(x, inputs)
    return x


def _block_kind(module: nn.Module) -> str | None:
    from torchvision.models.resnet import BasicBlock, Bottleneck

    if isinstance(module, Bottleneck):
        return "bottleneck"
    if isinstance(module, BasicBlock):
        return "basic"
    if type(module).__name__ == "MBConvBlock" and hasattr(module, "_depthwise_conv"):
        return "mbconv"
    return None


_FORWARDS = {
    "basic": _basic_block_forward,
    "bottleneck": _bottleneck_forward,
    "mbconv": _mbconv_forward,
}


def _flat_convs(kind: str, module: nn.Module) -> list[nn.Module]:
    if kind == "bottleneck":
        flat = [module.conv1, module.conv3]
    elif kind == "basic":
        flat = [module.conv2]
    else:
        flat = [module._project_conv]
        if module._block_args.expand_ratio != 1:
            flat.append(module._expand_conv)
    if kind in ("basic", "bottleneck") and module.downsample is not None:
        flat += [m for m in module.downsample.modules() if isinstance(m, nn.Conv2d)]
    return flat


@contextlib.contextmanager
def canonized(model: nn.Module) -> Iterator[set[int]]:
    """Canonize ``model`` in place for the duration; yields the ids of the "flat" convolutions.

    Raises ``UnsupportedLayerError`` for an MBConvBlock with squeeze-excitation:
    its sigmoid gating is not a supported layer.
    """
    patched: list[nn.Module] = []
    inplace: list[nn.Module] = []
    flat: set[int] = set()
    try:
        for name, module in list(model.named_modules()):
            if isinstance(module, (nn.ReLU, nn.ReLU6)) and module.inplace:
                module.inplace = False
                inplace.append(module)
            kind = _block_kind(module)
            if kind is None:
                continue
            if kind == "mbconv" and getattr(module, "has_se", False):
                raise UnsupportedLayerError(
                    f"module '{name}' ({type(module).__name__}) uses squeeze-excitation "
                    "(sigmoid gating), which AGF does not support"
                )
            module.forward = types.MethodType(_FORWARDS[kind], module)
            module.agf_sum = Sum2()
            patched.append(module)
            flat.update(id(m) for m in _flat_convs(kind, module))
        yield flat
    finally:
        for module in patched:
            del module.forward
            del module.agf_sum
        for module in inplace:
            module.inplace = True
