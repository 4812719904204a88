"""Properties of the explanation segmentation test (Gur et al. 2021, Table 3)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from visxai.methods.registry import get_method
from visxai.metrics.segmentation import segment, segmentation_scores


def _mask():
    m = torch.zeros(2, 8, 8, dtype=torch.long)
    m[0, 2:6, 2:6] = 1
    m[1, :3, :] = 1
    return m


def test_perfect_signed_map_scores_100():
    m = _mask()
    maps = m.float() * 2 - 1  # positive on the object, negative elsewhere
    s = segmentation_scores(maps, m, signed=True)
    assert s.pixel_accuracy == pytest.approx(100.0)
    assert s.mean_ap == pytest.approx(100.0)
    inv = segmentation_scores(-maps, m, signed=True)
    assert inv.pixel_accuracy == pytest.approx(0.0)


def test_positive_part_vs_mean_threshold():
    m = _mask()
    maps = m.float() * 2 + 1  # all positive: signed rule calls everything object
    signed = segmentation_scores(maps, m, signed=True)
    unsigned = segmentation_scores(maps, m, signed=False)
    frac_fg = m.float().mean().item()
    assert signed.pixel_accuracy == pytest.approx(100 * frac_fg)
    assert unsigned.pixel_accuracy == pytest.approx(100.0)
    assert torch.equal(segment(maps, signed=False), m.bool())


def test_ap_matches_sklearn_and_authors_convention():
    torch.manual_seed(0)
    m = _mask()
    maps = torch.randn(2, 8, 8) + m.float()
    s = segmentation_scores(maps, m, signed=True, ap_scores="binary")
    fg = (maps[0] > 0).float().flatten().numpy()
    t = m[0].flatten().numpy()
    expected = average_precision_score(np.concatenate([1 - t, t]), np.concatenate([1 - fg, fg]))
    assert s.ap[0] == pytest.approx(expected)
    # continuous scores rank pixels within the foreground too: never below chance and different
    # from binary
    c = segmentation_scores(maps, m, signed=True, ap_scores="continuous")
    assert np.all((c.ap >= 0) & (c.ap <= 1))


def test_ignore_index_pixels_do_not_count():
    m = _mask()
    maps = m.float() * 2 - 1
    m2 = m.clone()
    m2[:, 0, 0] = 255
    maps[:, 0, 0] = -maps[:, 0, 0]  # wrong there, but ignored
    s = segmentation_scores(maps, m2, signed=True)
    assert s.pixel_accuracy == pytest.approx(100.0)
    assert (s.labeled == 63).all()


def test_method_sign_table_follows_the_paper():
    # the registry's ``signed`` field is what the callers hand to segmentation_scores
    for name in ["agf", "rap", "clrp", "sglrp", "gradient_shap", "lrp_ab", "gradient"]:
        assert get_method(name).signed
    # |IG| as in the authors' segmentation script (see the module docstring)
    for name in [
        "smoothgrad",
        "fullgrad",
        "gradcam",
        "lrp",
        "meaningful_perturbation",
        "integrated_gradients",
    ]:
        assert not get_method(name).signed
    with pytest.raises(ValueError, match="unknown method"):
        get_method("nonsense")


def test_shape_and_value_checks():
    with pytest.raises(ValueError):
        segmentation_scores(torch.zeros(1, 4, 4), torch.zeros(1, 5, 5), signed=True)
    with pytest.raises(ValueError, match="masks must hold"):
        segmentation_scores(torch.zeros(1, 4, 4), torch.full((1, 4, 4), 3), signed=True)


def test_image_accuracy_per_image_and_pooled():
    m = _mask()
    maps = m.float() * 2 - 1
    maps[1] = 1.0  # image 1: everything foreground, 24 of 64 pixels are object
    s = segmentation_scores(maps, m, signed=True)
    np.testing.assert_allclose(s.image_accuracy, [100.0, 100.0 * 24 / 64])
    # equal labelled counts: the pooled accuracy is the mean of the per-image ones
    assert s.pixel_accuracy == pytest.approx(s.image_accuracy.mean())
