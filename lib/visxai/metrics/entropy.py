"""Gray conversion, 2D entropy, entropy maps and second-order entropy (notebook 03 / TIO, Li et
al., Sec. 2.2).

* :func:`bt601_gray` -- Eq. (3): ``V_gray = int(0.3 R + 0.59 G + 0.11 B)``. Pixel values are first
  rounded to integers 0..255 (as saving the optimised image as 8-bit would) and Eq. (3) is then
  evaluated exactly in integers, ``(30 R + 59 G + 11 B) // 100``, so that white stays 255 (the
  float sum gives 254.999...).
* :func:`entropy_2d` -- Eqs. (1)-(2), Abutaleb's two-dimensional entropy
  ``H = -sum_ij p_ij log2 p_ij``, ``p_ij = f(i, j) / N^2``. The pixel pair (i, j) -- which the
  paper leaves implicit -- is Abutaleb's: ``i`` = the pixel's gray value and ``j`` = the integer
  mean (floor) of its 3 x 3 neighbourhood (the pixel included; image borders replicated). A
  constant image has H = 0; the maximum is ``log2(N^2)``.
* :func:`entropy_map` -- the "2D-entropy hot map" of Fig. 3(c): at every pixel, the 2D entropy
  of the (i, j) pairs in the ``window x window`` square centred on it (borders replicated;
  default 9 x 9, a choice: the paper gives no window).
* :func:`second_order_entropy` -- Fig. 3(d): the entropy map of the entropy map. The first map
  (bits in [0, log2(window^2)]) is quantised to 0..255 with the *fixed* scale
  ``255 / log2(window^2)`` (not a per-image min-max stretch, so maps of different images stay
  comparable), then :func:`entropy_map` is applied again. Fig. 4 plots its sum over pixels.
* :func:`average_gray_change` -- Fig. 2: mean over pixels of ``|gray(result) - gray(start)|``
  (absolute change per pixel; optionally inside a mask such as the inscribed disc).
* :func:`entropy_analysis` -- rows (b)-(d) of Fig. 3 and the Fig. 4 sums for a batch of images.
* :func:`high_frequency_energy` -- not in the paper: mean |discrete Laplacian| of the gray image
  inside the (0.9 x) inscribed disc, a number for Fig. 1's "high-frequency patterns" claim.
* :func:`invert_colors` -- Eq. (4): ``P_new = (255, 255, 255) - P``.

Written by hand: scikit-image's ``filters.rank.entropy`` computes the local *1D* (histogram)
entropy only; the local 2D entropy is implemented here with a sort-and-count over unfolded
windows (vectorised in torch, no Python loop over pixels).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "bt601_gray",
    "neighbourhood_mean",
    "entropy_2d",
    "entropy_map",
    "quantize_entropy",
    "second_order_entropy",
    "average_gray_change",
    "invert_colors",
    "disc_mask",
    "entropy_analysis",
    "high_frequency_energy",
]


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x


def _check_range(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise ValueError(
            f"{name} must hold pixel values in [0, 255], got range [{lo:.3g}, {hi:.3g}]"
        )


def bt601_gray(rgb: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Eq. (3): RGB ``[..., 3, H, W]`` in [0, 255] -> integer gray ``[..., H, W]`` (int64,
    0..255)."""
    x = _as_tensor(rgb)
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(
            f"bt601_gray expects [..., 3, H, W] RGB in [0, 255], got shape {tuple(x.shape)}"
        )
    _check_range(x, "rgb")
    v = torch.round(x.double()).long() if x.is_floating_point() else x.long()
    r, g, b = v[..., 0, :, :], v[..., 1, :, :], v[..., 2, :, :]
    return (30 * r + 59 * g + 11 * b) // 100


def _check_gray(gray: torch.Tensor | np.ndarray) -> torch.Tensor:
    g = _as_tensor(gray)
    if g.dim() != 2:
        raise ValueError(f"expected one gray image [H, W], got shape {tuple(g.shape)}")
    _check_range(g, "gray")
    if g.is_floating_point() and not torch.equal(g, torch.round(g)):
        raise ValueError(
            "gray values must be integers 0..255 (use bt601_gray or quantize_entropy first)"
        )
    return g.long()


