"""PASCAL VOC 2012 (+ SBD) training data of the multi-label VGG-19 of notebook 02 / AGF Table 3b.

:class:`VOCMultiLabel` is a torch ``Dataset`` of ``(normalised image, 20 multi-hot labels)``
with the AGF authors' augmentation (shirgur/AGFVisualization, ``data/VOC.py``): joint image/mask
``Resize`` + ``RandomCrop`` + horizontal flip, labels = the classes present in the *augmented*
mask crop (0 background and 255 boundary ignored). :func:`voc_train_items` lists the image/mask
files (VOC seg ``train`` plus, optionally, SBD train+val minus VOC val, de-duplicated: the
"train_aug" list of 10,582 images); :func:`voc_multi_hot` turns a mask into labels. The model,
its recipe and training loop are in :mod:`visxai.models.voc_multilabel`; the evaluation images
and masks of Table 3b in :mod:`visxai.data.segmentation_sets`.

Written by hand: the file lists, SBD ``.mat`` reading with SciPy and the labels of a mask; the
augmentation is torchvision's ``transforms.v2`` (joint on ``tv_tensors.Mask``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .imagenet import IMAGENET_MEAN, IMAGENET_STD
from .manifest import ArtefactMissing
from .segmentation_sets import VOC_CLASSES, VOC_IGNORE, resize_pair, voc2012_root

__all__ = ["VOCMultiLabel", "voc_multi_hot", "voc_train_items"]


def _read_ids(path: Path) -> list[str]:
    return [ln.strip().split()[0] for ln in path.read_text().splitlines() if ln.strip()]


def voc_train_items(voc: Path, sbd_root: Path | None, image_set: str) -> list[tuple[Path, Path]]:
    """``(image, mask)`` paths: VOC seg ``image_set`` (+ SBD train/val minus VOC val,
    de-duplicated)."""
    seg = voc / "ImageSets" / "Segmentation"
    split_file = seg / f"{image_set}.txt"
    if not split_file.is_file():
        raise ArtefactMissing(
            f"{split_file} does not exist.\nGet VOC 2012 with: python -m visxai fetch voc2012"
        )
    ids = _read_ids(split_file)
    items = [(voc / "JPEGImages" / f"{i}.jpg", voc / "SegmentationClass" / f"{i}.png") for i in ids]
    if sbd_root is not None:
        sbd_root = Path(sbd_root)
        lists = [sbd_root / "train.txt", sbd_root / "val.txt"]
        if not lists[0].is_file() or not (sbd_root / "cls").is_dir():
            raise ArtefactMissing(
                f"{sbd_root} is not SBD's benchmark_RELEASE/dataset folder (needs train.txt, img/, "
                "cls/); "
                "SBD: http://home.bharathh.info/pubs/codes/SBD/download.html"
            )
        val_file = seg / "val.txt"
        exclude = set(ids) | (set(_read_ids(val_file)) if val_file.is_file() else set())
        seen: set[str] = set()
        for lst in lists:
            for i in _read_ids(lst) if lst.is_file() else []:
                if i not in exclude and i not in seen:
                    seen.add(i)
                    items.append((sbd_root / "img" / f"{i}.jpg", sbd_root / "cls" / f"{i}.mat"))
    return items


def _open_mask(path: Path):
    from PIL import Image

    if path.suffix == ".mat":  # SBD: GTcls.Segmentation, uint8 class ids (0..20)
        from scipy import io

        seg = io.loadmat(str(path), struct_as_record=False, squeeze_me=True)["GTcls"].Segmentation
        return Image.fromarray(np.asarray(seg, dtype=np.uint8))
    return Image.open(path)


def voc_multi_hot(mask: torch.Tensor) -> torch.Tensor:
    """20-dim multi-hot of the classes 1..20 present in ``mask`` (0 background, 255 ignore)."""
    present = torch.zeros(len(VOC_CLASSES) + 1, dtype=torch.bool)
    ids = mask.unique()
    ids = ids[(ids != VOC_IGNORE) & (ids <= len(VOC_CLASSES))]
    present[ids.long()] = True
    return present[1:].float()


class VOCMultiLabel(Dataset):
    """VOC 2012 (+ SBD) images with 20 multi-hot labels taken from the segmentation mask.

    ``train=True``: the authors' augmentation (joint ``Resize(resize)``, ``RandomCrop(crop)``,
    horizontal flip; labels from the augmented mask). ``train=False``: the Table 3b input, the
    whole image resized to ``crop x crop`` (bilinear, mask nearest), exactly as
    :func:`~visxai.data.segmentation_sets.load_voc2012_segmentation`. Images are normalised
    with the ImageNet mean/std. Items: ``(x float32 [3,crop,crop], y float32 [20])``.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        image_set: str = "train",
        train: bool = True,
        sbd_root: str | Path | None = None,
        resize: int = 321,
        crop: int = 224,
        flip: bool = True,
    ) -> None:
        if image_set not in ("train", "val", "trainval"):
            raise ValueError(f"image_set must be 'train', 'val' or 'trainval', got {image_set!r}")
        if crop < 1 or resize < crop:
            raise ValueError(f"need 1 <= crop <= resize, got crop={crop}, resize={resize}")
        self.voc = voc2012_root(root) / "VOCdevkit" / "VOC2012"
        self.items = voc_train_items(self.voc, sbd_root, image_set)
        self.train, self.resize, self.crop, self.flip = train, resize, crop, flip
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        if train:
            from torchvision.transforms import v2

            self._aug = v2.Compose(
                [v2.Resize(resize, antialias=True), v2.RandomCrop(crop)]
                + ([v2.RandomHorizontalFlip()] if flip else [])
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        img_path, mask_path = self.items[i]
        img, mask = Image.open(img_path).convert("RGB"), _open_mask(mask_path)
        if self.train:
            from torchvision import tv_tensors
            from torchvision.transforms.v2 import functional as F

            x = tv_tensors.Image(F.pil_to_tensor(img))
            m = tv_tensors.Mask(torch.from_numpy(np.array(mask, dtype=np.uint8)))
            x, m = self._aug(x, m)
            x = x.float().div(255.0)
        else:
            x, m = resize_pair(img, mask, self.crop)
        return (x - self._mean) / self._std, voc_multi_hot(m.as_subclass(torch.Tensor))
