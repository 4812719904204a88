"""A synthetic multi-object segmentation set: Fashion-MNIST items pasted on natural textures.

The offline stand-in for PASCAL VOC 2012 / ImageNet-Segmentation in Table 3 and Fig. 4 of Gur
et al. (AAAI 2021): every image shows 1-3 Fashion-MNIST items of **different** classes, each
resized and coloured, pasted onto a random crop of one of scikit-image's bundled textures
(``grass``, ``gravel``, ``brick``). Because we paste them, the masks are exact: a pixel belongs
to an object iff its value was copied from that item (item intensity above ``alpha_threshold``),
later items occlude earlier ones, and each object keeps at least ``min_visible`` of its pixels.

* ``make_synthetic(n, config, seed, split)`` is deterministic: same arguments, same bytes.
  ``split="train"`` draws items from the Fashion-MNIST training split, ``"test"`` from its test
  split, and the two use different random streams, so no item image is shared across splits.
* images ``[N,3,S,S]`` float32 in [0,1]; ``labels`` ``[N,10]`` multi-hot float32 (the multi-label
  target); ``instances`` ``[N,S,S]`` int64, 0 = background, k = k-th pasted object;
  ``object_classes`` ``[N,max_objects]`` (-1 = none); ``foreground`` and ``class_mask(c)`` give
  the binary masks the segmentation metric needs, ``label_mask`` the per-pixel class map
  (0 = background, ``c + 1`` = class c) of the multi-label test.

Written by hand: it is a data generator specific to this project (a few dozen lines of NumPy and
``torch.nn.functional.interpolate``); textures come from ``skimage.data``, items from
:func:`visxai.data.load_fashion_mnist`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SyntheticConfig", "SyntheticSet", "make_synthetic", "TEXTURES", "load_texture"]

TEXTURES = ("grass", "gravel", "brick")


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator settings (all part of the determinism contract: change one, get another set)."""

    size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    item_size: tuple[int, int] = (24, 36)  # side of a pasted item, drawn uniformly
    crop_size: tuple[int, int] = (128, 320)  # texture crop side before resizing to `size`
    texture_range: tuple[float, float] = (0.15, 0.65)  # texture intensities are mapped into this
    alpha_threshold: float = 0.15
    min_visible: float = 0.5
    textures: tuple[str, ...] = field(default=TEXTURES)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass
class SyntheticSet:
    images: torch.Tensor  # [N,3,S,S] float32 in [0,1]
    labels: torch.Tensor  # [N,10] float32 multi-hot
    instances: torch.Tensor  # [N,S,S] int64, 0 = background, k = k-th object
    object_classes: torch.Tensor  # [N,max_objects] int64, -1 = none
    texture: torch.Tensor  # [N] int64 index into config.textures
    config: SyntheticConfig

    def __len__(self) -> int:
        return len(self.images)

    @property
    def foreground(self) -> torch.Tensor:
        """``[N,S,S]`` int64: 1 where any object is visible."""
        return (self.instances > 0).long()

    def class_mask(self, cls: int | torch.Tensor) -> torch.Tensor:
        """``[N,S,S]`` int64 mask of the object of class ``cls`` (per image if a tensor ``[N]``)."""
        cls_t = (
            torch.as_tensor(cls).long().expand(len(self))
            if torch.as_tensor(cls).dim() == 0
            else torch.as_tensor(cls).long()
        )
        if len(cls_t) != len(self):
            raise ValueError(f"need one class per image ({len(self)}), got {len(cls_t)}")
        which = (self.object_classes == cls_t[:, None]).long()  # [N,K] 1 at the object's slot
        slot = torch.where(
            which.any(1), which.argmax(1) + 1, torch.full_like(cls_t, -1)
        )  # 1-based, -1 absent
        return (self.instances == slot[:, None, None]).long()

    @property
    def label_mask(self) -> torch.Tensor:
        """``[N,S,S]`` int64: 0 on background, ``c + 1`` on the visible pixels of the object of
        class ``c`` (the per-pixel class map of the multi-label segmentation test, Table 3b)."""
        slots = torch.cat([torch.full_like(self.object_classes[:, :1], -1), self.object_classes], 1)
        return slots.gather(1, self.instances.flatten(1)).view_as(self.instances) + 1

    def subset(self, idx: torch.Tensor | slice) -> SyntheticSet:
        return SyntheticSet(
            self.images[idx],
            self.labels[idx],
            self.instances[idx],
            self.object_classes[idx],
            self.texture[idx],
            self.config,
        )


_TEXTURE_CACHE: dict[str, np.ndarray] = {}