def neighbourhood_mean(gray: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``j`` of the pair (i, j): floor of the mean of the 3 x 3 neighbourhood, borders
    replicated."""
    g = _check_gray(gray)
    p = F.pad(g[None, None].double(), (1, 1, 1, 1), mode="replicate")
    s = F.avg_pool2d(p, 3, stride=1, divisor_override=1)[0, 0]
    return torch.div(torch.round(s).long(), 9, rounding_mode="floor")


def _pair_codes(gray: torch.Tensor | np.ndarray) -> torch.Tensor:
    g = _check_gray(gray)
    return g * 256 + neighbourhood_mean(g)


def _entropy_of_rows(codes: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (bits) of the values in every row of ``codes`` [R, n].

    Sort each row, find the runs of equal values (their lengths are the counts c), and use
    ``H = log2(n) - (1/n) sum_runs c log2 c``.
    """
    rows, n = codes.shape
    s, _ = torch.sort(codes, dim=1)
    new = torch.ones_like(s, dtype=torch.bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    starts = new.flatten().nonzero().flatten()  # runs never cross rows: every row starts a run
    lengths = torch.diff(starts, append=torch.tensor([rows * n])).double()
    clogc = torch.zeros(rows, dtype=torch.float64).index_add_(
        0, starts // n, lengths * torch.log2(lengths)
    )
    return (math.log2(n) - clogc / n).clamp_min(0.0) + 0.0


def entropy_2d(gray: torch.Tensor | np.ndarray) -> float:
    """Eqs. (1)-(2): the 2D entropy (bits) of a whole gray image [H, W] with integer values
    0..255."""
    codes = _pair_codes(gray).flatten()[None]
    return float(_entropy_of_rows(codes)[0])


def entropy_map(gray: torch.Tensor | np.ndarray, window: int = 9) -> torch.Tensor:
    """Local 2D entropy (bits) at every pixel over a ``window x window`` square (Fig. 3(c));
    float64 [H, W]."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    codes = _pair_codes(gray)
    h, w = codes.shape
    r = window // 2
    padded = F.pad(codes[None, None].double(), (r, r, r, r), mode="replicate")
    cols = F.unfold(padded, window)[0].T.long()  # [H*W, window^2]
    return _entropy_of_rows(cols).view(h, w)


def quantize_entropy(emap: torch.Tensor, window: int = 9) -> torch.Tensor:
    """Entropy map (bits) -> integer levels 0..255 with the fixed scale ``255 / log2(window^2)``."""
    hmax = math.log2(window * window)
    return torch.clamp(torch.floor(emap / hmax * 255.0 + 1e-9), 0, 255).long()


def second_order_entropy(gray: torch.Tensor | np.ndarray, window: int = 9) -> torch.Tensor:
    """Fig. 3(d): the 2D-entropy map of the (quantised) 2D-entropy map of ``gray``; float64
    [H, W]."""
    return entropy_map(quantize_entropy(entropy_map(gray, window), window), window)


def disc_mask(size: int | tuple[int, int], radius: float = 1.0) -> torch.Tensor:
    """Boolean [H, W] mask of the disc inscribed in the image (what rotations never fill with 0),
    scaled by ``radius`` (a fraction of the inscribed radius)."""
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = torch.meshgrid(
        torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij"
    )
    return (yy / (h / 2)) ** 2 + (xx / (w / 2)) ** 2 <= radius**2


def average_gray_change(
    result: torch.Tensor, start: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Fig. 2: mean ``|gray(result) - gray(start)|`` per image (Eq. 3 gray), optionally inside
    ``mask``.

    ``result`` and ``start`` are RGB ``[B, 3, H, W]`` (or ``[3, H, W]``) in [0, 255]; returns [B].
    """
    if result.shape != start.shape:
        raise ValueError(
            f"result and start shapes differ: {tuple(result.shape)} vs {tuple(start.shape)}"
        )
    d = (bt601_gray(result) - bt601_gray(start)).abs().double()
    if d.dim() == 2:
        d = d[None]
    if mask is None:
        return d.mean(dim=(-2, -1))
    m = mask.to(torch.bool)
    if m.shape != d.shape[-2:]:
        raise ValueError(f"mask shape {tuple(m.shape)} does not match images {tuple(d.shape[-2:])}")
    return d[:, m].mean(dim=1)


def invert_colors(rgb: torch.Tensor) -> torch.Tensor:
    """Eq. (4): ``(255, 255, 255) - P`` for every pixel (pixel space [0, 255])."""
    _check_range(rgb, "rgb")
    return 255 - rgb


def entropy_analysis(rgb: torch.Tensor, window: int = 9) -> dict[str, torch.Tensor]:
    """Fig. 3 rows (b)-(d) and Fig. 4 for RGB images ``[B, 3, H, W]`` in [0, 255].

    Returns ``gray`` [B, H, W] (Eq. 3), ``entropy_map`` and ``second_order`` [B, H, W] (bits),
    ``entropy_2d`` [B] (Eqs. 1-2, whole image), ``entropy_map_mean`` [B] and
    ``second_order_sum`` [B] (Fig. 4's "second-order total entropy summation").
    """
    if rgb.dim() != 4:
        raise ValueError(f"entropy_analysis expects [B, 3, H, W], got shape {tuple(rgb.shape)}")
    gray = bt601_gray(rgb)
    maps = [entropy_map(g, window) for g in gray]
    second = [entropy_map(quantize_entropy(m, window), window) for m in maps]
    emap, smap = torch.stack(maps), torch.stack(second)
    return {
        "gray": gray,
        "entropy_map": emap,
        "second_order": smap,
        "entropy_2d": torch.tensor([entropy_2d(g) for g in gray], dtype=torch.float64),
        "entropy_map_mean": emap.mean(dim=(1, 2)),
        "second_order_sum": smap.sum(dim=(1, 2)),
    }


def high_frequency_energy(rgb: torch.Tensor) -> torch.Tensor:
    """Mean |4-neighbour Laplacian| of the Eq. 3 gray image inside 0.9 x the inscribed disc (away
    from the edge between content and the rotated-in black corners), per image [B]."""
    g = bt601_gray(rgb).double()
    if g.dim() == 2:
        g = g[None]
    lap = (
        4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    ).abs()
    m = disc_mask(g.shape[-2:], radius=0.9)[1:-1, 1:-1]
    return lap[:, m].mean(dim=1)
