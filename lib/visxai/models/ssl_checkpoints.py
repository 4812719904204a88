"""The paper's self-supervised ResNet-50s for notebook 01 (Pixel Invariance): SimCLRv2 1x / 2x,
Barlow Twins and SimSiam, each with its projection head, loaded from the authors' checkpoints
(``paper`` profile artefacts; ``python -m visxai fetch NAME``).

Written by hand: the two projector MLPs and the key mappings from the authors' checkpoint layouts
onto a torchvision ResNet-50 (no library ships them). The SimCLRv2 TensorFlow checkpoints are read
by :mod:`visxai.models.simclrv2_tf`. The offline stand-ins are in
:mod:`visxai.models.ssl_miniatures`.
"""

from __future__ import annotations

import torch
from torch import nn

from .imagenet_classifiers import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "PAPER_SSL_ARTEFACTS",
    "load_paper_ssl",
    "build_paper_ssl",
    "barlow_twins_projector",
    "simsiam_projector",
    "simsiam_state",
    "barlow_twins_state",
]

#: the paper profile's checkpoints (manifests) for the same four rows
PAPER_SSL_ARTEFACTS = {
    "simclrv2-1x": "simclrv2-r50-1x",
    "simclrv2-2x": "simclrv2-r50-2x",
    "barlowtwins": "barlowtwins-r50",
    "simsiam": "simsiam-r50",
}


def simsiam_projector(dim: int = 2048) -> nn.Sequential:
    """SimSiam's projector (facebookresearch/simsiam builder.py): 2048-2048-2048, BN+ReLU between,
    final BN without affine."""
    return nn.Sequential(
        nn.Linear(2048, 2048, bias=False),
        nn.BatchNorm1d(2048),
        nn.ReLU(inplace=True),
        nn.Linear(2048, 2048, bias=False),
        nn.BatchNorm1d(2048),
        nn.ReLU(inplace=True),
        nn.Linear(2048, dim),
        nn.BatchNorm1d(dim, affine=False),
    )


def simsiam_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """Map the authors' checkpoint (``ckpt['state_dict']``: ``module.encoder.*`` incl. the projector
    as ``fc``, ``module.predictor.*``) onto a torchvision ResNet-50 whose ``fc`` is
    :func:`simsiam_projector`.

    Raises ``ValueError`` for a linear-classification checkpoint (no ``module.encoder.`` keys).
    """
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    out = {
        k.removeprefix("module.encoder."): v
        for k, v in state.items()
        if k.startswith("module.encoder.")
    }
    if not any(k.startswith("fc.") for k in out):
        raise ValueError(
            "this SimSiam file has no 'module.encoder.fc.*' projector keys: Pixel Invariance needs "
            "the pre-training "
            "checkpoint_0099.pth.tar (python -m visxai fetch simsiam-r50), not a linear-evaluation "
            "checkpoint"
        )
    return out


def barlow_twins_projector(dim: int = 8192) -> nn.Sequential:
    """Barlow Twins' projector (facebookresearch/barlowtwins main.py): 2048-8192-8192-8192, BN+ReLU
    between."""
    return nn.Sequential(
        nn.Linear(2048, dim, bias=False),
        nn.BatchNorm1d(dim),
        nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False),
        nn.BatchNorm1d(dim),
        nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False),
    )


def barlow_twins_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """Map the authors' checkpoint (``ckpt['model']``: ``module.backbone.*``,
    ``module.projector.*``) onto a torchvision ResNet-50 whose ``fc`` is
    :func:`barlow_twins_projector`.

    Raises ``ValueError`` for the backbone-only release (``resnet50.pth``), which has no projector.
    """
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith("projector.") for k in state):
        raise ValueError(
            "this Barlow Twins file has no projector ('projector.*' keys): Pixel Invariance needs "
            "the full "
            "checkpoint.pth of the release (python -m visxai fetch barlowtwins-r50), not "
            "resnet50.pth"
        )
    out = {
        k.removeprefix("backbone."): v
        for k, v in state.items()
        if k.startswith("backbone.") and ".fc." not in k
    }
    out.update(
        {
            "fc." + k.removeprefix("projector."): v
            for k, v in state.items()
            if k.startswith("projector.")
        }
    )
    return out


def build_paper_ssl(name: str, pretrained: bool = True) -> tuple[nn.Module, tuple, tuple]:
    """``(model in eval mode on the CPU, mean, std)`` for ``name`` (keys of
    :data:`PAPER_SSL_ARTEFACTS`); ``pretrained=False``: the same architecture with random weights
    (no artefact needed). See :func:`load_paper_ssl`."""
    from torchvision.models import resnet50

    from ..data import artefact_path

    if name not in PAPER_SSL_ARTEFACTS:
        raise ValueError(
            f"unknown paper SSL model {name!r}; choose from {sorted(PAPER_SSL_ARTEFACTS)}"
        )
    art = PAPER_SSL_ARTEFACTS[name]
    if name.startswith("simclrv2"):
        from .simclrv2_tf import SimCLRv2, load_simclrv2

        if not pretrained:
            return SimCLRv2(50, int(name[-2])).eval(), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        # raises ArtefactMissing if not fetched
        artefact_path(art, "model.ckpt-250228.data-00000-of-00001")
        net = load_simclrv2(artefact_path(art, "model.ckpt-250228.index"), ema=True)
        return net.eval(), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    net = resnet50()
    if name == "simsiam":
        net.fc = simsiam_projector()
        if pretrained:
            ckpt = torch.load(
                artefact_path(art, "checkpoint_0099.pth.tar"), map_location="cpu", weights_only=True
            )
            net.load_state_dict(simsiam_state(ckpt), strict=True)
    else:  # Barlow Twins: the authors' full checkpoint, state_dict under 'model' prefixed 'module.'
        net.fc = barlow_twins_projector()
        if pretrained:
            ckpt = torch.load(
                artefact_path(art, "checkpoint.pth"), map_location="cpu", weights_only=True
            )
            net.load_state_dict(barlow_twins_state(ckpt), strict=True)
    return net.eval(), IMAGENET_MEAN, IMAGENET_STD


def load_paper_ssl(name: str, device: str | torch.device = "cpu") -> tuple[nn.Module, tuple, tuple]:
    """The paper profile's ResNet-50 + projection head for ``name`` (keys of
    :data:`PAPER_SSL_ARTEFACTS`).

    Returns (model mapping normalised images to projection outputs, mean, std). Missing weights
    raise ``visxai.data.ArtefactMissing`` naming ``python -m visxai fetch NAME``.

    * SimCLRv2 1x / 2x: the authors' TensorFlow checkpoint, read without TensorFlow and mapped onto
      :class:`visxai.models.simclrv2_tf.SimCLRv2` (EMA weights, as the Pixel Invariance authors'
      ``convert.py --ema``); SimCLR takes [0, 1] images, so mean 0 and std 1.
    * SimSiam and Barlow Twins: torchvision ResNet-50s plus their projection MLPs (2048-2048-2048
      with BN for SimSiam; 8192-8192-8192 for Barlow Twins), ImageNet mean/std.
    """
    net, mean, std = build_paper_ssl(name)
    return net.to(device), mean, std
