"""SimCLRv2 ResNets (Chen et al., NeurIPS 2020) in PyTorch, converted from the authors' TensorFlow
checkpoints.

Pixel Invariance explains SimCLRv2 ResNet-50 1x and 2x (``r50_1x_sk0``, ``r50_2x_sk0``) through
their 3-layer projection heads. The weights exist only as TensorFlow checkpoints; the paper's
authors converted them with Separius/SimCLRv2-Pytorch, which needs TensorFlow. Here the checkpoint
is read by :class:`visxai.data.tf_checkpoint.TFCheckpoint` (no TensorFlow) and mapped onto
:class:`SimCLRv2`, a module that computes what the TensorFlow graph of google-research/simclr
(``resnet.py``, ``model_util.py``) computes:

* ResNet v1 with bottleneck blocks, stride on the 3x3 convolution, every width times the width
  multiplier (stem 64w channels, output 2048w), BN eps 1e-5, no selective kernels (``sk0``);
* the stem's max-pool uses TensorFlow's ``SAME`` padding (pad right/bottom only for even sizes),
  not ``nn.MaxPool2d(3, 2, padding=1)`` as the Separius port (and so the Pixel Invariance code)
  does; the two differ on the first row and column of every even-sized feature map;
* images are in [0, 1] RGB, not normalised (SimCLR's preprocessing);
* the contrastive head ``head_contrastive/nl_{0,1,2}``: dense (no bias) + BN (+ ReLU) twice, then
  dense + BN without a learned bias (``center=False``: its bias is fixed at zero).

Variable names: TensorFlow 1 layers are numbered in creation order (``conv2d``, ``conv2d_1``, ...,
``batch_normalization_N``); a bottleneck block creates its projection shortcut first, then
conv1-conv3. :class:`Bottleneck` registers its modules in that order, so the n-th ``Conv2d`` /
``BatchNorm2d`` of ``SimCLRv2.encoder.modules()`` is ``conv2d_n`` / ``batch_normalization_n``
(the rule Separius' converter also relies on). Kernels go from HWIO to OIHW, dense kernels are
transposed. ``tests/test_simclrv2.py`` converts a checkpoint written by the authors' own
TensorFlow code (depth 50, width 1/16, random weights) and matches TensorFlow's outputs.

Written by hand: the ResNet (torchvision's has no width multiplier on the stem and output, and
its stem pooling pads both sides) and the name mapping (~40 lines).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tf_checkpoint import TFCheckpoint

__all__ = [
    "SimCLRv2",
    "SimCLRv2ResNet",
    "ContrastiveHead",
    "simclrv2_state",
    "load_simclrv2",
    "DEPTHS",
]

#: blocks per stage for the depths the SimCLRv2 release uses
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
_EPS = 1e-5


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=_EPS)


class TFSameMaxPool(nn.Module):
    """3x3 / stride-2 max pool with TensorFlow's ``SAME`` padding (the extra pixel goes
    right/bottom)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class Bottleneck(nn.Module):
    """TF1 SimCLR ``bottleneck_block`` (sk_ratio 0): shortcut created first, then conv1-conv3."""

    def __init__(self, cin: int, filters: int, stride: int, projection: bool) -> None:
        super().__init__()
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, 4 * filters, 1, stride, bias=False), _bn(4 * filters))
            if projection
            else nn.Identity()
        )
        self.conv1, self.bn1 = nn.Conv2d(cin, filters, 1, bias=False), _bn(filters)
        self.conv2, self.bn2 = (
            nn.Conv2d(filters, filters, 3, stride, padding=1, bias=False),
            _bn(filters),
        )
        self.conv3, self.bn3 = nn.Conv2d(filters, 4 * filters, 1, bias=False), _bn(4 * filters)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class SimCLRv2ResNet(nn.Module):
    """SimCLRv2's ResNet v1 trunk; ``width`` multiplies every channel count; output [N, 2048 *
    width]."""

    def __init__(self, depth: int = 50, width: float = 1) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth}")
        stem = int(64 * width)
        if stem < 1 or abs(64 * width - stem) > 1e-9:
            raise ValueError(f"width {width} must make 64 * width a positive integer")
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem, 7, 2, padding=3, bias=False), _bn(stem), nn.ReLU(), TFSameMaxPool()
        )
        stages, cin = [], stem
        for i, n in enumerate(DEPTHS[depth]):
            filters = stem * 2**i
            blocks = [Bottleneck(cin, filters, 1 if i == 0 else 2, True)]
            blocks += [Bottleneck(4 * filters, filters, 1, False) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = 4 * filters
        self.stages = nn.Sequential(*stages)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))


class ContrastiveHead(nn.Sequential):
    """``head_contrastive``: (dense + BN + ReLU) x 2, dense + BN (bias fixed at 0, TF
    ``center=False``)."""

    def __init__(self, dim: int, out_dim: int = 128) -> None:
        layers: list[nn.Module] = []
        for _ in range(2):
            layers += [nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim, eps=_EPS), nn.ReLU()]
        last = nn.BatchNorm1d(out_dim, eps=_EPS)
        last.bias.requires_grad_(False)
        layers += [nn.Linear(dim, out_dim, bias=False), last]
        super().__init__(*layers)


