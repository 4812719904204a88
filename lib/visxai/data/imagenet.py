"""ImageNet validation images (paper profile): a user-provided folder, never downloaded.

ImageNet's licence forbids redistribution, so the artefact ``imagenet-val`` is a folder the user
points to with ``$VISXAI_IMAGENET_VAL`` (default ``<VISXAI_DATA>/imagenet-val``). Two layouts are
accepted: flat (``ILSVRC2012_val_00000001.JPEG`` ...) or torchvision's ImageFolder layout
(``n01440764/ILSVRC2012_val_00000293.JPEG`` ...; the class index is the position of the wnid
in the sorted list of the 1000 wnids, as in torchvision).

The images the notebooks use are fixed and committed in ``data_manifests/imagenet-val-subset.txt``
(file names, one per line, in order; a notebook takes the first ``n``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import data_dir, manifests_dir
from .manifest import ArtefactMissing

ENV = "VISXAI_IMAGENET_VAL"
SUBSET_FILE = "imagenet-val-subset.txt"


def imagenet_val_subset(n: int | None = None) -> list[str]:
    """The committed, fixed list of validation image file names (first ``n`` if given)."""
    lines = (manifests_dir() / SUBSET_FILE).read_text().splitlines()
    names = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    return names[:n] if n is not None else names


def _message(root: Path, problem: str) -> str:
    return (
        f"artefact 'imagenet-val' (ImageNet ILSVRC2012 validation images, user-provided) is not "
        f"available: {problem}.\nImageNet cannot be downloaded automatically (licence). Get "
        f"ILSVRC2012_img_val.tar from https://image-net.org (account needed), unpack it and point "
        f"${ENV} to the folder (currently {root}); the ImageFolder layout (val/<wnid>/*.JPEG) "
        f"also gives labels. The images used are listed in data_manifests/{SUBSET_FILE}.\n"
        f"Check with: python -m visxai fetch imagenet-val"
    )


def imagenet_val_root(check: int | None = 1) -> Path:
    """The user's ImageNet validation folder; raises ArtefactMissing when absent or when the
    first ``check`` images of the subset (all of them for ``None``) cannot be found there."""
    root = Path(os.environ.get(ENV) or data_dir() / "imagenet-val").expanduser()
    if not root.is_dir():
        raise ArtefactMissing(_message(root, "the folder does not exist"))
    index = imagenet_val_index(root)
    missing = [n for n in imagenet_val_subset(check) if n not in index]
    if missing:
        raise ArtefactMissing(
            _message(root, f"{len(missing)} listed images missing, e.g. {missing[0]}")
        )
    return root


def imagenet_val_index(root: Path) -> dict[str, Path]:
    """``{file name: path}`` for the JPEGs under ``root`` (flat or one level of wnid folders)."""
    out = {p.name: p for p in root.glob("*.JPEG")}
    out.update({p.name: p for p in root.glob("n*/*.JPEG")})
    return out


def imagenet_val_items(n: int | None = None) -> list[tuple[Path, int | None]]:
    """``[(path, class index or None)]`` for the first ``n`` subset images (labels need wnid folders)."""
    root = imagenet_val_root()
    index = imagenet_val_index(root)
    wnids = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("n"))
    pos = {w: i for i, w in enumerate(wnids)} if len(wnids) == 1000 else {}
    items = []
    for name in imagenet_val_subset(n):
        if name not in index:
            raise ArtefactMissing(_message(root, f"{name} is missing"))
        path = index[name]
        items.append((path, pos.get(path.parent.name)))
    return items
