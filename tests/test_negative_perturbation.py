"""Properties of the negative perturbation test (Gur et al. 2021, Table 2)."""

import numpy as np
import pytest
import torch
from torch import nn

from visxai.metrics.negative_perturbation import (
    DEFAULT_FRACTIONS,
    curve_auc,
    negative_perturbation,
    perturb,
    removal_masks,
)


class RegionModel(nn.Module):
    """Class 1 iff the mean of the top-left 4x4 block (as seen by the model) is above 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        s = x[:, :, :4, :4].mean(dim=(1, 2, 3)) - 0.5
        return torch.stack([-s, s], dim=1) + 0 * self.w


def test_removal_masks_counts_order_and_nesting():
    torch.manual_seed(0)
    a = torch.randn(3, 8, 8)
    m = removal_masks(a, DEFAULT_FRACTIONS)
    assert m.shape == (3, 9, 8, 8)
    for j, p in enumerate(DEFAULT_FRACTIONS):
        assert (m[:, j].flatten(1).sum(1) == int(p * 64)).all()
        # every removed pixel is less relevant than every kept one
        for b in range(3):
            rem, kept = a[b][m[b, j]], a[b][~m[b, j]]
            assert rem.max() <= kept.min()
    # nested: a pixel removed at step j stays removed afterwards
    assert (m[:, 1:] >= m[:, :-1]).all()
    pos = removal_masks(a, DEFAULT_FRACTIONS, most_relevant_first=True)
    b = 0
    assert a[b][pos[b, 0]].min() >= a[b][~pos[b, 0]].max()


def test_ties_are_deterministic():
    a = torch.zeros(2, 5, 5)
    assert torch.equal(removal_masks(a), removal_masks(a.clone()))


def test_perturb_sets_removed_pixels_black_in_all_channels():
    torch.manual_seed(1)
    x = torch.rand(2, 3, 6, 6) * 0.9 + 0.1
    a = torch.randn(2, 6, 6)
    out = perturb(x, a)
    m = removal_masks(a)
    assert out.shape == (2, 9, 3, 6, 6)
    removed = m[:, :, None].expand_as(out)
    assert (out[removed] == 0).all()
    assert torch.equal(out[~removed], x[:, None].expand_as(out)[~removed])


def test_normalisation_after_removal():
    model = RegionModel()
    x = torch.ones(1, 1, 8, 8)
    a = torch.arange(64.0).reshape(1, 8, 8)
    negative_perturbation(model, x, a, torch.tensor([1]), normalize=lambda t: (t - 0.5) / 0.5)
    seen = torch.cat(model.seen)
    # removed pixels appear as normalise(0) = -1, kept ones as normalise(1) = 1
    assert set(torch.unique(seen).tolist()) <= {-1.0, 1.0}
    assert (seen == -1).sum() == sum(int(p * 64) for p in DEFAULT_FRACTIONS)


def test_good_explanation_beats_bad_one():
    model = RegionModel()
    x = torch.full((4, 1, 8, 8), 0.8)
    labels = torch.ones(4, dtype=torch.long)
    good = torch.zeros(4, 8, 8)
    good[:, :4, :4] = 1.0  # the region the model needs is the most relevant -> removed last
    bad = -good
    cg = negative_perturbation(model, x, good, labels)
    cb = negative_perturbation(model, x, bad, labels)
    assert cg.correct[:, 0].all() and cb.correct[:, 0].all()
    assert cg.auc > cb.auc
    # good: 16 of 64 pixels carry the class; removing <= 75% keeps them
    assert cg.accuracy[1:8].min() == 100.0 and cg.accuracy[-1] < 100.0
    assert cb.accuracy[1] == 0.0


def test_auc_values():
    fr = np.concatenate([[0.0], DEFAULT_FRACTIONS])
    assert curve_auc(fr, np.full(10, 100.0)) == pytest.approx(90.0)
    assert curve_auc(fr, np.zeros(10)) == 0.0
    assert curve_auc([0, 1], [0, 100]) == pytest.approx(50.0)


def test_batch_size_does_not_change_results():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )
    x = torch.rand(7, 3, 10, 10)
    a = torch.randn(7, 10, 10)
    y = torch.randint(0, 5, (7,))
    c1 = negative_perturbation(model, x, a, y, batch_size=1)
    c7 = negative_perturbation(model, x, a, y, batch_size=7)
    assert np.array_equal(c1.predictions, c7.predictions)
    assert c1.correct.shape == (7, 10)


def test_bad_input_is_rejected():
    model = RegionModel()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="attributions"):
        negative_perturbation(model, x, torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        negative_perturbation(
            model, x * 3 - 1, torch.zeros(2, 8, 8), torch.zeros(2, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="labels"):
        negative_perturbation(model, x, torch.zeros(2, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="fractions"):
        removal_masks(torch.zeros(1, 4, 4), [0.5, 0.2])


def test_predicted_and_target_shortcut_equals_two_full_runs():
    from visxai.evaluation import negative_perturbation_both, negative_perturbation_eval

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3)
    ).eval()
    x = torch.rand(12, 1, 6, 6)
    y = torch.randint(0, 3, (12,))

    def grad_x_input(m, xb, t):
        xb = xb.clone().requires_grad_(True)
        m(xb).gather(1, t[:, None]).sum().backward()
        return (xb.grad * xb).sum(1).detach()

    cp, ct = negative_perturbation_both(model, x, y, grad_x_input, batch_size=5)
    fp, _ = negative_perturbation_eval(model, x, y, grad_x_input, "predicted", batch_size=5)
    ft, _ = negative_perturbation_eval(model, x, y, grad_x_input, "target", batch_size=5)
    assert np.array_equal(cp.correct, fp.correct) and np.array_equal(ct.correct, ft.correct)
    assert np.array_equal(ct.predictions, ft.predictions)


def test_image_auc_is_the_per_image_area_and_averages_to_the_auc():
    from visxai.metrics.negative_perturbation import PerturbationCurve

    fr = np.concatenate([[0.0], DEFAULT_FRACTIONS])
    correct = np.zeros((3, 10), dtype=bool)
    correct[0] = True  # always right: 100% over [0, 0.9] -> 90
    correct[1, :4] = (
        True  # right up to 30% removed, wrong from 40%: 100*0.3 + the 0.3-0.4 half step = 35
    )
    correct[2, 5:] = True  # wrong until 40%, right from 50%: half step 0.4-0.5 (5) + 100*0.4 = 45
    c = PerturbationCurve(fr, correct, np.zeros((3, 10), dtype=np.int64))
    np.testing.assert_allclose(c.image_auc, [90.0, 35.0, 45.0])
    assert c.image_auc.mean() == pytest.approx(c.auc)
    rng = np.random.default_rng(0)
    r = PerturbationCurve(fr, rng.random((50, 10)) > 0.4, np.zeros((50, 10), dtype=np.int64))
    assert r.image_auc.mean() == pytest.approx(r.auc)
    np.testing.assert_allclose(r.subset(slice(0, 7)).image_auc, r.image_auc[:7])


def test_auc_of_a_known_map_equals_the_hand_computation():
    """RegionModel says class 1 while fewer than 6 of its 16 block pixels (top-left 4x4 of 8x8,
    value 0.8) are removed. Map = raster index: step p removes the first int(64 p) pixels row by
    row: 6 at 10 % (4 block pixels: right), 12 at 20 % (8: wrong) -> AUC = 100 * 0.1 + 50 * 0.1
    = 15. Map = -raster index: 38 at 60 % (indices >= 26: 2 block pixels), 44 at 70 % (>= 20: 4),
    51 at 80 % (>= 13: 8, wrong) -> AUC = 100 * 0.7 + 50 * 0.1 = 75. A constant map ties
    everywhere and ties go by pixel index: 15."""
    model = RegionModel()
    x = torch.full((3, 1, 8, 8), 0.8)
    raster = torch.arange(64.0).view(8, 8)
    maps = torch.stack([raster, -raster, torch.zeros(8, 8)])
    c = negative_perturbation(model, x, maps, torch.ones(3, dtype=torch.long))
    expected = np.zeros((3, 10), dtype=bool)
    expected[0, :2] = expected[2, :2] = True  # fractions 0 and 0.1
    expected[1, :8] = True  # fractions 0 ... 0.7
    np.testing.assert_array_equal(c.correct, expected)
    np.testing.assert_allclose(c.image_auc, [15.0, 75.0, 15.0])
    assert c.auc == pytest.approx((15 + 75 + 15) / 3)
    np.testing.assert_allclose(c.accuracy, 100 * expected.mean(0))


def test_removed_background_share_by_hand():
    """4x4 image, columns 0-1 exactly 0 (background), fractions 25 % / 50 % (4 / 8 pixels).
    Raster map: rows 0 / rows 0-1 removed, half of them background -> 0.5. A map that is 0 on
    the background (as Captum's IG is) removes background only -> 1.0. A pixel that is 0 in one
    channel only is not background."""
    from visxai.metrics.negative_perturbation import removed_background_share

    img = torch.full((1, 4, 4), 0.7)
    img[:, :, :2] = 0.0
    x = torch.stack([img, img])
    raster = torch.arange(16.0).view(4, 4)
    maps = torch.stack([raster, img[0] + raster / 100])
    share = removed_background_share(x, maps, (0.25, 0.5))
    np.testing.assert_allclose(share, [0.5, 1.0])
    rgb = torch.cat([img, img, torch.full((1, 4, 4), 0.3)])[None]  # blue channel never 0
    assert removed_background_share(rgb, maps[1:], (0.25, 0.5))[0] == 0.0
    with pytest.raises(ValueError, match="do not match images"):
        removed_background_share(x, maps[:1], (0.25, 0.5))
