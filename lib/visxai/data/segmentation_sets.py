"""Paper-profile segmentation sets for AGF Table 3: ImageNet-Segmentation and PASCAL VOC 2012.

Public API::

    load_imagenet_segmentation(n=None, size=224, path=None)
        -> images float32 [N,3,size,size] in [0,1], masks int64 [N,size,size] (1 = object, 0 =
        background)
    load_voc2012_segmentation(split="val", n=None, size=224, root=None)
        -> images float32 [N,3,size,size] in [0,1], labels float32 [N,20] multi-hot,
           masks int64 [N,size,size] with VOC class ids (0 = background, 1..20, 255 = ignore)
    voc2012_root(root=None) -> folder holding ``VOCdevkit/VOC2012`` (extracts the cached tar once)
    VOCMasks(masks)         -> ``.subset(idx)``, ``.class_mask(cls)``, ``.foreground`` (the
                               interface of :class:`visxai.data.synthetic.SyntheticSet` used by
                               the multi-label segmentation path)

ImageNet-Segmentation (Guillaumin et al., IJCV 2014) is the MATLAB v7.3 (HDF5) file
``gtsegs_ijcv.mat`` of the ``imagenet-segmentation`` artefact; it is read with h5py exactly as the
AGF / Transformer-Explainability authors do (``data/Imagenet.py``, ``Imagenet_Segmentation``):
``img = f[f['/value/img'][i, 0]]`` transposed ``(2, 1, 0)`` to ``H x W x 3`` uint8 and
``gt = f[f[f['/value/gt'][i, 0]][0, 0]]`` transposed to ``H x W``; images resized with
``transforms.Resize((224, 224))`` (bilinear) and masks with ``Resize((224, 224), NEAREST)``.
The AGF authors normalise with the ImageNet mean/std afterwards; here images stay in [0, 1]
(the evaluation code normalises with the model's ``normalize``).

PASCAL VOC 2012 is read with :class:`torchvision.datasets.VOCSegmentation` from the extracted
``voc2012`` artefact (``VOCtrainval_11-May-2012.tar``); images and masks are resized the same way
(bilinear / nearest, so the 255 boundary label survives). The per-image multi-hot labels are the
classes present in the *resized* mask, so every positive label has a non-empty ground truth.

Written by hand: only the reading glue (a few lines each); decoding is h5py / torchvision / PIL.
Missing artefacts raise :class:`~visxai.data.ArtefactMissing` naming ``python -m visxai fetch
NAME``.
"""

from __future__ import annotations

import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from .manifest import ArtefactMissing, artefact_path, load_manifest

__all__ = [
    "IMAGENET_SEG_FILE",
    "VOC_CLASSES",
    "VOC_TAR",
    "VOCMasks",
    "load_imagenet_segmentation",
    "load_voc2012_segmentation",
    "voc2012_root",
]

IMAGENET_SEG_FILE = "gtsegs_ijcv.mat"
VOC_TAR = "VOCtrainval_11-May-2012.tar"
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOC_IGNORE = 255


