"""The location-preserving augmentations of Pixel Invariance (notebook 01, Sec. IV-A), vectorised.

Augment parameters are drawn by torchvision's own ``ColorJitter`` / ``RandomErasing``
``make_params`` (so their distributions are torchvision's), under a private seeded RNG. Applying
them is written here, vectorised over the batch, because torchvision applies one parameter set per
call and 1000 calls per image cost more than the model's forward passes: brightness, contrast and
saturation are torchvision's ``_blend`` formulas with a per-sample factor, hue goes through
torchvision's ``_rgb_to_hsv``/``_hsv_to_rgb``. ``tests/test_pixel_invariance.py`` checks equality
with per-sample torchvision calls.

It sits on the bottom floor (no import of ``models`` or ``methods``) because both the method
(``methods.pixel_invariance``) and the SSL training (``models.ssl_miniatures``) use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .checks import check_images

__all__ = ["AugmentConfig", "AugmentParams", "InvarianceAugment", "check_unit_image", "to_rgb"]


def to_rgb(img):
    """A PIL image in RGB (grayscale and RGBA photos become 3 channels); a tensor passes through.

    A named function, not a lambda, so that a ``transforms.Lambda(to_rgb)`` pickles (DataLoader
    workers)."""
    return img.convert("RGB") if hasattr(img, "convert") else img


_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")  # torchvision's fn_idx order


# ------------------------------------------------------------------------------------------------
# the augmented set
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """The paper's location-preserving augmentations (Sec. IV-A)."""

    jitter: tuple[float, float, float, float] = (
        0.8,
        0.8,
        0.8,
        0.2,
    )  # brightness, contrast, saturation, hue
    p_jitter: float = 0.8
    p_gray: float = 0.2
    p_erase: float = 0.5
    erase_scale: tuple[float, float] = (0.02, 0.33)
    erase_ratio: tuple[float, float] = (0.3, 3.3)


@dataclass
class AugmentParams:
    """Per-sample parameters of ``n`` augments (CPU tensors)."""

    jitter: torch.Tensor  # [n] bool
    order: torch.Tensor  # [n, 4] op indices (0 brightness, 1 contrast, 2 saturation, 3 hue)
    factors: torch.Tensor  # [n, 4] factor of each op (indexed by op, not by position)
    gray: torch.Tensor  # [n] bool
    erase: torch.Tensor  # [n] bool
    box: torch.Tensor  # [n, 4] (i, j, h, w) of the erased rectangle

    def __len__(self) -> int:
        return len(self.jitter)


