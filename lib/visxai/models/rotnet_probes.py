"""Per-block linear probes on a frozen self-supervised backbone (Gur et al. 2021, Fig. 4b, Fig. 5).

The paper follows Asano, Rupprecht & Vedaldi (2019a): after each convolutional block of the SSL
AlexNet (RotNet) a supervised linear classifier is trained on the frozen, pooled activations,
and AGF explains the network "block 1..k + linear probe". Deeper blocks should give more
semantic maps (better segmentation, Fig. 4b).

Here the backbone is the project's :class:`~visxai.models.selfsup_miniatures.RotNet` and the probes
are multi-label linear classifiers for the synthetic set's Fashion-MNIST classes (BCE), trained on
``AdaptiveAvgPool2d(pool)`` features of the frozen blocks (config version 2: 8,000 training
images, against 2,000 in version 1, which lifted the held-out macro AP of blocks 1-4 from
0.30-0.44 to 0.35-0.50; chance is the label prevalence, 0.20). :class:`ProbedModel` is an ordinary
``nn.Module`` (the frozen trunk, the pooling, the linear layer), so every explanation method
runs on it unchanged. Written by hand: a probe is one linear layer; training uses
:func:`visxai.models.training.train_classifier` on precomputed features (fast, deterministic).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from . import training as _training
from .selfsup_miniatures import ROTNET_CONFIG, RotNet, synthetic_splits

__all__ = ["ProbedModel", "PROBE_CONFIG", "train_probe", "load_probes"]


class ProbedModel(nn.Module):
    """Blocks ``0..k`` of a backbone (frozen copies), ``AdaptiveAvgPool2d(pool)``, ``Flatten``,
    ``Linear``."""

    def __init__(
        self, trunk: nn.Sequential, channels: int, num_classes: int = 10, pool: int = 4
    ) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(trunk)
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten())
        self.probe = nn.Linear(channels * pool * pool, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.trunk[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.probe(self.features(x))


PROBE_CONFIG: dict[str, Any] = {
    "pool": 4,
    "epochs": 30,
    "lr": 3e-3,
    "batch_size": 128,
    "n_train": 8000,
    "seed": 0,
    "version": 2,
}


def train_probe(
    model: ProbedModel, x: torch.Tensor, labels: torch.Tensor, cfg: dict[str, Any] = PROBE_CONFIG
) -> dict[str, Any]:
    """Fit ``model.probe`` on frozen features of ``x`` with BCE (multi-hot ``labels``)."""
    model.eval()
    with torch.no_grad():
        feats = torch.cat([model.features(x[i : i + 256]) for i in range(0, len(x), 256)])
    hist = _training.train_classifier(
        model.probe,
        feats,
        labels,
        epochs=cfg["epochs"],
        lr=cfg["lr"],
        batch_size=cfg["batch_size"],
        seed=cfg["seed"],
        loss_fn=nn.BCEWithLogitsLoss(),
        progress=False,
    )
    model.eval()
    return {"final_loss": round(hist["loss"][-1], 4)}


def load_probes(rotnet: RotNet | None = None, pretrained: bool = True) -> list[ProbedModel]:
    """One :class:`ProbedModel` per RotNet block (Fig. 4b / Fig. 5), trained once and cached."""
    from .selfsup_miniatures import load_rotnet

    rotnet = rotnet if rotnet is not None else load_rotnet(pretrained=pretrained)
    data = None
    probes: list[ProbedModel] = []
    for k in range(len(rotnet.blocks)):
        cfg = dict(
            PROBE_CONFIG,
            block=k,
            backbone=_training.config_hash(ROTNET_CONFIG),
            data=ROTNET_CONFIG["data"],
        )

        def build(k: int = k) -> ProbedModel:
            return ProbedModel(
                rotnet.blocks[: k + 1], rotnet.block_channels[k], pool=PROBE_CONFIG["pool"]
            )

        if not pretrained:
            torch.manual_seed(PROBE_CONFIG["seed"])
            probes.append(build().eval())
            continue

        def train(m: ProbedModel) -> dict[str, Any]:
            nonlocal data
            if data is None:
                data = synthetic_splits(PROBE_CONFIG["n_train"], 1, ROTNET_CONFIG["data"]["seed"])[
                    0
                ]
            return train_probe(m, data.images, data.labels)

        probes.append(_training.cached(f"synthetic-rotnet-probe{k + 1}", cfg, build, train))
    return probes
