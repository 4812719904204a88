"""A forward-only copy of a model for evaluation passes: batch norm folded into its convolution.

Some passes run a network forward only: notebook 01's features (Pixel Invariance's augments, the
similarity score of Insertion / Deletion), notebook 02's negative perturbation test on photos. No
gradient, no attribution rule looks inside. There, every
``BatchNorm2d`` after a convolution is a per-channel affine map that can be folded into the
convolution's weight and bias (``torch.nn.utils.fusion.fuse_conv_bn_weights``), and a symmetric
zero padding in front of a convolution can be the convolution's own padding. The copy computes the
same function up to float rounding in fewer passes over memory (1.3-1.8x on EfficientNet-Lite:
the "fwd folded" column of ``benchmarks/bench_models.py``).

Written here: which (convolution, batch norm) pairs follow each other. torch.fx's ``fuse`` finds
them by tracing, which EfficientNet-Lite's same-padding convolutions (not ``nn.Conv2d`` calls
under tracing) and the models' input checks defeat, so the pairs are read off the module names of
EfficientNet-Lite (``efficientnet_lite_pytorch``: ``_conv_stem``/``_bn0``, ``_conv_head``/
``_bn1``, and per block ``_expand_conv``/``_bn0``, ``_depthwise_conv``/``_bn1``,
``_project_conv``/``_bn2``), of torchvision's ResNet blocks and stems (``conv1``/``bn1``, ...,
also the project's SmallResNet) and of ``nn.Sequential`` (a ``Conv2d`` directly followed by a
``BatchNorm2d``, e.g. ResNet's downsample). Models without such pairs are copied unchanged
(frozen, eval mode).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ["inference_copy", "fold_batchnorm"]

#: EfficientNet-Lite's (convolution, batch norm) attribute pairs: on the network, on each block
_EFFICIENTNET_PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))
_BLOCK_PAIRS = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))
#: torchvision's ResNet blocks and stems (also the project's SmallResNet): ``bn_i(conv_i(x))``
_RESNET_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def _resnet_like(module: nn.Module) -> bool:
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    from .small_cnns import SmallResNet

    return isinstance(module, BasicBlock | Bottleneck | ResNet | SmallResNet)


def _fold(owner: nn.Module, conv_name: str, bn_name: str) -> bool:
    conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        return False
    if not bn.track_running_stats or bn.running_mean is None:
        return False
    w, b = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    conv.weight, conv.bias = w, b
    setattr(owner, bn_name, nn.Identity())
    return True


def _symmetric_padding_into_conv(conv: nn.Module) -> bool:
    """EfficientNet-Lite's ``Conv2dStaticSamePadding``: a ZeroPad2d with equal sides becomes the
    convolution's own padding (one pass less over the input)."""
    pad = getattr(conv, "static_padding", None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(pad, nn.ZeroPad2d):
        return False
    left, right, top, bottom = pad.padding
    if left != right or top != bottom or conv.padding_mode != "zeros":
        return False
    ph, pw = conv.padding if isinstance(conv.padding, tuple) else (0, 0)
    conv.padding = (ph + top, pw + left)
    conv.static_padding = nn.Identity()
    return True


def fold_batchnorm(model: nn.Module) -> int:
    """Fold, in place, every batch norm that follows a convolution (see the module docstring)
    into it, and symmetric static paddings into the convolutions. The model must be in eval mode
    (the running statistics are what is folded). Returns the number of batch norms folded."""
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (call .eval() first)")
    n = 0
    for module in model.modules():
        if hasattr(module, "_blocks") and hasattr(module, "_conv_stem"):
            n += sum(_fold(module, c, b) for c, b in _EFFICIENTNET_PAIRS)
        if hasattr(module, "_depthwise_conv") and hasattr(module, "_project_conv"):
            n += sum(_fold(module, c, b) for c, b in _BLOCK_PAIRS)
        if _resnet_like(module):
            n += sum(_fold(module, c, b) for c, b in _RESNET_PAIRS)
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                n += _fold(module, a, b)
        _symmetric_padding_into_conv(module)
    return n


def inference_copy(model: nn.Module, channels_last: bool | None = None) -> nn.Module:
    """A frozen eval-mode deep copy of ``model`` with its batch norms folded
    (:func:`fold_batchnorm`), for forward passes only (no attribution through it); the original
    is untouched. ``channels_last``: convolution weights in that memory format (None: on the
    CPU). A model that already is such a copy is returned as it is (e.g. by an optimiser's
    ``replace``)."""
    if getattr(model, "_visxai_inference_copy", False):
        return model
    out = copy.deepcopy(model).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    fold_batchnorm(out)
    dev = next(out.parameters(), torch.empty(0)).device
    if dev.type == "cpu" if channels_last is None else channels_last:
        out = out.to(memory_format=torch.channels_last)
    out._visxai_inference_copy = True
    return out
