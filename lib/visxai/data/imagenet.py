"""ImageNet validation images (paper profile): a user-provided folder, never downloaded.

ImageNet's licence forbids redistribution, so the artefact ``imagenet-val`` is a folder the user
points to with ``$VISXAI_IMAGENET_VAL`` (default ``<VISXAI_DATA>/imagenet-val``). Two layouts are
accepted: flat (``ILSVRC2012_val_00000001.JPEG`` ...) or torchvision's ImageFolder layout
(``n01440764/ILSVRC2012_val_00000293.JPEG`` ...; the class index is the position of the wnid
in the sorted list of the 1000 wnids, as in torchvision).

The images the notebooks use are fixed and committed in ``data_manifests/imagenet-val-subset.txt``
(file names, one per line, in order; a notebook takes the first ``n``). The folder is found and
checked by the generic user-provided source (:func:`visxai.data.manifest.user_folder`). The
ImageNet mean / std of the torchvision models live here too (statistics of the data set).
"""

from __future__ import annotations

from pathlib import Path

from .manifest import (
    ArtefactMissing,
    load_manifest,
    subset_names,
    user_folder,
    user_missing_message,
)
from .sources import user_index

ARTEFACT = "imagenet-val"
ENV = "VISXAI_IMAGENET_VAL"
#: ImageNet's per-channel mean and std of [0, 1] RGB pixels (the torchvision models' normalisation)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_val_subset(n: int | None = None) -> list[str]:
    """The committed, fixed list of validation image file names (first ``n`` if given)."""
    names = subset_names(ARTEFACT)
    return names[:n] if n is not None else names


def imagenet_val_root(check: int | None = 1) -> Path:
    """The user's ImageNet validation folder; raises ArtefactMissing when absent or when the
    first ``check`` images of the subset (all of them for ``None``) cannot be found there."""
    return user_folder(ARTEFACT, check=check)


def imagenet_val_index(root: Path) -> dict[str, Path]:
    """``{file name: path}`` for the JPEGs under ``root`` (flat or one level of wnid folders)."""
    return user_index(root, "*.JPEG")


def imagenet_val_items(n: int | None = None) -> list[tuple[Path, int | None]]:
    """``[(path, class index or None)]`` for the first ``n`` subset images (labels need the
    ImageFolder layout: one folder per wnid, class index = rank of the wnid among the 1000)."""
    root = imagenet_val_root()
    index = imagenet_val_index(root)
    wnids = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("n"))
    pos = {w: i for i, w in enumerate(wnids)} if len(wnids) == 1000 else {}
    items = []
    for name in imagenet_val_subset(n):
        if name not in index:
            m = load_manifest(ARTEFACT)
            raise ArtefactMissing(user_missing_message(m, f"{name} is missing"))
        path = index[name]
        items.append((path, pos.get(path.parent.name)))
    return items