def load_texture(name: str) -> np.ndarray:
    """A scikit-image bundled texture as float32 [H,W] in [0,1]."""
    if name not in _TEXTURE_CACHE:
        import skimage.data

        if name not in TEXTURES:
            raise ValueError(f"unknown texture {name!r}; choose from {TEXTURES}")
        img = getattr(skimage.data, name)()
        if img.ndim == 3:
            img = img.mean(axis=2)
        _TEXTURE_CACHE[name] = img.astype(np.float32) / 255.0
    return _TEXTURE_CACHE[name]


def _resize(a: np.ndarray, side: int, antialias: bool) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(a))[None, None]
    return F.interpolate(
        t, size=(side, side), mode="bilinear", align_corners=False, antialias=antialias
    )[0, 0].numpy()


def _hsv_colour(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    h, s, v = rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def make_synthetic(
    n: int,
    config: SyntheticConfig | None = None,
    seed: int = 0,
    split: str = "train",
    items: tuple[torch.Tensor, torch.Tensor] | None = None,
    num_classes: int = 10,
) -> SyntheticSet:
    """Generate ``n`` images (see the module docstring). ``items`` = (images [M,1,28,28] in [0,1],
    labels [M]) overrides the Fashion-MNIST split (used by tests)."""
    cfg = config or SyntheticConfig()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 1 <= cfg.min_objects <= cfg.max_objects:
        raise ValueError("need 1 <= min_objects <= max_objects")
    if cfg.max_objects > num_classes:
        raise ValueError(
            "max_objects cannot exceed the number of classes (objects have distinct classes)"
        )
    if items is None:
        from . import load_fashion_mnist

        items = load_fashion_mnist(split)
    item_x = items[0].numpy() if isinstance(items[0], torch.Tensor) else np.asarray(items[0])
    item_y = items[1].numpy() if isinstance(items[1], torch.Tensor) else np.asarray(items[1])
    item_x = item_x.reshape(len(item_x), *item_x.shape[-2:]).astype(np.float32)
    by_class = [np.flatnonzero(item_y == c) for c in range(num_classes)]
    present = [c for c in range(num_classes) if len(by_class[c])]
    if len(present) < cfg.max_objects:
        raise ValueError(f"items cover only {len(present)} classes, need {cfg.max_objects}")
    textures = [load_texture(t) for t in cfg.textures]
    rng = np.random.default_rng([int(seed), 0 if split == "train" else 1, 20210202])
    S = cfg.size
    images = np.zeros((n, 3, S, S), np.float32)
    instances = np.zeros((n, S, S), np.int64)
    obj_cls = np.full((n, cfg.max_objects), -1, np.int64)
    tex_idx = np.zeros(n, np.int64)
    labels = np.zeros((n, num_classes), np.float32)
    for i in range(n):
        t = int(rng.integers(len(textures)))
        tex = textures[t]
        c = int(rng.integers(cfg.crop_size[0], cfg.crop_size[1] + 1))
        y0, x0 = rng.integers(0, tex.shape[0] - c + 1), rng.integers(0, tex.shape[1] - c + 1)
        bg = _resize(tex[y0 : y0 + c, x0 : x0 + c], S, antialias=True)
        lo, hi = cfg.texture_range
        bg = (bg - bg.min()) / max(bg.max() - bg.min(), 1e-6)
        a, b = sorted(rng.uniform(lo, hi, size=2))
        bg = a + (b - a) * bg
        tint = 1.0 + rng.uniform(-0.15, 0.15, size=3).astype(np.float32)
        img = np.clip(bg[None] * tint[:, None, None], 0, 1)
        inst = np.zeros((S, S), np.int64)
        k = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        classes = rng.choice(present, size=k, replace=False)
        placed = 0
        for cls in classes:
            for _attempt in range(20):
                j = int(rng.choice(by_class[cls]))
                side = int(rng.integers(cfg.item_size[0], cfg.item_size[1] + 1))
                it = np.clip(_resize(item_x[j], side, antialias=True), 0, 1)
                alpha = it > cfg.alpha_threshold
                if alpha.sum() < 10:
                    continue
                py, px = int(rng.integers(0, S - side + 1)), int(rng.integers(0, S - side + 1))
                new = inst.copy()
                region = new[py : py + side, px : px + side]
                region[alpha] = placed + 1
                # earlier objects must stay visible enough
                ok = all(
                    (new == q).sum() >= cfg.min_visible * max((inst == q).sum(), 1)
                    for q in range(1, placed + 1)
                )
                if not ok:
                    continue
                colour = _hsv_colour(rng)
                patch = colour[:, None, None] * (0.35 + 0.65 * it)[None]
                sub = img[:, py : py + side, px : px + side]
                sub[:, alpha] = patch[:, alpha]
                inst = new
                obj_cls[i, placed] = int(cls)
                labels[i, int(cls)] = 1.0
                placed += 1
                break
        images[i] = img
        instances[i] = inst
        tex_idx[i] = t
    return SyntheticSet(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        torch.from_numpy(instances),
        torch.from_numpy(obj_cls),
        torch.from_numpy(tex_idx),
        cfg,
    )
