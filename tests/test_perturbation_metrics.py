"""Insertion / Deletion (RISE) and Average Drop / Increase in Confidence (Grad-CAM++): known
values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visxai.metrics.confidence import (
    average_drop,
    average_drop_increase,
    increase_in_confidence,
    masked_image,
)
from visxai.metrics.perturbation import (
    ClassScore,
    SimilarityScore,
    auc,
    default_step,
    deletion,
    insertion,
    perturbation_curve,
    salient_ranks,
)

H = W = 8
REGION = torch.zeros(H, W, dtype=torch.bool)
REGION[2:4, 1:5] = True  # 8 of 64 pixels


def region_score(images: torch.Tensor) -> torch.Tensor:
    """Fraction of the region's pixels that equal 1 (the image is all ones, substrates are 0)."""
    return (images[:, 0][:, REGION] == 1).float().mean(dim=1)


def test_auc_on_hand_made_curves() -> None:
    assert auc([1.0, 1.0]) == pytest.approx(1.0)
    assert auc([0.0, 1.0]) == pytest.approx(0.5)
    assert auc([1.0, 0.0, 0.0, 0.0, 0.0]) == pytest.approx(0.125)  # (1/2) / 4
    x = np.linspace(0, 1, 101)
    assert auc(x**2) == pytest.approx(1 / 3, abs=1e-4)
    with pytest.raises(ValueError):
        auc([1.0])


def test_default_step_follows_rise() -> None:
    assert default_step(224, 224) == 224
    assert default_step(8, 8) == 1


def test_ranks_and_ties_are_deterministic() -> None:
    s = torch.tensor([[0.1, 0.9], [0.9, 0.0]])
    assert salient_ranks(s).tolist() == [2, 0, 1, 3]


def _image() -> torch.Tensor:
    return torch.ones(1, H, W)


def test_exactly_right_and_wrong_saliency() -> None:
    img = _image()
    right = REGION.float()
    wrong = 1.0 - right
    step = 1  # 64 steps, region = first 8 pixels for "right", last 8 for "wrong"
    zeros = torch.zeros_like(img)
    # deletion with a perfect map: the score is 1 at k=0 then falls linearly to 0 at k=8
    d_right = deletion(region_score, img, right, step=step, substrate=zeros)
    expected = np.clip(1 - np.arange(65) / 8, 0, 1)
    np.testing.assert_allclose(d_right.curve, expected)
    assert d_right.auc == pytest.approx(auc(expected))
    assert d_right.auc == pytest.approx((8 / 2) / 64)  # a triangle 8 steps wide: 4 / 64
    d_wrong = deletion(region_score, img, wrong, step=step, substrate=zeros)
    assert d_wrong.auc == pytest.approx(1 - (8 / 2) / 64)
    # insertion with a perfect map rises first; substrate zeros instead of blur for a closed form
    i_right = insertion(region_score, img, right, step=step, substrate=zeros)
    i_wrong = insertion(region_score, img, wrong, step=step, substrate=zeros)
    assert i_right.auc == pytest.approx(1 - (8 / 2) / 64)
    assert i_wrong.auc == pytest.approx((8 / 2) / 64)


def test_curve_length_and_default_substrates() -> None:
    img = torch.rand(3, 10, 10)
    sal = torch.rand(10, 10)
    curve = perturbation_curve(
        lambda x: x.mean(dim=(1, 2, 3)), img, torch.zeros_like(img), sal, step=7
    )
    assert len(curve) == 15 + 1  # ceil(100 / 7) + 1
    assert curve[0] == pytest.approx(float(img.mean()), rel=1e-6)
    assert curve[-1] == pytest.approx(0.0)
    # insertion ends at the full image; deletion ends at zeros
    ins = insertion(lambda x: x.mean(dim=(1, 2, 3)), img, sal, step=10)
    assert ins.curve[-1] == pytest.approx(float(img.mean()), rel=1e-6)


def test_low_resolution_saliency_is_upsampled() -> None:
    img = _image()
    coarse = torch.zeros(4, 4)
    coarse[1, 0:3] = 1.0  # covers rows 2-3, cols 0-5 of the 8x8 image
    res = deletion(region_score, img, coarse, step=1, substrate=torch.zeros_like(img))
    assert res.auc < 0.2


