"""Paper-profile segmentation loaders on tiny fake files (no network): layout, shapes, values,
errors."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

h5py = pytest.importorskip("h5py")

from visxai.data import ArtefactMissing  # noqa: E402
from visxai.data.segmentation_sets import (  # noqa: E402
    VOCMasks,
    load_imagenet_segmentation,
    load_voc2012_segmentation,
    voc2012_root,
)


def _fake_gtsegs(path: Path, shapes: list[tuple[int, int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """A gtsegs_ijcv.mat look-alike: /value/img and /value/gt hold object references (N x 1), the
    images are stored MATLAB-style (3 x W x H) and each gt is a reference to a 1 x 1 cell holding a
    reference to the W x H mask, as in the real file."""
    rng = np.random.default_rng(0)
    items = []
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        img_refs = np.empty((len(shapes), 1), dtype=h5py.ref_dtype)
        gt_refs = np.empty((len(shapes), 1), dtype=h5py.ref_dtype)
        for i, (h, w) in enumerate(shapes):
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            gt = np.zeros((h, w), dtype=np.uint8)
            gt[h // 4 : 3 * h // 4, : w // 2] = 1  # object = left half of the middle rows
            d_img = refs.create_dataset(f"img{i}", data=img.transpose(2, 1, 0))
            d_gt = refs.create_dataset(f"gt{i}", data=gt.T)
            cell = refs.create_dataset(
                f"cell{i}", data=np.array([[d_gt.ref]], dtype=h5py.ref_dtype)
            )
            img_refs[i, 0] = d_img.ref
            gt_refs[i, 0] = cell.ref
            items.append((img, gt))
        f.create_dataset("value/img", data=img_refs)
        f.create_dataset("value/gt", data=gt_refs)
    return items


def test_imagenet_segmentation_reads_matlab_layout(tmp_path):
    path = tmp_path / "gtsegs_ijcv.mat"
    items = _fake_gtsegs(path, [(40, 60), (48, 32), (50, 50)])
    x, m = load_imagenet_segmentation(path=path, size=16)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    assert m.shape == (3, 16, 16) and m.dtype == torch.int64
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert set(m.unique().tolist()) == {0, 1}
    # nearest resize keeps the geometry: rows 1/4..3/4, left half (not transposed)
    assert m[0, 8, 2] == 1 and m[0, 8, 13] == 0 and m[0, 0, 2] == 0
    # size = original size: exactly the stored pixels (orientation of the MATLAB transpose checked)
    img, gt = items[2]
    x_full, m_full = load_imagenet_segmentation(n=None, path=path, size=50)
    assert torch.equal(m_full[2], torch.from_numpy(gt.astype(np.int64)))
    assert torch.allclose(
        x_full[2], torch.from_numpy(img).permute(2, 0, 1).float() / 255, atol=1e-6
    )
    # n takes the first n
    x1, m1 = load_imagenet_segmentation(n=2, path=path, size=16)
    assert torch.equal(x1, x[:2]) and torch.equal(m1, m[:2])


def test_imagenet_segmentation_bad_input(tmp_path):
    bad = tmp_path / "bad.mat"
    with h5py.File(bad, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="value/img"):
        load_imagenet_segmentation(path=bad)
    with pytest.raises(ValueError, match="size"):
        load_imagenet_segmentation(path=bad, size=0)


def _fake_voc(root: Path, ids: list[str], split: str = "val") -> None:
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    for k, name in enumerate(ids):
        Image.fromarray(np.full((30, 40, 3), 60 * k, dtype=np.uint8)).save(
            base / "JPEGImages" / f"{name}.jpg"
        )
        mask = np.zeros((30, 40), dtype=np.uint8)
        mask[:, :20] = 15  # person (index 14) on the left
        mask[:, 20:] = 8 + k  # cat (7) or chair (8) on the right
        mask[:, 19:21] = 255  # boundary
        png = Image.fromarray(mask, mode="P")
        png.putpalette([v for i in range(256) for v in (i, i, i)])
        png.save(base / "SegmentationClass" / f"{name}.png")


def test_voc2012_segmentation_from_extracted_root(tmp_path):
    _fake_voc(tmp_path, ["2007_000001", "2007_000002"])
    x, y, m = load_voc2012_segmentation("val", root=tmp_path, size=20)
    assert x.shape == (2, 3, 20, 20) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert y.shape == (2, 20) and m.shape == (2, 20, 20) and m.dtype == torch.int64
    assert y[0].nonzero().flatten().tolist() == [7, 14] and y[1].nonzero().flatten().tolist() == [
        8,
        14,
    ]
    assert set(m[0].unique().tolist()) == {8, 15, 255}
    vm = VOCMasks(m)
    cm = vm.subset(torch.tensor([1])).class_mask(torch.tensor([8]))  # chair in image 1
    assert set(cm.unique().tolist()) == {0, 1, 255} and int((cm == 1).sum()) == int(
        (m[1] == 9).sum()
    )
    assert set(vm.foreground.unique().tolist()) == {1, 255}
    x1, y1, m1 = load_voc2012_segmentation("val", n=1, root=tmp_path, size=20)
    assert torch.equal(m1, m[:1]) and torch.equal(y1, y[:1])
    with pytest.raises(ValueError, match="split"):
        load_voc2012_segmentation("test", root=tmp_path)


def test_voc2012_tar_is_extracted_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path / "cache"))
    src = tmp_path / "src"
    _fake_voc(src, ["2008_000003"])
    adir = tmp_path / "cache" / "voc2012"
    adir.mkdir(parents=True)
    with tarfile.open(adir / "VOCtrainval_11-May-2012.tar", "w") as tf:
        tf.add(src / "VOCdevkit", arcname="VOCdevkit")
    assert voc2012_root() == adir
    x, y, m = load_voc2012_segmentation("val", size=8)
    assert x.shape == (1, 3, 8, 8) and y[0, 14] == 1
    assert not list(adir.glob(".extract-*"))  # no half-extracted leftovers


def test_missing_artefacts_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))
    with pytest.raises(ArtefactMissing, match="python -m visxai fetch imagenet-segmentation"):
        load_imagenet_segmentation(n=1)
    with pytest.raises(ArtefactMissing, match="python -m visxai fetch voc2012"):
        load_voc2012_segmentation(n=1)
    with pytest.raises(ArtefactMissing, match="python -m visxai fetch voc2012"):
        load_voc2012_segmentation(n=1, root=tmp_path / "nowhere")


def test_eval_data_choices_for_the_paper_sets(tmp_path, monkeypatch):
    from visxai.data.segmentation_sets import VOCMasks
    from visxai.evaluation import eval_data

    monkeypatch.setenv("VISXAI_DATA", str(tmp_path / "cache"))
    (tmp_path / "cache" / "imagenet-segmentation").mkdir(parents=True)
    _fake_gtsegs(
        tmp_path / "cache" / "imagenet-segmentation" / "gtsegs_ijcv.mat",
        [(30, 30), (20, 40), (40, 20)],
    )
    n, get = eval_data("imagenet-seg", 2, 0, None)
    x, y, m = get(torch.tensor([1]))
    assert (
        n == 2 and x.shape == (1, 3, 224, 224) and m.shape == (1, 224, 224) and y.tolist() == [-1]
    )
    src = tmp_path / "src"
    _fake_voc(src, ["2008_000003", "2008_000004"])
    adir = tmp_path / "cache" / "voc2012"
    adir.mkdir(parents=True)
    with tarfile.open(adir / "VOCtrainval_11-May-2012.tar", "w") as tf:
        tf.add(src / "VOCdevkit", arcname="VOCdevkit")
    n, get = eval_data("voc2012", 5, 0, None)
    x, y, masks = get(torch.tensor([0, 1]))
    assert n == 2 and y.shape == (2, 20) and isinstance(masks, VOCMasks) and len(masks) == 2
    with pytest.raises(ValueError, match="imagenet-seg"):
        eval_data("nope", 1, 0, None)


def test_eval_data_imagenet_val_reads_the_imagefolder_layout(tmp_path, monkeypatch):
    """``eval_data("imagenet-val")`` (Table 2/4 paper profile, torchrun): the committed subset's
    first n
    images through ``loaded.preprocess``, labels = index of the wnid folder in sorted order."""
    from types import SimpleNamespace

    from torchvision import transforms as T

    from visxai.data.imagenet import imagenet_val_subset
    from visxai.evaluation import eval_data

    wnids = [f"n{i:08d}" for i in range(1000)]
    for w in wnids:
        (tmp_path / w).mkdir()
    rng = np.random.default_rng(0)
    where = {}
    for k, name in enumerate(imagenet_val_subset(3)):
        w = wnids[(7 * k + 5) % 1000]
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / w / name)
        where[k] = wnids.index(w)
    monkeypatch.setenv("VISXAI_IMAGENET_VAL", str(tmp_path))
    loaded = SimpleNamespace(
        preprocess=T.Compose([T.Resize(16), T.CenterCrop(16), T.ToTensor()]),
        denormalize=lambda t: t,
    )
    n, get = eval_data("imagenet-val", 3, 0, loaded)
    x, y, masks = get(torch.tensor([2, 0]))
    assert n == 3 and x.shape == (2, 3, 16, 16) and x.dtype == torch.float32 and masks is None
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert y.tolist() == [where[2], where[0]]
