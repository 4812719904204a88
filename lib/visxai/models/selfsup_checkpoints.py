"""The paper profile's self-supervised models (Gur et al., AAAI 2021, "Explainability for
Self-Supervised Models", Fig. 4, Table 4), loaded from the authors' releases through manifests.

* ``"scan"`` -- SCAN (Van Gansbeke et al., ECCV 2020; wvangansbeke/Unsupervised-Classification),
  ImageNet, 1000 clusters: a torchvision ResNet-50 backbone and 10 linear cluster heads. The
  file (manifest ``scan-r50-imagenet``, Google Drive only) is ``{'model': state_dict, 'head':
  k}`` as written by the authors' ``scan.py``; ``k`` (a numpy int) is the lowest-SCAN-loss head,
  the one the authors evaluate (``eval.py``), and it is the head explained here.
* ``"sela"`` -- SeLa (Asano, Rupprecht & Vedaldi, ICLR 2020; yukimasano/self-label), ImageNet,
  ResNet-50 "10x3k": the authors' *pre-activation* ResNet-50 (``models/resnetv2.py``) with 10
  heads ``top_layer0..9`` of 3000 clusters, ``resnet-10x3k.pth`` inside ``pretrained.zip``
  (manifest ``sela-r50-imagenet``). The heads are symmetric (same K, trained alike) and the
  release records no preferred one; neither the AGF paper nor its code
  (shirgur/AGFVisualization) names one. We explain **head 0** (``head=`` changes it), as the
  authors themselves do when they turn a multi-head model into a single-head torchvision one
  (``change_state_dict.py``: ``fc0`` becomes ``fc``).
* ``"rotnet"`` -- the "RotNet" AlexNet of Asano et al. 2019a ("A critical analysis of
  self-supervision"; yukimasano/linear-probes): the DeepCluster-style AlexNet with BatchNorm
  (``alexnet.py``, ``bn=True``) and a 4-way rotation head ``top_layer``. No public weight
  release was found (manifest ``rotnet-alexnet-imagenet`` takes a user-provided file). For
  Fig. 4b, :attr:`AsanoAlexNet.blocks` exposes the five conv stages for per-layer linear probes
  (e.g. :class:`visxai.models.rotnet_probes.ProbedModel`).

All three expect ImageNet mean/std normalisation of 224x224 RGB crops (Resize 256 + CenterCrop
224, the authors' evaluation transforms). :func:`load_paper_selfsup` returns a
:class:`SelfSupModel`; its ``model`` maps normalised images to the SSL task's logits through a
final ``nn.Linear`` called ``head`` (``phi_tau`` of Algorithm 2) and ``model.embed(x)`` gives the
penultimate activations (``phi_F``), so :func:`visxai.methods.agf_selfsupervised.penultimate_split`,
``latent_bank`` and ``explain_ssl`` work on it exactly as on the offline
:class:`visxai.models.selfsup_miniatures.RotNet`.

What is written by hand and why: torchvision's ``resnet50`` is used as is for SCAN (its
checkpoint *is* a torchvision ResNet-50). SeLa's pre-activation bottleneck and the AlexNet are
not in torchvision, and the authors' versions use functional ``F.relu`` and in-place ``+=``,
which AGF's tracer cannot see; :class:`PreActBottleneck` and :class:`AsanoAlexNet` recompute
exactly the same function with ``nn.ReLU`` modules and an explicit
:class:`~visxai.layers.Sum2` residual, under the authors' parameter names so the state dicts
map one to one. (AGF's "flat" rule for the 1x1 convs is only applied to torchvision blocks, so
in SeLa every conv gets the full AGF step.) The state-dict mappings (:func:`scan_state`,
:func:`sela_state`, :func:`rotnet_state`) are pure functions and raise ``ValueError`` naming the
file a checkpoint looks like when it is the wrong one.

Checkpoints are read with ``torch.load(..., weights_only=True)``. SCAN's ``'head'`` is a
``numpy.int64``, which the restricted unpickler refuses by default; :func:`load_checkpoint`
allowlists exactly numpy's scalar reconstructor (under its numpy 1 and numpy 2 module names) and
the int64 dtype, nothing else.
"""

