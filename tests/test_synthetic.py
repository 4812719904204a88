"""The synthetic multi-object segmentation set (offline stand-in for VOC in Table 3)."""

import pytest
import torch

from visxai.data.synthetic import SyntheticConfig, make_synthetic


@pytest.fixture(scope="module")
def items():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(100, 1, 28, 28)
    x[:, :, 5:23, 7:21] = torch.rand(100, 1, 18, 14, generator=g) * 0.7 + 0.3
    return x, torch.arange(100) % 10


def test_deterministic_and_splits_differ(items):
    a = make_synthetic(40, seed=3, split="test", items=items)
    b = make_synthetic(40, seed=3, split="test", items=items)
    c = make_synthetic(40, seed=3, split="train", items=items)
    d = make_synthetic(40, seed=4, split="test", items=items)
    assert torch.equal(a.images, b.images) and torch.equal(a.instances, b.instances)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.images, d.images)


def test_labels_masks_and_ranges_are_consistent(items):
    cfg = SyntheticConfig()
    ds = make_synthetic(60, cfg, seed=0, split="test", items=items)
    assert ds.images.shape == (60, 3, cfg.size, cfg.size)
    assert ds.images.min() >= 0 and ds.images.max() <= 1
    for i in range(60):
        cls = [c for c in ds.object_classes[i].tolist() if c >= 0]
        assert cfg.min_objects <= len(cls) <= cfg.max_objects
        assert len(set(cls)) == len(cls)  # distinct classes
        assert sorted(torch.nonzero(ds.labels[i]).flatten().tolist()) == sorted(cls)
        # every object is visible, instance ids match slots
        for slot, c in enumerate(cls, start=1):
            assert (ds.instances[i] == slot).sum() > 0
        assert ds.instances[i].max() == len(cls)
    # class_mask selects exactly that object's pixels
    first = ds.object_classes[:, 0]
    m = ds.class_mask(first)
    assert torch.equal(m.bool(), ds.instances == 1)
    absent = ds.class_mask(torch.full((60,), 9))
    for i in range(60):
        if 9 not in ds.object_classes[i].tolist():
            assert absent[i].sum() == 0


def test_masks_are_exact_pasted_pixels(items):
    # pasted object pixels are saturated colours, the texture is a lightly tinted grey: the
    # channel spread (max - min over RGB) is bounded on the background and large on objects
    ds = make_synthetic(20, seed=1, split="test", items=items)
    spread = ds.images.amax(1) - ds.images.amin(1)  # [N,S,S]
    fg = ds.foreground.bool()
    assert spread[~fg].max() <= 0.3 * 0.65 + 1e-5  # tint +-15% of an intensity <= 0.65
    assert float(spread[fg].mean()) > 3 * float(spread[~fg].mean())