def test_average_drop_and_increase_known_values() -> None:
    assert average_drop([1.0, 0.5], [0.5, 0.5]) == pytest.approx(0.25)
    assert average_drop([1.0, 0.5], [2.0, 0.6]) == pytest.approx(0.0)
    assert increase_in_confidence([1.0, 0.5, 0.2], [2.0, 0.4, 0.3]) == pytest.approx(2 / 3)
    assert np.isnan(average_drop([-1.0], [0.5]))


def test_average_drop_with_right_and_wrong_maps() -> None:
    img = _image()
    right = REGION.float()
    res = average_drop_increase(region_score, [img], [right])
    assert res.average_drop == pytest.approx(0.0)  # the masked image keeps the region intact
    assert res.increase_in_confidence == 0.0
    res = average_drop_increase(region_score, [img], [1.0 - right])
    assert res.average_drop == pytest.approx(1.0)
    m = masked_image(torch.full((3, 4, 4), 2.0), torch.arange(16.0).view(4, 4))
    assert float(m.min()) == 0.0 and float(m.max()) == pytest.approx(2.0)


def test_score_functions() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    x = torch.rand(4, 3, 2, 2)
    p = ClassScore(lin, 2)(x)
    assert p.shape == (4,) and bool(((p > 0) & (p < 1)).all())
    refs = torch.rand(10, 3, 2, 2)
    sim = SimilarityScore(lin, refs)(refs[:1])
    feats = torch.nn.functional.normalize(lin(refs).detach(), dim=-1)
    assert float(sim[0]) == pytest.approx(float((feats[0] @ feats.T).mean()), rel=1e-5)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        deletion(region_score, torch.ones(1, 8, 8), torch.ones(2, 3, 3))
    with pytest.raises(ValueError):
        deletion(region_score, torch.ones(1, 8, 8), torch.full((8, 8), float("nan")))


def test_per_image_drop_and_increase_hand_example() -> None:
    from visxai.metrics.confidence import drop_per_image, increase_per_image

    full = [0.8, 0.5, 0.4, 0.0, -0.2]
    masked = [0.2, 0.6, 0.4, 0.3, 0.1]
    drop = drop_per_image(full, masked)
    # (0.8-0.2)/0.8 = 0.75; an increase is no drop; equal scores: 0; Y <= 0: undefined (NaN)
    np.testing.assert_allclose(drop[:3], [0.75, 0.0, 0.0])
    assert np.isnan(drop[3]) and np.isnan(drop[4])
    np.testing.assert_array_equal(
        increase_per_image(full, masked), [0.0, 1.0, 0.0, 1.0, 1.0]
    )  # strict O > Y
    # the per-image values average to the Grad-CAM++ aggregates (undefined drops left out)
    assert average_drop(full, masked) == pytest.approx(0.75 / 3)
    assert increase_in_confidence(full, masked) == pytest.approx(3 / 5)
    with pytest.raises(ValueError):
        drop_per_image([1.0, 2.0], [1.0])


def test_similarity_score_per_reference_pairs() -> None:
    from visxai.metrics.confidence import drop_per_image, increase_per_image

    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    refs, x = torch.rand(4, 3, 2, 2), torch.rand(2, 3, 2, 2)
    score = SimilarityScore(lin, refs)
    pairs = score.per_reference(x)
    assert pairs.shape == (2, 4)
    torch.testing.assert_close(pairs.mean(dim=1), score(x))
    f = torch.nn.functional.normalize(lin(x).detach(), dim=-1)
    g = torch.nn.functional.normalize(lin(refs).detach(), dim=-1)
    torch.testing.assert_close(pairs, f @ g.T)
    # per pair: Y_t = pairs[0], O_t = pairs[1]; the image's drop / increase average the pairs
    y, o = pairs[0].numpy(), pairs[1].numpy()
    assert increase_per_image(y, o).mean() == pytest.approx(float(np.mean(o > y)))
    d = drop_per_image(y, o)
    ok = y > 0
    np.testing.assert_allclose(d[ok], np.maximum(0, y[ok] - o[ok]) / y[ok])