from __future__ import annotations

import importlib
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .imagenet_classifiers import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "PAPER_SELFSUP_ARTEFACTS",
    "SelfSupModel",
    "SCANResNet50",
    "PreActBottleneck",
    "SeLaResNet50",
    "AsanoAlexNet",
    "load_checkpoint",
    "scan_state",
    "sela_state",
    "rotnet_state",
    "build_scan",
    "build_sela",
    "build_rotnet",
    "load_paper_selfsup",
    "selfsup_preprocess",
]

#: name -> (manifest, file in the manifest)
PAPER_SELFSUP_ARTEFACTS: dict[str, tuple[str, str]] = {
    "scan": ("scan-r50-imagenet", "scan_imagenet_resnet50.pth.tar"),
    "sela": ("sela-r50-imagenet", "pretrained.zip"),
    "rotnet": ("rotnet-alexnet-imagenet", "rotnet_alexnet.pth"),
}
SELA_MEMBER = "resnet-10x3k.pth"
INPUT_SIZE = 224
RESIZE = 256


# ------------------------------------------------------------------------------------ models
class SCANResNet50(nn.Module):
    """SCAN's ``ClusteringModel`` with one head: torchvision ResNet-50 (``fc`` = Identity) +
    ``head``."""

    def __init__(self, num_clusters: int = 1000) -> None:
        super().__init__()
        from torchvision.models import resnet50

        self.backbone = resnet50()
        self.backbone.fc = nn.Identity()
        self.head = nn.Linear(2048, num_clusters)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, 2048] (global-average-pooled layer4)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class PreActBottleneck(nn.Module):
    """SeLa's pre-activation bottleneck (self-label ``models/resnetv2.py``), traceable by AGF.

    ``out = conv3(relu(bn3(conv2(relu(bn2(conv1(a))))))) + shortcut``, with ``a = relu(bn1(x))``
    and ``shortcut = shortcut_conv(a)`` when the shape changes, else ``x``.
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        from ..layers import Sum2

        out = self.expansion * planes
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu3 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride=stride, bias=False))
        self.add = Sum2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.relu1(self.bn1(x))
        short = self.shortcut(a) if self.shortcut is not None else x
        out = self.conv1(a)
        out = self.conv2(self.relu2(self.bn2(out)))
        out = self.conv3(self.relu3(self.bn3(out)))
        return self.add(out, short)


class SeLaResNet50(nn.Module):
    """SeLa's pre-activation ResNet-50 (``resnetv2(nlayers=50)``) with one clustering ``head``.

    ``features``: 7x7/2 conv, 3x3/2 max-pool, four PreAct stages (3, 4, 6, 3 blocks), global
    average pooling -- as the authors', with no BatchNorm/ReLU after the last block.
    """

    def __init__(self, num_clusters: int = 3000) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        in_planes = 64
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage = []
            for s in [stride] + [1] * (blocks - 1):
                stage.append(PreActBottleneck(in_planes, planes, s))
                in_planes = planes * PreActBottleneck.expansion
            layers.append(nn.Sequential(*stage))
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(2048, num_clusters)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, 2048]."""
        return self.flatten(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


#: AlexNet conv widths of linear-probes/alexnet.py, size 'big'
ALEXNET_WIDTHS = (96, 256, 384, 384, 256)
_ALEXNET_CONVS = ((11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1))  # kernel, stride, pad
_ALEXNET_POOL_AFTER = (True, True, False, False, True)


class AsanoAlexNet(nn.Module):
    """The AlexNet with BatchNorm of yukimasano/linear-probes (``alexnet.py``, ``bn=True``) +
    ``head``.

    ``features`` (indices as the authors': conv 0/4/8/11/14, BN 1/5/9/12/15, max-pools 3/7/17),
    ``classifier`` = Dropout, Linear(C5*6*6, hidden), ReLU, Dropout, Linear(hidden, hidden), ReLU;
    ``head`` = the rotation classifier ``top_layer``. ``widths``/``hidden`` default to the
    release's sizes (96-256-384-384-256, 4096); the loader takes them from the checkpoint.
    """

    def __init__(
        self, num_classes: int = 4, widths: tuple[int, ...] = ALEXNET_WIDTHS, hidden: int = 4096
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        self._stage_ends: list[int] = []
        for w, (k, s, p), pool in zip(widths, _ALEXNET_CONVS, _ALEXNET_POOL_AFTER):
            layers += [nn.Conv2d(cin, w, k, stride=s, padding=p), nn.BatchNorm2d(w), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(3, stride=2))
            self._stage_ends.append(len(layers))
            cin = w
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Dropout(0.5),
            nn.Linear(cin * 6 * 6, hidden),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, num_classes)
        self.block_channels = list(widths)

    @property
    def blocks(self) -> nn.Sequential:
        """The five conv stages (conv1..conv5, each ending after its ReLU / max-pool), sharing
        this model's modules (not registered: the state dict is unchanged). For per-layer linear
        probes (Fig. 4b), e.g. ``ProbedModel(model.blocks[:k + 1], model.block_channels[k])``."""
        starts = [0, *self._stage_ends[:-1]]
        return nn.Sequential(*[self.features[a:b] for a, b in zip(starts, self._stage_ends)])

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[14]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, hidden] (after the second FC + ReLU)."""
        return self.classifier(self.flatten(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


# --------------------------------------------------------------------------- checkpoints
def _numpy_safe_globals() -> list[Any]:
    import numpy as np

    out: list[Any] = [np.dtype, type(np.dtype(np.int64))]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            scalar = importlib.import_module(mod).scalar
        except (ImportError, AttributeError):
            continue
        out += [
            scalar,
            (scalar, "numpy.core.multiarray.scalar"),
            (scalar, "numpy._core.multiarray.scalar"),
        ]
        break
    return out


def load_checkpoint(source: str | Path | io.BytesIO) -> Any:
    """``torch.load(source, map_location='cpu', weights_only=True)``, allowing numpy int scalars.

    Only numpy's scalar reconstructor and ``dtype`` are added to the allowlist (SCAN stores its
    head index as ``numpy.int64``); anything else that is not a tensor / container / number is
    still refused. A file that is not a torch checkpoint raises ``ValueError``.
    """
    if isinstance(source, (str, Path)) and Path(source).is_file():
        with open(source, "rb") as fh:
            head = fh.read(64)
        if not (
            head.startswith(b"\x80") or head.startswith(b"PK")
        ):  # pickle (legacy) or zip format
            raise ValueError(
                f"{source}: not a PyTorch checkpoint (starts with {head[:32]!r}; "
                "an HTML page from a download link?)"
            )
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - garbage (an HTML page saved as .pth) raises many types
        msg = str(err)
        if "Weights only load failed" in msg:
            why = [ln for ln in msg.splitlines() if "GLOBAL" in ln or "Unsupported" in ln][:1]
            raise ValueError(
                f"{source}: the checkpoint holds objects other than tensors, refused by "
                f"weights_only=True ({(why or [msg[-200:]])[0].strip()})"
            ) from err
        raise ValueError(
            f"{source}: not a PyTorch checkpoint ({type(err).__name__}: {msg[:200]})"
        ) from err


def _strip_module(state: Mapping[str, Any]) -> dict[str, Any]:
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def _is_state(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) for k in obj)
        and any(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _find_state(ckpt: Mapping[str, Any]) -> Mapping[str, Any]:
    """The state dict of a checkpoint: under 'state_dict' or 'model', or the mapping itself."""
    for key in ("state_dict", "model"):
        if key in ckpt and _is_state(ckpt[key]):
            return ckpt[key]
    return ckpt


def _fill_bn_counters(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """Old (< PyTorch 0.4.1) checkpoints have no ``num_batches_tracked``; it is unused in eval."""
    for name, buf in module.state_dict().items():
        if (
            name.endswith("num_batches_tracked")
            and name not in state
            and name.rsplit(".", 1)[0] + ".running_mean" in state
        ):
            state[name] = torch.zeros_like(buf)
    return state


def _state_of(ckpt: Any, what: str) -> dict[str, Any]:
    """The (``module.``-stripped) state dict inside a checkpoint, or ``ValueError`` naming ``what``
    was expected."""
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"not a {what} checkpoint: expected a dict, got {type(ckpt).__name__}")
    state = _find_state(ckpt)
    if not _is_state(state):
        raise ValueError(f"not a {what} checkpoint: no state dict (keys: {sorted(ckpt)[:6]})")
    return _strip_module(state)


def _looks_like(state: Mapping[str, Any]) -> str:
    keys = set(state)
    if any(k.startswith("contrastive_head") for k in keys):
        return "a SCAN/MoCo pretext (contrastive) model"
    if any(k.startswith("cluster_head.") for k in keys):
        return "a SCAN clustering model"
    if any(re.fullmatch(r"top_layer\d+\.weight", k) for k in keys):
        return "a multi-head SeLa model"
    if "fc.weight" in keys and "conv1.weight" in keys:
        return (
            "a torchvision-style ResNet (e.g. a supervised model or SeLa's Aug++ resnet50-*_pp.pth)"
        )
    if "classifier.1.weight" in keys and "features.0.weight" in keys:
        return "an AlexNet"
    return f"an unknown model (first keys: {sorted(keys)[:4]})"


def scan_state(
    ckpt: Mapping[str, Any], head: int | None = None
) -> tuple[dict[str, torch.Tensor], int]:
    """Map SCAN's ``{'model': ..., 'head': k}`` onto :class:`SCANResNet50` (head ``head``, default
    ``k``).

    Returns ``(state_dict, head index)``. ``ValueError`` if the file is not a SCAN clustering
    checkpoint (e.g. the MoCo pretext model or a plain classifier) or the head does not exist.
    """
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"not a SCAN checkpoint: expected a dict, got {type(ckpt).__name__}")
    state = ckpt.get("model", ckpt)
    if not _is_state(state):
        raise ValueError(
            f"not a SCAN checkpoint: no state dict under 'model' (keys: {sorted(ckpt)[:6]})"
        )
    state = _strip_module(state)
    heads = sorted(
        {int(m.group(1)) for k in state if (m := re.fullmatch(r"cluster_head\.(\d+)\.weight", k))}
    )
    if not heads or not any(k.startswith("backbone.") for k in state):
        raise ValueError(
            "not a SCAN clustering checkpoint ('backbone.*' + 'cluster_head.N.*' expected): this "
            "looks like "
            f"{_looks_like(state)}. Use the ImageNet 'SCAN (ResNet50)' file (python -m visxai "
            "fetch scan-r50-imagenet)"
        )
    if head is None:
        head = int(ckpt.get("head", heads[0])) if "model" in ckpt else heads[0]
    head = int(head)
    if head not in heads:
        raise ValueError(f"SCAN checkpoint has cluster heads {heads}, not {head}")
    out = {
        k: v
        for k, v in state.items()
        if k.startswith("backbone.") and not k.startswith("backbone.fc.")
    }
    out["head.weight"] = state[f"cluster_head.{head}.weight"]
    out["head.bias"] = state[f"cluster_head.{head}.bias"]
    return out, head


def sela_state(ckpt: Mapping[str, Any], head: int = 0) -> dict[str, torch.Tensor]:
    """Map SeLa's ``resnet-10x3k.pth`` (pre-activation ResNet-50, ``top_layerN``) onto
    :class:`SeLaResNet50`.

    Accepts the plain state dict (the release), ``{'state_dict': ...}`` (a training checkpoint) and
    a ``module.`` prefix. ``ValueError`` for torchvision-style or v1 (BN after the stem) ResNets,
    AlexNets, or a missing head.
    """
    state = _state_of(ckpt, "SeLa")
    w0 = state.get("features.0.weight")
    if (
        w0 is None
        or tuple(w0.shape) != (64, 3, 7, 7)
        or "features.1.weight" in state
        or "features.2.0.bn1.weight" not in state
    ):
        raise ValueError(
            "not SeLa's pre-activation ResNet-50 (resnetv2: 'features.0' 7x7 conv without BN, "
            f"'features.2.0.bn1.*'): this looks like {_looks_like(state)}. Use resnet-10x3k.pth "
            "from "
            "pretrained.zip (python -m visxai fetch sela-r50-imagenet)"
        )
    heads = sorted(
        {int(m.group(1)) for k in state if (m := re.fullmatch(r"top_layer(\d+)\.weight", k))}
    )
    single = [p for p in ("top_layer.", "top_layer.0.") if p + "weight" in state]
    if heads:
        if head not in heads:
            raise ValueError(
                f"SeLa checkpoint has heads top_layer{heads[0]}..top_layer{heads[-1]}, not {head}"
            )
        prefix = f"top_layer{head}."
    elif single and head == 0:
        prefix = single[0]
    else:
        raise ValueError(
            f"SeLa checkpoint has no clustering head {head} ('top_layer{head}.weight')"
        )
    out = {k: v for k, v in state.items() if k.startswith("features.")}
    out["head.weight"] = state[prefix + "weight"]
    out["head.bias"] = state[prefix + "bias"]
    return out


def rotnet_state(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Map a linear-probes AlexNet checkpoint with a 4-way rotation ``top_layer`` onto
    :class:`AsanoAlexNet`.

    Accepts ``{'state_dict': ...}`` (what linear-probes reads) or the plain state dict, with or
    without ``module.``. ``ValueError`` for a Sobel (DeepCluster) or multi-head (SeLa) AlexNet, a
    head that is not 4-way, or a model that is not this AlexNet.
    """
    state = _state_of(ckpt, "RotNet")
    if any(k.startswith("sobel.") for k in state):
        raise ValueError(
            "this AlexNet has a Sobel input layer (a DeepCluster-style model), not the RGB RotNet"
        )
    if any(re.fullmatch(r"top_layer\d+\.weight", k) for k in state):
        raise ValueError(
            "this AlexNet has several heads top_layer0..N (a SeLa model such as "
            "alexnet-10x3k-wRot.pth), "
            "not the RotNet with one 4-way rotation head"
        )
    needed = [
        "features.0.weight",
        "features.14.weight",
        "classifier.1.weight",
        "classifier.4.weight",
        "top_layer.weight",
    ]
    if any(k not in state for k in needed):
        raise ValueError(
            f"not the linear-probes AlexNet with BN + rotation head (needs {needed}): this looks "
            "like "
            f"{_looks_like(state)} (python -m visxai fetch rotnet-alexnet-imagenet)"
        )
    if state["top_layer.weight"].shape[0] != 4:
        raise ValueError(
            "RotNet's head predicts 4 rotations; this top_layer has "
            f"{state['top_layer.weight'].shape[0]} outputs"
        )
    out = {k: v for k, v in state.items() if k.startswith(("features.", "classifier."))}
    out["head.weight"] = state["top_layer.weight"]
    out["head.bias"] = state["top_layer.bias"]
    return out


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    state = _fill_bn_counters(dict(state), model)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{what}: the checkpoint does not fit the architecture: {str(err)[:600]}"
        ) from err
    return model.eval()


