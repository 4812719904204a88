"""The evaluation data sets of notebook 02 / AGF (Tables 2-5), read by index for any scale.

:func:`eval_data` gives ``(N, get)``: ``get(idx)`` returns ``(images in [0,1], labels, masks)``
for the items ``idx`` of the first ``n`` of a data set, so that a notebook can read all of them at
once and :mod:`visxai.distributed` one chunk at a time. Missing artefacts raise
:class:`~visxai.data.manifest.ArtefactMissing` (with the fetch command), a bad name or layout a
``ValueError``: library code never exits the process.

Written by hand: a table of five readers over the project's data loaders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["EVAL_SETS", "SEGMENTATION_SETS", "eval_data"]

#: the names :func:`eval_data` knows, in the order of the messages
EVAL_SETS = ("fashion-mnist", "synthetic", "imagenet-val", "imagenet-seg", "voc2012")
#: the sets with segmentation masks (Table 3 / Fig. 4a)
SEGMENTATION_SETS = ("synthetic", "imagenet-seg", "voc2012")


def eval_data(
    name: str, n: int, seed: int, loaded: Any
) -> tuple[int, Callable[[torch.Tensor], tuple]]:
    """``(N, get)``: ``get(idx)`` gives (images in [0,1], labels, masks) for the first ``n`` items.

    ``fashion-mnist`` (test split; masks None), ``synthetic`` (test split; masks = the
    :class:`~visxai.data.synthetic.SyntheticSet` subset), ``imagenet-val`` (paper profile: the
    committed subset list, read lazily through ``loaded.preprocess``; labels need the ImageFolder
    layout), ``imagenet-seg`` (paper profile, Table 3: ImageNet-Segmentation resized to 224,
    labels -1 = unknown, masks ``[N,224,224]`` 0/1; all ``n`` images are held in memory, ~0.6 MB
    each) and ``voc2012`` (paper profile, Table 3: VOC 2012 val, multi-hot labels ``[N,20]``, masks
    a :class:`~visxai.data.segmentation_sets.VOCMasks`; needs a 20-output multi-label model).

    Raises ``ValueError`` for an unknown name or ImageNet validation images without labels, and
    :class:`~visxai.data.manifest.ArtefactMissing` (naming the fetch command) for a missing set.
    """
    if name == "fashion-mnist":
        from .datasets import load_fashion_mnist

        x, y = load_fashion_mnist("test")
        x, y = x[:n], y[:n]
        return len(x), lambda idx: (x[idx], y[idx], None)
    if name == "synthetic":
        from .synthetic import make_synthetic

        ds = make_synthetic(n, seed=seed, split="test")
        return len(ds), lambda idx: (ds.images[idx], ds.labels[idx], ds.subset(idx))
    if name == "imagenet-val":
        from PIL import Image

        from .imagenet import imagenet_val_items

        items = imagenet_val_items(n)  # raises ArtefactMissing with the fetch command when absent
        if any(lbl is None for _, lbl in items):
            raise ValueError("imagenet-val: labels need the ImageFolder layout (val/<wnid>/*.JPEG)")

        def get(idx: torch.Tensor) -> tuple:
            xs = [
                loaded.denormalize(loaded.preprocess(Image.open(items[int(i)][0]).convert("RGB")))
                for i in idx
            ]
            ys = torch.tensor([items[int(i)][1] for i in idx], dtype=torch.int64)
            return torch.stack(xs).clamp(0, 1), ys, None

        return len(items), get
    if name == "imagenet-seg":  # Table 3a: ImageNet-Segmentation (foreground masks)
        from .segmentation_sets import load_imagenet_segmentation

        # raises ArtefactMissing with the fetch command when absent
        x, m = load_imagenet_segmentation(n)
        # no class labels: the predicted class is explained
        y = torch.full((len(x),), -1, dtype=torch.int64)
        return len(x), lambda idx: (x[idx], y[idx], m[idx])
    if name == "voc2012":  # Table 3b: VOC 2012 val, multi-hot labels [N,20], per-class masks
        from .segmentation_sets import VOCMasks, load_voc2012_segmentation

        x, y, m = load_voc2012_segmentation("val", n)
        masks = VOCMasks(m)
        return len(x), lambda idx: (x[idx], y[idx], masks.subset(idx))
    raise ValueError(f"unknown evaluation data set {name!r}: {' | '.join(EVAL_SETS)}")
