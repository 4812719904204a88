"""What :func:`visxai.models.load_model` returns: :class:`LoadedModel`, one record for every model.

A classifier, a self-supervised network with its projection head, a self-supervised network
with its pretext-task head and probes, or a multi-label classifier: each comes as a model in
eval mode plus what it takes to feed it (``preprocess``, ``normalize`` / ``denormalize``,
``mean``, ``std``, ``input_size``) and to read it (``labels``, ``embed``, ``head``, ``probes``).
The fields that a kind of model does not have are empty (``labels=[]``) or ``None``.

Nothing here is specific to one model; the loaders live in :mod:`visxai.models.zoo`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..layers import Normalizer

__all__ = ["KINDS", "LoadedModel", "PROFILES", "identity_normalizers"]

PROFILES = ("offline", "paper")

#: ``LoadedModel.kind``: what ``model(x)`` returns
KINDS = {
    "imagenet": "ImageNet class logits [B, 1000]",
    "small": "class logits of a 28x28 grayscale model [B, 10]",
    "multilabel": "one logit per class, sigmoid (multi-label) [B, C]",
    "voc-multilabel": "one logit per PASCAL VOC class, sigmoid (multi-label) [B, 20]",
    "ssl": "projection-head output of a self-supervised network [B, D]",
    "selfsup": "logits of the self-supervised task (rotations, clusters) [B, K]",
}


@dataclass
class LoadedModel:
    """A model in eval mode with what it takes to feed it and read its output.

    ``preprocess``: PIL image -> the model's input tensor [C, H, W] (normalised: the model takes
    ``normalize(x)`` of [0, 1] images); ``normalize`` / ``denormalize``: tensor ops on
    [B, C, H, W] between [0, 1] pixel space and the model's input space (the identity for models
    that take [0, 1] pixels); ``input_size``: (H, W); ``labels``: the name of each output (empty
    when the outputs are features, not classes); ``kind``: one of :data:`KINDS`.

    Where the model has them: ``embed`` maps model inputs to the embedding / backbone features
    [B, D] (the penultimate layer Algorithm 2 of notebook 02 / AGF searches, the backbone of the
    SSL models of notebook 01 / Pixel Invariance); ``head`` is the module on top of it (the
    projection head, or the self-supervised task's final ``nn.Linear``); ``probes`` are the
    per-block linear probes of a frozen backbone (notebook 02, Fig. 4b / Fig. 5), each an
    ``nn.Module`` from the same inputs to class logits.
    """

    name: str
    model: nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    normalize: Normalizer
    denormalize: Normalizer
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int]
    labels: list[str]
    kind: str = "imagenet"
    info: dict[str, Any] = field(default_factory=dict)
    embed: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    head: nn.Module | None = field(default=None, repr=False)
    probes: list[nn.Module] | None = field(default=None, repr=False)

    @property
    def in_channels(self) -> int:
        return len(self.mean)

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the model and its probes to ``device`` (in place); returns ``self``."""
        self.model.to(device)
        for p in self.probes or []:
            p.to(device)
        return self

    def __repr__(self) -> str:
        return (
            f"LoadedModel(name={self.name!r}, kind={self.kind!r}, input_size={self.input_size}, "
            f"classes={len(self.labels)}, device={self.device})"
        )


def identity_normalizers(channels: int) -> tuple[Normalizer, Normalizer, tuple, tuple]:
    """``(normalize, denormalize, mean, std)`` of a model that takes [0, 1] pixels."""
    mean, std = (0.0,) * channels, (1.0,) * channels
    return Normalizer(mean, std), Normalizer(mean, std, inverse=True), mean, std