class SimCLRv2(nn.Module):
    """Trunk + contrastive head; input [N, 3, H, W] in [0, 1] (SimCLR does not normalise)."""

    def __init__(self, depth: int = 50, width: float = 1, out_dim: int = 128) -> None:
        super().__init__()
        self.encoder = SimCLRv2ResNet(depth, width)
        self.head = ContrastiveHead(self.encoder.out_dim, out_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features [N, 2048 * width] (TF ``final_avg_pool``)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projection-head output [N, out_dim] (the features Pixel Invariance compares)."""
        return self.head(self.encoder(x))


def _numbered(ckpt: TFCheckpoint, scope: str, layer: str, leaf: str) -> list[str]:
    """``scope/layer(_N)?/leaf`` names sorted by N (TF1's creation order)."""
    pat = re.compile(rf"^{re.escape(scope)}/{layer}(?:_(\d+))?/{leaf}$")
    found = [(int(m.group(1) or 0), k) for k in ckpt.keys() if (m := pat.match(k))]
    return [k for _, k in sorted(found)]


def simclrv2_state(
    ckpt: TFCheckpoint, ema: bool = True
) -> tuple[dict[str, torch.Tensor], int, float]:
    """Map a SimCLRv2 TF checkpoint onto :class:`SimCLRv2`: returns (state dict, depth, width).

    ``ema=True`` takes the exponential-moving-average weights (``ema_model/...``), as the Pixel
    Invariance authors did (``convert.py --ema``). Depth and width are read off the checkpoint.
    Raises ``ValueError`` naming what is missing when the file is not a SimCLRv2 ``sk0`` checkpoint.
    """
    prefix = "ema_model/" if ema else ""
    base, head = prefix + "base_model", prefix + "head_contrastive"
    convs = _numbered(ckpt, base, "conv2d", "kernel")
    bns = [k.removesuffix("/gamma") for k in _numbered(ckpt, base, "batch_normalization", "gamma")]
    if not convs:
        scopes = sorted({k.split("/")[0] for k in ckpt.keys()})
        hint = (
            " (try ema=False)"
            if ema and "base_model" in scopes
            else " (try ema=True)"
            if "ema_model" in scopes
            else ""
        )
        raise ValueError(
            f"no '{base}/conv2d*/kernel' variables in {ckpt.prefix}: not a SimCLRv2 "
            f"checkpoint{hint}; top-level scopes: {scopes}"
        )
    depth = next((d for d, n in DEPTHS.items() if 1 + 3 * sum(n) + 4 == len(convs)), None)
    if depth is None:
        raise ValueError(
            f"{len(convs)} convolutions in {ckpt.prefix}: not a SimCLRv2 ResNet-50/101/152 without "
            "selective kernels (sk1 checkpoints are not supported)"
        )
    width = ckpt.shape(convs[0])[-1] / 64
    out_dim = (
        ckpt.shape(f"{head}/nl_2/dense/kernel")[-1] if f"{head}/nl_2/dense/kernel" in ckpt else 128
    )
    model = SimCLRv2(depth, width, out_dim)
    state: dict[str, torch.Tensor] = {}
    names = dict(model.named_modules())
    conv_mods = [n for n, m in model.encoder.named_modules() if isinstance(m, nn.Conv2d)]
    bn_mods = [n for n, m in model.encoder.named_modules() if isinstance(m, nn.BatchNorm2d)]
    if len(bns) != len(bn_mods):
        raise ValueError(
            f"{len(bns)} batch norms in {ckpt.prefix}, the ResNet-{depth} needs {len(bn_mods)}"
        )

    def put(module: str, param: str, value: torch.Tensor) -> None:
        target = names[module]._parameters.get(param)
        target = target if target is not None else names[module]._buffers[param]
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(
                f"{module}.{param}: checkpoint shape {tuple(value.shape)} != model shape "
                f"{tuple(target.shape)}"
            )
        state[f"{module}.{param}"] = value.float()

    def put_bn(module: str, tf: str, center: bool = True) -> None:
        put(module, "weight", ckpt[f"{tf}/gamma"])
        put(module, "bias", ckpt[f"{tf}/beta"] if center else torch.zeros_like(names[module].bias))
        put(module, "running_mean", ckpt[f"{tf}/moving_mean"])
        put(module, "running_var", ckpt[f"{tf}/moving_variance"])
        state[f"{module}.num_batches_tracked"] = torch.tensor(0)

    for mod, tf in zip(conv_mods, convs):
        put("encoder." + mod, "weight", ckpt[tf].permute(3, 2, 0, 1))  # HWIO -> OIHW
    for mod, tf in zip(bn_mods, bns):
        put_bn("encoder." + mod, tf)
    for i, (lin, bn) in enumerate(((0, 1), (3, 4), (6, 7))):
        key = f"{head}/nl_{i}/dense/kernel"
        if key not in ckpt:
            raise ValueError(
                f"{key} missing in {ckpt.prefix}: Pixel Invariance needs the 3-layer projection "
                "head"
            )
        put(f"head.{lin}", "weight", ckpt[key].t())
        put_bn(f"head.{bn}", f"{head}/nl_{i}/batch_normalization", center=i < 2)
    return state, depth, width


def load_simclrv2(path: str | Path, ema: bool = True) -> SimCLRv2:
    """Read the TF checkpoint at ``path`` (prefix, ``.index`` file or its folder) into
    :class:`SimCLRv2`, eval mode."""
    state, depth, width = simclrv2_state(TFCheckpoint(path), ema=ema)
    model = SimCLRv2(depth, width, state["head.7.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    return model.eval()
