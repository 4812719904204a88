"""Loaders: documented shapes, dtypes, ranges, splits and photo names.

These read the real cache (``python -m visxai fetch --offline-set``); a test is skipped, saying
so, when its artefact is not there, so that the suite never needs the network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from visxai import data as vdata
from visxai.data import manifest as M


def need(name: str) -> None:
    if not vdata.is_cached(name):
        pytest.skip(f"artefact {name} not fetched: run `python -m visxai fetch {name}`")


@pytest.mark.parametrize("split,n", [("train", 8000), ("test", 2000)])
def test_load_mnist_10k(split, n):
    need("mnist-10k")
    x, y = vdata.load_mnist(split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (n,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(torch.round(x * 255) / 255, x)  # exactly uint8 / 255
    counts = torch.bincount(y, minlength=10)
    assert counts.sum() == n and (counts > 0).all() and y.max() == 9
    assert set(y[:10].tolist()) == set(range(10))  # classes interleaved
    # digits are dark background, bright strokes: mean intensity ~0.13 as in MNIST
    assert 0.08 < float(x.mean()) < 0.2


def test_mnist_10k_splits_are_disjoint_and_stratified():
    need("mnist-10k")
    (xtr, ytr), (xte, yte) = vdata.load_mnist("train"), vdata.load_mnist("test")
    frac = (
        torch.bincount(yte, minlength=10).double()
        / (torch.bincount(ytr, minlength=10) + torch.bincount(yte, minlength=10)).double()
    )
    assert torch.allclose(frac, torch.full((10,), 0.2, dtype=torch.float64), atol=0.002)
    tr = {bytes((v * 255).round().to(torch.uint8).numpy()) for v in xtr}
    overlap = sum(bytes((v * 255).round().to(torch.uint8).numpy()) in tr for v in xte)
    assert overlap == 0


def test_loaders_return_fresh_tensors():
    need("mnist-10k")
    x1, _ = vdata.load_mnist("test")
    x1.zero_()
    x2, _ = vdata.load_mnist("test")
    assert float(x2.max()) == 1.0


@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_load_fashion_mnist(split, n):
    need("fashion-mnist")
    x, y = vdata.load_fashion_mnist(split)
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and torch.equal(torch.bincount(y), torch.full((10,), n // 10))
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert len(vdata.FASHION_MNIST_CLASSES) == 10


def test_bad_split_and_subset_are_refused():
    with pytest.raises(ValueError, match="split"):
        vdata.load_fashion_mnist("validation")
    with pytest.raises(ValueError, match="subset"):
        vdata.load_mnist("train", subset="20k")


def test_full_mnist_is_not_downloaded_implicitly(monkeypatch, tmp_path):
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))
    with pytest.raises(vdata.ArtefactMissing, match="python -m visxai fetch mnist"):
        vdata.load_mnist("train", subset="full")


EXPECTED_PHOTOS = [
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "motorcycle",
    "grass",
    "gravel",
    "brick",
    "china",
    "flower",
    "grace_hopper",
    "dog",
    "eagle",
    "giraffe",
    "horses",
    "person",
    "kite",
]


def test_list_photos_matches_manifest():
    assert vdata.list_photos() == EXPECTED_PHOTOS
    listed = {f.path for f in M.load_manifest("photos").files}
    assert {vdata.PHOTOS[n][0] for n in EXPECTED_PHOTOS} == listed


@pytest.mark.parametrize("name", EXPECTED_PHOTOS)
def test_load_photo_is_rgb(name):
    need("photos")
    im = vdata.load_photo(name)
    assert isinstance(im, Image.Image) and im.mode == "RGB"
    assert min(im.size) >= 256
    a = np.asarray(im)
    assert a.dtype == np.uint8 and a.shape[2] == 3 and a.std() > 10  # a real picture, not blank


def test_load_photo_unknown_name():
    with pytest.raises(ValueError, match="available"):
        vdata.load_photo("no-such-photo")
