"""Data layer: manifests (read, fetch, verify), data set loaders, sample photos.

Public API::

    load_mnist(split="train"|"test", subset="10k"|"full")
        -> (images [N,1,28,28] float32 in [0,1], labels int64)
    load_fashion_mnist(split) -> same, 60,000 / 10,000
    load_photo(name) -> PIL.Image (RGB);  list_photos() -> names
    artefact_path(name, file) -> Path in the cache, or raises ArtefactMissing (fetch command)
    fetch(name), verify(name), load_manifest(name), manifest_files(name), offline_set()
    imagenet_val_subset(), imagenet_val_root()  (paper profile; user-provided ImageNet)

Offline artefacts (mnist-10k, fashion-mnist, photos) are fetched on first use, quietly; paper
artefacts only by ``python -m visxai fetch NAME``.
"""

from .datasets import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_fashion_mnist, load_mnist
from .imagenet import imagenet_val_root, imagenet_val_subset
from .manifest import (
    ArtefactMissing,
    Manifest,
    ManifestError,
    all_manifests,
    artefact_path,
    ensure,
    fetch,
    is_cached,
    load_manifest,
    manifest_files,
    offline_set,
    verify,
)
from .photos import PHOTOS, describe_photo, list_photos, load_photo, photo_path

__all__ = [
    "ArtefactMissing",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "Manifest",
    "ManifestError",
    "PHOTOS",
    "all_manifests",
    "artefact_path",
    "describe_photo",
    "ensure",
    "fetch",
    "imagenet_val_root",
    "imagenet_val_subset",
    "is_cached",
    "list_photos",
    "load_fashion_mnist",
    "load_manifest",
    "load_mnist",
    "load_photo",
    "manifest_files",
    "offline_set",
    "photo_path",
    "verify",
]
