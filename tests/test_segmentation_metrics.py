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


def test_authors_21_way_evaluation_equals_a_hand_example():
    """Table 3b as the authors evaluate it, K = 2 classes on a 1 x 3 image. Class 0 is
    predicted (logit 2), class 1 is not (logit -1). Class 0's map [2, 1, -2] / max -> [1, .5, -1]
    in channel 1; channel 2 (absent) 0, channel 0 (background) 0. Clamp at 0, -0.1 on channel 2,
    softmax per pixel: pixel 0 = softmax(0, 1, -0.1), pixel 1 = softmax(0, .5, -0.1); pixel 2 is
    unlabelled (255). Ground truth: pixel 0 = class 0 (channel 1), pixel 1 = background.
    Six scores, descending: .588 (pos), .464, .281 (pos), .255, .216, .196 -> AP = (1/1 + 2/3)/2
    = 5/6; argmax = channel 1 at both pixels -> 1 of 2 labelled pixels correct."""
    import math

    from visxai.metrics.segmentation import authors_multilabel_vis, softmax_map_scores

    class_maps = torch.tensor([[[[2.0, 1.0, -2.0]], [[5.0, 5.0, 5.0]]]])  # [1, 2, 1, 3]
    vis, present = authors_multilabel_vis(class_maps, torch.tensor([[2.0, -1.0]]), signed=True)
    assert present.tolist() == [[True, False]]
    torch.testing.assert_close(vis[0, :, 0], torch.tensor([[0, 0, 0], [1, 0.5, -1], [0, 0, 0.0]]))
    masks = torch.tensor([[[1, 0, 255]]])
    sc = softmax_map_scores(vis, present, masks)

    def softmax(*z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    p0, p1 = softmax(0, 1, -0.1), softmax(0, 0.5, -0.1)
    assert p0[1] > p1[1] > p1[0] > p1[2] > p0[0] > p0[2]  # the order used above
    np.testing.assert_allclose(sc.ap, [5 / 6])
    assert sc.correct.tolist() == [1] and sc.labeled.tolist() == [2]
    assert sc.pixel_accuracy == pytest.approx(50.0)
    # unsigned maps lose their mean first: [2, 1, -2] - 1/3, / max
    vis_u, _ = authors_multilabel_vis(class_maps, torch.tensor([[2.0, -1.0]]), signed=False)
    hand = (torch.tensor([2.0, 1.0, -2.0]) - 1 / 3) / (2 - 1 / 3)
    torch.testing.assert_close(vis_u[0, 1, 0], hand)
    with pytest.raises(ValueError, match="masks must hold 0..2"):
        softmax_map_scores(vis, present, torch.tensor([[[3, 0, 0]]]))
    with pytest.raises(ValueError, match=r"class_maps must be \[B, K, H, W\]"):
        authors_multilabel_vis(class_maps[0], torch.tensor([[2.0, -1.0]]), signed=True)


def test_multilabel_scores_assemble_the_pair_maps_per_image_in_any_chunking():
    """The pair maps (one per predicted label, image-major) placed in their class channels give
    the same per-image scores as the dense [B, K, H, W] maps, whatever the chunk size."""
    from visxai.metrics.segmentation import multilabel_scores, multilabel_vis, softmax_map_scores

    g = torch.Generator().manual_seed(0)
    b, k, h, w = 5, 4, 6, 6
    present = torch.rand(b, k, generator=g) > 0.5
    present[2] = False  # an image with no predicted label: all channels 0, scored as it is
    dense = torch.randn(b, k, h, w, generator=g)
    masks = torch.randint(0, k + 1, (b, h, w), generator=g)
    masks[0, 0, :3] = 255
    idx, cls = torch.nonzero(present, as_tuple=True)
    for signed in (True, False):
        ref = softmax_map_scores(multilabel_vis(dense, present, signed), present, masks)
        for chunk in (1, 2, 64):
            sc = multilabel_scores(dense[idx, cls], present, masks, signed, chunk=chunk)
            np.testing.assert_array_equal(sc.correct, ref.correct)
            np.testing.assert_array_equal(sc.labeled, ref.labeled)
            np.testing.assert_allclose(sc.ap, ref.ap)
    assert sc.labeled[0] == h * w - 3
    with pytest.raises(ValueError, match="one map per predicted class"):
        multilabel_scores(dense[idx, cls][1:], present, masks, True)


def test_oracle_maps_of_the_true_labels_segment_every_pixel_correctly():
    """A map equal to each present class's mask, for exactly the present classes: the object
    channel wins on its pixels (1 > 0), background ties with the present channels at 0 and the
    argmax takes channel 0 (absent channels sit at -0.1): pixel accuracy 100 %."""
    from visxai.data.synthetic import make_synthetic
    from visxai.evaluation import multilabel_segmentation_eval

    data = make_synthetic(6, seed=0, split="test")
    present = data.labels > 0.5
    lab = data.label_mask

    def oracle(model, x, target):
        i = torch.as_tensor(
            [int(torch.nonzero((data.images == xi).flatten(1).all(1))[0]) for xi in x]
        )
        return (lab[i] == (target + 1)[:, None, None]).float()

    sc, maps = multilabel_segmentation_eval(
        torch.nn.Linear(1, 1), data.images, present, lab, oracle, signed=True
    )
    assert maps.shape == (int(present.sum()), *lab.shape[1:])
    assert sc.pixel_accuracy == pytest.approx(100.0)
    # the continuous AP is not 1: at background pixels the present channels tie with channel 0
    assert ((sc.ap > 0) & (sc.ap < 1)).all()


def test_blank_comparison_pairs_a_method_with_all_background_maps():
    """Against blank maps (every pixel background) on the same images: a map equal to the mask
    wins on both metrics with the CI deciding; the blank map itself ties (difference exactly 0,
    inconclusive); a map that calls every pixel object loses pixel accuracy wherever background
    is the majority."""
    from types import SimpleNamespace

    from visxai.evaluation.agf_tables import blank_comparison, blank_segmentation

    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(40, 8, 8, dtype=torch.long)
    for i in range(40):  # one object of 4-16 pixels per image: background is the majority
        r, c, s = (int(v) for v in torch.randint(0, 4, (3,), generator=g))
        masks[i, r : r + 2 + s, c : c + 2 + s // 2 + 1] = 1
    case = type("Case", (SimpleNamespace,), {"__len__": lambda self: len(self.masks)})(
        masks=masks, multilabel=False
    )
    oracle = segmentation_scores(masks.float(), masks, signed=True)
    comp = blank_comparison(case, oracle)
    assert {m: c.verdict for m, c in comp.items()} == {"pixel accuracy": "holds", "mAP": "holds"}
    bg = 100 * float((masks == 0).float().mean())
    assert comp["pixel accuracy"].diff.value == pytest.approx(100 - bg)
    tie = blank_comparison(case, blank_segmentation(case))
    assert all(c.diff.value == 0 and c.verdict == "inconclusive" for c in tie.values())
    everything = segmentation_scores(torch.ones(40, 8, 8), masks, signed=True)
    assert blank_comparison(case, everything)["pixel accuracy"].verdict == "fails"