def build_scan(ckpt: Mapping[str, Any], head: int | None = None) -> tuple[SCANResNet50, int]:
    """SCAN model from a loaded checkpoint: ``(model, head index)`` (strict loading)."""
    state, h = scan_state(ckpt, head)
    return _load_strict(SCANResNet50(state["head.weight"].shape[0]), state, "SCAN"), h


def build_sela(ckpt: Mapping[str, Any], head: int = 0) -> SeLaResNet50:
    """SeLa model (clustering head ``head``) from a loaded checkpoint (strict loading)."""
    state = sela_state(ckpt, head)
    return _load_strict(SeLaResNet50(state["head.weight"].shape[0]), state, "SeLa")


def build_rotnet(ckpt: Mapping[str, Any]) -> AsanoAlexNet:
    """RotNet AlexNet from a loaded checkpoint (strict loading; widths read from the weights)."""
    state = rotnet_state(ckpt)
    widths = tuple(int(state[f"features.{i}.weight"].shape[0]) for i in (0, 4, 8, 11, 14))
    hidden = int(state["classifier.4.weight"].shape[0])
    return _load_strict(AsanoAlexNet(4, widths, hidden), state, "RotNet")


def _read_sela(path: Path) -> Any:
    """The state dict inside SeLa's ``pretrained.zip`` (member ``resnet-10x3k.pth``), or ``path``
    itself when it is already a torch checkpoint."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if any(
                n.endswith("/data.pkl") or n == "data.pkl" for n in names
            ):  # a torch (zip) checkpoint
                return load_checkpoint(path)
            match = [n for n in names if Path(n).name == SELA_MEMBER]
            if not match:
                pths = [n for n in names if n.endswith((".pth", ".pt", ".tar"))]
                raise ValueError(
                    f"{path}: archive has no {SELA_MEMBER} (it has {pths[:8] or names[:8]})"
                )
            return load_checkpoint(io.BytesIO(zf.read(match[0])))
    return load_checkpoint(path)


# -------------------------------------------------------------------------------------- API
def selfsup_preprocess(
    mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> Callable[[Any], torch.Tensor]:
    """PIL image -> normalised [3, 224, 224] tensor (Resize 256, CenterCrop 224, the authors' eval
    transform)."""
    from torchvision import transforms as T

    from ..transforms import to_rgb

    return T.Compose(
        [
            T.Lambda(to_rgb),
            T.Resize(RESIZE),
            T.CenterCrop(INPUT_SIZE),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


@dataclass
class SelfSupModel:
    """A loaded paper SSL model (Algorithm 2's ``M = phi_tau o phi_F``).

    ``model(x)``: SSL logits [B, num_classes] of normalised images [B, 3, 224, 224];
    ``embed(x)`` (= ``model.embed``): penultimate activations [B, feature_dim] (``phi_F``);
    ``head``: the final ``nn.Linear`` (``phi_tau``, also ``model.head``); ``head_index``: which
    cluster head of the release (SCAN: the authors' best head, SeLa: 0 by default; None for RotNet).
    """

    name: str
    model: nn.Module
    num_classes: int
    feature_dim: int
    head_index: int | None
    path: Path
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = INPUT_SIZE
    preprocess: Callable[[Any], torch.Tensor] = field(
        default_factory=selfsup_preprocess, repr=False
    )

    @property
    def head(self) -> nn.Linear:
        return self.model.head  # type: ignore[return-value]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations ``phi_F(x)`` [B, feature_dim]."""
        return self.model.embed(x)  # type: ignore[operator]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The SSL task's logits ``phi_tau(phi_F(x))`` [B, num_classes]."""
        return self.model(x)


def load_paper_selfsup(
    name: str, device: str | torch.device = "cpu", head: int | None = None
) -> SelfSupModel:
    """Load ``"scan"``, ``"sela"`` or ``"rotnet"`` from the artefact cache (never downloads).

    ``head`` picks the clustering head (SCAN default: the checkpoint's ``'head'``; SeLa default 0;
    RotNet has one). Missing weights raise ``visxai.data.ArtefactMissing`` naming
    ``python -m visxai fetch NAME``; a wrong file raises ``ValueError``.
    """
    from ..data import artefact_path

    if name not in PAPER_SELFSUP_ARTEFACTS:
        raise ValueError(
            f"unknown paper self-supervised model {name!r}; choose from "
            f"{sorted(PAPER_SELFSUP_ARTEFACTS)}"
        )
    art, file = PAPER_SELFSUP_ARTEFACTS[name]
    path = artefact_path(art, file)
    if name == "scan":
        model, idx = build_scan(load_checkpoint(path), head)
    elif name == "sela":
        idx = 0 if head is None else int(head)
        model = build_sela(_read_sela(path), idx)
    else:
        if head not in (None, 0):
            raise ValueError("the RotNet has a single (rotation) head")
        model, idx = build_rotnet(load_checkpoint(path)), None
    model = model.to(device).eval()
    return SelfSupModel(name, model, model.head.out_features, model.head.in_features, idx, path)