class InvarianceAugment:
    """Draws and applies the augmented set ``{x2_i}`` of one image, vectorised and seeded.

    Images are float tensors in [0, 1]; ``erase_value`` is the colour written into erased boxes
    (the normalisation mean, i.e. 0 after ``Normalize``, as in the authors' code).
    """

    def __init__(
        self, config: AugmentConfig | None = None, erase_value: Sequence[float] = (0.0, 0.0, 0.0)
    ) -> None:
        self.config = config or AugmentConfig()
        self.erase_value = tuple(float(v) for v in erase_value)
        c = self.config
        self._jitter = v2.ColorJitter(*c.jitter)
        self._erasing = v2.RandomErasing(p=1.0, scale=c.erase_scale, ratio=c.erase_ratio, value=0.0)

    def sample(self, n: int, height: int, width: int, seed: int) -> AugmentParams:
        """Parameters of ``n`` augments, drawn by torchvision's ``make_params`` under ``seed``."""
        c = self.config
        probe = torch.zeros(3, height, width)
        jitter, order, factors, gray, erase, box = [], [], [], [], [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            for _ in range(n):
                jitter.append(bool(torch.rand(1) < c.p_jitter))
                p = self._jitter.make_params([probe])
                order.append(p["fn_idx"].clone())
                neutral = (1.0, 1.0, 1.0, 0.0)  # torchvision gives None for a disabled op
                keys = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
                factors.append(
                    [neutral[k] if p[key] is None else p[key] for k, key in enumerate(keys)]
                )
                gray.append(bool(torch.rand(1) < c.p_gray))
                erase.append(bool(torch.rand(1) < c.p_erase))
                e = self._erasing.make_params([probe])
                box.append([e["i"], e["j"], e["h"], e["w"]])
        return AugmentParams(
            jitter=torch.tensor(jitter),
            order=torch.stack(order).long(),
            factors=torch.tensor(factors, dtype=torch.float32),
            gray=torch.tensor(gray),
            erase=torch.tensor(erase),
            box=torch.tensor(box, dtype=torch.long),
        )

    def apply(self, image: torch.Tensor, params: AugmentParams, chunk: int = 128) -> torch.Tensor:
        """Apply ``params`` to ``image`` [3,H,W] in [0,1]; returns [n,3,H,W] on ``image.device``."""
        check_unit_image(image)
        return self.apply_batch(image.unsqueeze(0).expand(len(params), -1, -1, -1), params, chunk)

    def apply_batch(
        self, images: torch.Tensor, params: AugmentParams, chunk: int = 128
    ) -> torch.Tensor:
        """Apply sample ``k`` of ``params`` to ``images[k]`` ([n,3,H,W] in [0,1])."""
        n = len(params)
        if images.dim() != 4 or len(images) != n:
            raise ValueError(f"images must be [{n}, 3, H, W], got {tuple(images.shape)}")
        out = torch.empty(images.shape, dtype=images.dtype, device=images.device)
        for start in range(0, n, chunk):
            sl = slice(start, min(start + chunk, n))
            out[sl] = self._apply_chunk(images[sl], _slice_params(params, sl))
        return out

    def __call__(self, image: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` augments of ``image`` [3,H,W] in [0,1] (same seed, same augments)."""
        check_unit_image(image)
        return self.apply(image, self.sample(n, image.shape[-2], image.shape[-1], seed))

    def _apply_chunk(self, images: torch.Tensor, p: AugmentParams) -> torch.Tensor:
        dev = images.device
        x = images.clone()
        jit = p.jitter.to(dev)
        order = p.order.to(dev)
        factors = p.factors.to(dev)
        active = [
            strength not in (0, None, (1.0, 1.0), (0.0, 0.0)) for strength in self.config.jitter
        ]
        for pos in range(4):
            for op in range(4):
                if not active[op]:
                    continue
                sel = jit & (order[:, pos] == op)
                if not bool(sel.any()):
                    continue
                idx = sel.nonzero().squeeze(1)
                x[idx] = _color_op(x[idx], op, factors[idx, op])
        gray = p.gray.to(dev)
        if bool(gray.any()):
            idx = gray.nonzero().squeeze(1)
            x[idx] = TF.rgb_to_grayscale(x[idx], num_output_channels=3)
        erase = p.erase.to(dev)
        if bool(erase.any()):
            h, w = x.shape[-2:]
            box = p.box.to(dev)
            rows = torch.arange(h, device=dev)[None, :, None]
            cols = torch.arange(w, device=dev)[None, None, :]
            i, j, bh, bw = (box[:, k, None, None] for k in range(4))
            mask = (
                (rows >= i) & (rows < i + bh) & (cols >= j) & (cols < j + bw) & erase[:, None, None]
            )
            value = torch.tensor(self.erase_value, dtype=x.dtype, device=dev)[None, :, None, None]
            x = torch.where(mask[:, None], value, x)
        return x


def _slice_params(p: AugmentParams, sl: slice) -> AugmentParams:
    return AugmentParams(
        p.jitter[sl], p.order[sl], p.factors[sl], p.gray[sl], p.erase[sl], p.box[sl]
    )


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    # torchvision's _blend with one ratio per sample: ratio * x + (1 - ratio) * other, clamped
    r = ratio.view(-1, 1, 1, 1)
    return (x * r + other * (1.0 - r)).clamp_(0.0, 1.0)


def _color_op(x: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_brightness/contrast/saturation/hue with a per-sample factor."""
    if op == 0:
        return _blend(x, torch.zeros_like(x), factor)
    if op == 1:
        mean = TF.rgb_to_grayscale(x, num_output_channels=1).mean(dim=(-3, -2, -1), keepdim=True)
        return _blend(x, mean, factor)
    if op == 2:
        return _blend(x, TF.rgb_to_grayscale(x, num_output_channels=1), factor)
    try:
        from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv
    except ImportError:  # pragma: no cover - private API moved: fall back to per-sample calls
        return torch.stack([TF.adjust_hue(xi, float(f)) for xi, f in zip(x, factor)])
    hsv = _rgb_to_hsv(x)
    h, s, v = hsv.unbind(dim=-3)
    h = (h + factor.view(-1, 1, 1)).remainder(1.0)
    return _hsv_to_rgb(torch.stack((h, s, v), dim=-3))


def check_unit_image(image: torch.Tensor) -> None:
    """Reject anything but one [3,H,W] image in [0, 1] (before normalisation)."""
    check_images(
        image,
        name="image",
        ndim=3,
        channels=3,
        value_range=(0.0, 1.0),
        hint="pass it before normalisation",
    )