def resize_pair(
    img: Image.Image, mask: Image.Image, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Authors' transforms: ``Resize((size, size))`` bilinear for the image, nearest for the
    mask."""
    x = TF.to_tensor(
        TF.resize(img.convert("RGB"), [size, size], interpolation=InterpolationMode.BILINEAR)
    )
    m = TF.resize(mask, [size, size], interpolation=InterpolationMode.NEAREST)
    return x.clamp(0, 1), torch.from_numpy(np.array(m, dtype=np.int64))


def _check_n_size(n: int | None, size: int) -> None:
    if n is not None and (not isinstance(n, int) or n < 0):
        raise ValueError(f"n must be None or an int >= 0, got {n!r}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")


# ------------------------------------------------------------------------ ImageNet-Segmentation
def load_imagenet_segmentation(
    n: int | None = None, size: int = 224, path: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of ImageNet-Segmentation (all 4,276 for ``None``) and their masks.

    ``path`` overrides the cached ``gtsegs_ijcv.mat`` (tests); by default it comes from
    ``artefact_path("imagenet-segmentation", "gtsegs_ijcv.mat")``, which raises ArtefactMissing.
    Returns ``(images [N,3,size,size] float32 in [0,1], masks [N,size,size] int64 in {0,1})``.
    """
    _check_n_size(n, size)
    file = (
        Path(path)
        if path is not None
        else artefact_path("imagenet-segmentation", IMAGENET_SEG_FILE)
    )
    if not file.is_file():
        raise ArtefactMissing(
            f"{file} does not exist.\nGet it with: python -m visxai fetch imagenet-segmentation"
        )
    import h5py  # paper profile only

    xs, ms = [], []
    with h5py.File(file, "r") as f:
        if "value" not in f or "img" not in f["value"] or "gt" not in f["value"]:
            raise ValueError(f"{file}: not a gtsegs_ijcv.mat file (needs /value/img and /value/gt)")
        img_refs, gt_refs = f["value/img"], f["value/gt"]
        total = len(img_refs)
        for i in range(total if n is None else min(n, total)):
            img = np.array(f[img_refs[i, 0]]).transpose(
                (2, 1, 0)
            )  # MATLAB column-major -> H x W x 3
            gt = np.array(f[f[gt_refs[i, 0]][0, 0]]).transpose((1, 0))  # cell in a cell -> H x W
            if img.ndim != 3 or img.shape[2] != 3 or gt.shape != img.shape[:2]:
                raise ValueError(f"{file}: item {i} has image {img.shape} and mask {gt.shape}")
            x, m = resize_pair(
                Image.fromarray(img.astype(np.uint8)),
                Image.fromarray((gt > 0).astype(np.uint8)),
                size,
            )
            xs.append(x)
            ms.append(m)
    if not xs:
        return torch.zeros(0, 3, size, size), torch.zeros(0, size, size, dtype=torch.int64)
    return torch.stack(xs), torch.stack(ms)


# ----------------------------------------------------------------------------------- VOC 2012
def voc2012_root(root: str | Path | None = None) -> Path:
    """Folder holding ``VOCdevkit/VOC2012`` (torchvision's ``root``).

    ``root`` is used as given (checked). By default the ``voc2012`` artefact's cache folder; the
    cached tar is extracted there once (into a temporary folder, then renamed, so an interrupted
    extraction is never mistaken for a complete one). Raises ArtefactMissing when neither exists.
    """
    if root is not None:
        root = Path(root)
        if not (root / "VOCdevkit" / "VOC2012").is_dir():
            raise ArtefactMissing(
                f"{root} has no VOCdevkit/VOC2012 folder.\nGet it with: python -m visxai fetch "
                "voc2012"
            )
        return root
    adir = load_manifest("voc2012").dir
    if (adir / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation").is_dir():
        return adir
    tar = artefact_path("voc2012", VOC_TAR)  # raises ArtefactMissing with the fetch command
    with tempfile.TemporaryDirectory(dir=adir, prefix=".extract-") as tmp:
        with tarfile.open(tar) as tf:
            tf.extractall(tmp, filter="data")
        if (adir / "VOCdevkit").exists():  # an incomplete earlier copy
            import shutil

            shutil.rmtree(adir / "VOCdevkit")
        (Path(tmp) / "VOCdevkit").rename(adir / "VOCdevkit")
    return adir


def load_voc2012_segmentation(
    split: str = "val", n: int | None = None, size: int = 224, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n`` images of VOC 2012 ``split`` (``train`` | ``val`` | ``trainval``).

    Returns ``(images [N,3,size,size] float32 in [0,1], labels [N,20] float32 multi-hot of the
    classes present in the resized mask, masks [N,size,size] int64: 0 background, 1..20 the
    classes of :data:`VOC_CLASSES`, 255 ignore)``.
    """
    if split not in ("train", "val", "trainval"):
        raise ValueError(f"split must be 'train', 'val' or 'trainval', got {split!r}")
    _check_n_size(n, size)
    from torchvision.datasets import VOCSegmentation

    ds = VOCSegmentation(str(voc2012_root(root)), year="2012", image_set=split, download=False)
    count = len(ds) if n is None else min(n, len(ds))
    xs, ms = [], []
    for i in range(count):
        img, mask = ds[i]
        x, m = resize_pair(img, mask, size)
        bad = set(torch.unique(m).tolist()) - set(range(len(VOC_CLASSES) + 1)) - {VOC_IGNORE}
        if bad:
            raise ValueError(
                f"VOC mask {ds.masks[i]} holds ids {sorted(bad)} (expected 0..20 or 255)"
            )
        xs.append(x)
        ms.append(m)
    if not xs:
        return (
            torch.zeros(0, 3, size, size),
            torch.zeros(0, len(VOC_CLASSES)),
            torch.zeros(0, size, size, dtype=torch.int64),
        )
    masks = torch.stack(ms)
    labels = torch.stack(
        [torch.isin(torch.arange(1, len(VOC_CLASSES) + 1), m.unique()) for m in masks]
    ).float()
    return torch.stack(xs), labels, masks


@dataclass
class VOCMasks:
    """VOC masks with the interface the multi-label segmentation path expects (like
    SyntheticSet)."""

    masks: torch.Tensor  # [N,H,W] int64: 0 background, 1..20 classes, 255 ignore

    def __len__(self) -> int:
        return len(self.masks)

    @property
    def foreground(self) -> torch.Tensor:
        """``[N,H,W]``: 1 where any object, 0 background, 255 ignore."""
        fg = (self.masks > 0).long()
        return torch.where(self.masks == VOC_IGNORE, torch.full_like(fg, VOC_IGNORE), fg)

    def class_mask(self, cls: int | torch.Tensor) -> torch.Tensor:
        """``[N,H,W]``: 1 on class ``cls`` (0-based index into VOC_CLASSES, per image if ``[N]``), 0
        elsewhere, 255 kept."""
        c = torch.as_tensor(cls).long()
        c = c.expand(len(self)) if c.dim() == 0 else c
        if len(c) != len(self):
            raise ValueError(f"need one class per image ({len(self)}), got {len(c)}")
        m = (self.masks == (c + 1)[:, None, None]).long()
        return torch.where(self.masks == VOC_IGNORE, torch.full_like(m, VOC_IGNORE), m)

    @property
    def label_mask(self) -> torch.Tensor:
        """``[N,H,W]``: the masks as they are (0 background, ``c + 1`` class c, 255 ignore)."""
        return self.masks

    def subset(self, idx: torch.Tensor | slice) -> VOCMasks:
        return VOCMasks(self.masks[idx])
