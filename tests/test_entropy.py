"""Properties of visxai.metrics.entropy (TIO paper Eqs. 1-4)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from visxai.metrics.entropy import (
    average_gray_change,
    bt601_gray,
    disc_mask,
    entropy_2d,
    entropy_analysis,
    entropy_map,
    high_frequency_energy,
    invert_colors,
    neighbourhood_mean,
    quantize_entropy,
    second_order_entropy,
)


def _reference_pairs(g: np.ndarray) -> list[tuple[int, int]]:
    """Independent loop implementation of the (i, j) pairs: j = floor(mean of the 3x3, edges
    replicated)."""
    h, w = g.shape
    out = []
    for y in range(h):
        for x in range(w):
            s = 0
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    s += int(g[min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)])
            out.append((int(g[y, x]), s // 9))
    return out


def _shannon(items: list) -> float:
    n = len(items)
    return -sum(c / n * math.log2(c / n) for c in Counter(items).values())


def test_bt601_known_values_and_white() -> None:
    rgb = torch.tensor([[100.0, 255.0, 0.0], [50.0, 255.0, 0.0], [200.0, 255.0, 0.0]]).view(3, 1, 3)
    # (30*100 + 59*50 + 11*200) // 100 = 81 ; white stays 255 ; black 0
    assert bt601_gray(rgb).flatten().tolist() == [81, 255, 0]
    # float input is rounded to 8 bit first: 99.6 -> 100
    assert bt601_gray(torch.full((3, 1, 1), 99.6)).item() == 100


def test_constant_image_has_zero_entropy() -> None:
    g = torch.full((12, 10), 137)
    assert entropy_2d(g) == 0.0
    assert torch.all(entropy_map(g, 5) == 0)
    assert torch.all(second_order_entropy(g, 5) == 0)


def test_hand_computed_2d_entropy() -> None:
    # columns 0,0,90,90: 3x3 means (edges replicated) are 0, 30, 60, 90 -> four equiprobable pairs
    g = torch.zeros(4, 4, dtype=torch.long)
    g[:, 2:] = 90
    assert neighbourhood_mean(g)[0].tolist() == [0, 30, 60, 90]
    assert entropy_2d(g) == pytest.approx(2.0, abs=1e-12)


def test_entropy_2d_matches_loop_reference() -> None:
    rng = np.random.default_rng(0)
    g = rng.integers(0, 6, size=(9, 11))
    assert entropy_2d(g) == pytest.approx(_shannon(_reference_pairs(g)), abs=1e-10)


def test_entropy_map_matches_loop_reference_and_bounds() -> None:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 4, size=(7, 8))
    pairs = np.array(_reference_pairs(g), dtype=object).reshape(7, 8, 2)
    emap = entropy_map(g, window=3)
    for y in range(7):
        for x in range(8):
            win = [
                tuple(pairs[min(max(y + dy, 0), 6), min(max(x + dx, 0), 7)])
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ]
            assert emap[y, x].item() == pytest.approx(_shannon(win), abs=1e-10)
    assert float(emap.max()) <= math.log2(9) + 1e-12 and float(emap.min()) >= 0.0


def test_quantize_and_second_order() -> None:
    emap = torch.tensor([[0.0, math.log2(81)], [math.log2(81) / 2, 1.0]], dtype=torch.float64)
    q = quantize_entropy(emap, window=9)
    assert q[0, 0] == 0 and q[0, 1] == 255 and q[1, 0] == 127
    # a noisy image has a non-trivial second-order entropy, bounded by log2(window^2)
    g = torch.from_numpy(np.random.default_rng(2).integers(0, 256, size=(24, 24)))
    s = second_order_entropy(g, window=5)
    assert s.shape == (24, 24) and float(s.max()) <= math.log2(25) + 1e-12 and float(s.sum()) > 0


def test_average_gray_change_and_inversion() -> None:
    start = torch.full((2, 3, 8, 8), 60.0)
    res = start.clone()
    res[1] += 20.0
    ch = average_gray_change(res, start)
    assert ch.tolist() == [0.0, 20.0]
    m = disc_mask(8)
    assert m[4, 4] and not m[0, 0]
    assert average_gray_change(res, start, m).tolist() == [0.0, 20.0]
    x = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(0)) * 255
    # 255 - (255 - x) is exact up to float32 rounding at the scale of 255 (~1.5e-5)
    assert torch.allclose(invert_colors(invert_colors(x)), x, rtol=0, atol=1e-4)
    assert torch.equal(invert_colors(torch.zeros(3, 1, 1)), torch.full((3, 1, 1), 255.0))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, H, W\]"):
        bt601_gray(torch.zeros(4, 5, 5))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        bt601_gray(torch.full((3, 2, 2), 300.0))
    with pytest.raises(ValueError, match="integers"):
        entropy_2d(torch.full((3, 3), 1.5))
    with pytest.raises(ValueError, match="odd"):
        entropy_map(torch.zeros(5, 5, dtype=torch.long), window=4)
    with pytest.raises(ValueError, match="one gray image"):
        entropy_2d(torch.zeros(2, 5, 5, dtype=torch.long))


def test_entropy_analysis_and_high_frequency() -> None:
    flat = torch.full((1, 3, 20, 20), 80.0)
    noisy = (
        flat
        + torch.from_numpy(np.random.default_rng(3).integers(-40, 40, size=(1, 3, 20, 20))).float()
    )
    out = entropy_analysis(torch.cat([flat, noisy]), window=5)
    assert out["gray"].shape == (2, 20, 20) and out["second_order"].shape == (2, 20, 20)
    assert out["entropy_2d"][0] == 0 and out["entropy_2d"][1] > 0
    assert out["second_order_sum"][0] == 0
    hf = high_frequency_energy(torch.cat([flat, noisy]))
    assert hf[0] == 0 and hf[1] > 10
