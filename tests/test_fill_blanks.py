"""Properties of visxai.methods.fill_blanks (Fill in the blanks, Eq. 1-5, sections 4.1-4.6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visxai.device import make_generator
from visxai.methods.fill_blanks import (
    FillInTheBlanks,
    apply_mask,
    blank_fraction,
    fill,
    partition_masks,
    patch_masks,
    threshold,
    with_input_normalization,
)
from visxai.models.small_cnns import SmallCNN3

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN3(width=8).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = make_generator(1)
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 6:22, 10:18] = torch.rand(
        4, 1, 16, 8, generator=g
    )  # a blob in the centre, black around
    return x


# ------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("ratio,patch", [(0.25, 2), (0.5, 1), (0.75, 7), (0.1, 2), (0.25, 4)])
def test_patch_masks_ratio_and_blocks(ratio: float, patch: int) -> None:
    keep = patch_masks(32, (28, 28), ratio, patch, generator=make_generator(0))
    assert keep.shape == (32, 1, 28, 28)
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    frac = blank_fraction(ratio, (28, 28), patch)
    blank_per_mask = (1 - keep).flatten(1).mean(1)
    assert torch.allclose(blank_per_mask, torch.full((32,), frac))  # exact, for every mask
    cells = (28 // patch) ** 2
    assert frac == round(ratio * cells) / cells
    if (ratio * cells).is_integer():
        assert frac == ratio
    # constant on every patch x patch block
    blocks = keep.unfold(2, patch, patch).unfold(3, patch, patch)
    assert torch.equal(blocks.amax((-1, -2)), blocks.amin((-1, -2)))
    # masks differ from one another (uniform sampling, not one fixed mask)
    assert len({tuple(k.flatten().tolist()) for k in keep}) > 1


def test_patch_masks_uniform_over_pixels() -> None:
    keep = patch_masks(4000, (28, 28), 0.25, 2, generator=make_generator(0))
    p_blank = (1 - keep).mean(0)
    assert (p_blank - 0.25).abs().max() < 0.04  # each pixel blank with probability eta


def test_patch_masks_bad_input() -> None:
    with pytest.raises(ValueError, match="divisible"):
        patch_masks(1, (28, 28), 0.25, 3)
    with pytest.raises(ValueError, match="ratio"):
        patch_masks(1, (28, 28), 1.0, 2)
    with pytest.raises(ValueError, match="patch"):
        patch_masks(1, (28, 28), 0.25, 0)


@pytest.mark.parametrize("k,patch", [(4, 2), (3, 1), (4, 7)])
def test_partition_masks_disjoint_and_cover(k: int, patch: int) -> None:
    keeps = partition_masks(k, (28, 28), patch, n=5, generator=make_generator(0))
    assert keeps.shape == (5, k, 1, 28, 28)
    blank = 1 - keeps
    assert torch.equal(blank.sum(1), torch.ones(5, 1, 28, 28))  # disjoint and covering
    cells = (28 // patch) ** 2
    sizes = blank.flatten(2).sum(2) / patch**2
    assert int(sizes.max() - sizes.min()) <= 1 and torch.all(sizes.sum(1) == cells)
    if cells % k == 0:
        assert torch.allclose(blank.flatten(2).mean(2), torch.full((5, k), 1 / k))


# --------------------------------------------------------------------------------- threshold
def test_threshold_only_blank_pixels_and_binary(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, device="cpu")
    keep = patch_masks(4, generator=make_generator(3))
    delta, _ = fb.update(images, keep)
    for binarize in ("otsu", 0.5):
        t = threshold(delta, keep, binarize)
        assert torch.all(t[keep.expand_as(t) == 1] == 0)
        assert set(t.unique().tolist()) <= {0.0, 1.0}
        assert t.sum() > 0
    soft = threshold(delta, keep, None)  # the non-binarised variant (4.6)
    blank_vals = soft[keep.expand_as(soft) == 0]
    assert blank_vals.min() >= 0 and blank_vals.max() <= 1
    # normalisation keeps the sign: 1 exactly where the update is largest and positive, 0 where it is <= 0
    d_blank = delta[keep.expand_as(delta) == 0]
    assert torch.equal(blank_vals == 0, d_blank <= 0)
    # binarised: ink only where the update is positive
    assert torch.all(d_blank[threshold(delta, keep)[keep.expand_as(delta) == 0] == 1] > 0)
    assert torch.all(soft[keep.expand_as(soft) == 1] == 0)
    filled = fill(images, keep, threshold(delta, keep))
    assert torch.equal(filled[keep.expand_as(filled) == 1], images[keep.expand_as(images) == 1])
    # normalisation: T does not depend on gamma
    assert torch.equal(threshold(3.0 * delta, keep), threshold(delta, keep))


def test_update_is_gradient_at_masked_image(model: nn.Module, images: torch.Tensor) -> None:
    """Delta x is taken w.r.t. the model input at M(x): non-zero on blank pixels (not through M)."""
    fb = FillInTheBlanks(model, gamma=0.5, device="cpu")
    keep = patch_masks(4, generator=make_generator(4))
    y = torch.tensor([1, 2, 3, 4])
    delta, logits = fb.update(images, keep, y)
    z = apply_mask(images, keep).requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(z).double(), y, reduction="sum"), z)
    assert torch.allclose(delta, -0.5 * g)
    assert (delta * (1 - keep)).abs().sum() > 0
    assert torch.allclose(logits, model(apply_mask(images, keep)).detach())


def test_small_gamma_update_lowers_loss(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, gamma=1e-2, device="cpu")
    keep = patch_masks(4, generator=make_generator(5))
    y = torch.tensor([0, 3, 5, 7])
    delta, _ = fb.update(images, keep, y)
    z = apply_mask(images, keep)
    with torch.no_grad():
        before = F.cross_entropy(model(z), y, reduction="none")
        after = F.cross_entropy(model(z + delta), y, reduction="none")
        after_blank = F.cross_entropy(
            model(z + delta * (1 - keep)), y, reduction="none"
        )  # M~(dx) only
    assert torch.all(after < before)
    assert torch.all(after_blank < before)


# ------------------------------------------------------------------------------ 4.1 expected
def test_expected_update_counts_and_determinism(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, device="cpu", batch_size=64)
    y = int(model(images[:1]).argmax())
    a = fb.expected_update(images[0], y, min_correct=150, seed=7, snapshots=(50,))
    b = fb.expected_update(images[0], y, min_correct=150, seed=7)
    c = fb.expected_update(images[0], y, min_correct=150, seed=8)
    assert a.n_correct == 151  # N* > min_correct, stopped at the first mask that makes it so
    assert a.n_sampled >= a.n_correct and 0 < a.correct_rate <= 1
    assert torch.equal(a.mean, b.mean)  # same seed, same output
    assert not torch.equal(a.mean, c.mean)
    # same masks whatever the batch size (one sequential random stream), up to float rounding
    other = FillInTheBlanks(model, device="cpu", batch_size=23).expected_update(
        images[0], y, min_correct=150, seed=7
    )
    assert other.n_sampled == a.n_sampled and torch.allclose(other.mean, a.mean, atol=1e-6)
    # the snapshot equals a run that stops at that count
    d = fb.expected_update(images[0], y, min_correct=50, seed=7)
    assert torch.allclose(a.snapshots[50], d.mean, atol=1e-6)
    proto = fb.expected_prototype(a)
    assert proto.shape == (1, 28, 28) and set(proto.unique().tolist()) <= {0.0, 1.0}
    # M(x) + T(E[dx]) with M the first correct mask: original pixels where M keeps them
    assert a.keep is not None and a.keep.shape == (1, 28, 28)
    with torch.no_grad():
        assert int(model(apply_mask(images[:1], a.keep)).argmax()) == y
    filled = fb.expected_fill(images[0], a)
    kept = a.keep.bool()
    assert torch.equal(filled[kept], images[0][kept])
    assert set(filled[~kept].unique().tolist()) <= {0.0, 1.0}


def test_expected_update_is_mean_of_blank_updates(model: nn.Module, images: torch.Tensor) -> None:
    """Eq. 5: per pixel, the mean of M~_i(Delta x_i) over the correct masks in which it was blank."""
    fb = FillInTheBlanks(model, device="cpu", batch_size=1000)
    x = images[1:2]
    y = int(model(x).argmax())
    e = fb.expected_update(x, y, min_correct=30, seed=3)
    keep = patch_masks(e.n_sampled, generator=make_generator(3))
    delta, logits = fb.update(
        x.expand(e.n_sampled, -1, -1, -1), keep, torch.full((e.n_sampled,), y)
    )
    ok = (logits.argmax(1) == y).float().view(-1, 1, 1, 1)
    ref = (ok * (1 - keep) * delta).sum(0) / (ok * (1 - keep)).sum(0).clamp_min(1)
    assert int(ok.sum()) == e.n_correct
    assert torch.allclose(e.mean, ref, atol=1e-6)


def test_expected_update_warns_when_never_correct(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, device="cpu", batch_size=32)
    y = int(model(images[:1]).argmax())
    wrong = (y + 1) % 10
    with torch.no_grad():
        keep = patch_masks(64, generator=make_generator(0))
        assert (model(apply_mask(images[:1], keep)).argmax(1) == wrong).float().mean() < 0.5
    with pytest.warns(RuntimeWarning, match="classified"):
        e = fb.expected_update(images[0], wrong, min_correct=10_000, max_masks=64, seed=0)
    assert e.n_sampled == 64 and e.n_correct < 10_001


# ---------------------------------------------------------------------------- 4.2 progressive
def test_progressive_fill(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, device="cpu")
    res = fb.progressive(images, k=4, patch=2, seed=0)
    assert res.fills.shape == (4, 4, 1, 28, 28) and res.predictions.shape == (4, 4)
    assert torch.equal(
        res.predicted_region[:, -1], torch.ones(4, 1, 28, 28)
    )  # nothing original left
    assert set(res.image.unique().tolist()) <= {0.0, 1.0}  # every pixel from a binarised T_i
    prev = images
    for i in range(4):
        keep = res.keeps[:, i]
        cur = res.fills[:, i]
        assert torch.equal(cur * keep, prev * keep)  # step i changes only the pixels of M_i
        assert torch.allclose(
            res.predicted_region[:, i].flatten(1).mean(1), torch.full((4,), (i + 1) / 4)
        )
        prev = cur
    # each step's prediction is the model's class of the masked current image (the fills feed on)
    prev = images
    for i in range(4):
        expected = model(apply_mask(prev, res.keeps[:, i])).argmax(1)
        assert torch.equal(res.predictions[:, i], expected)
        prev = res.fills[:, i]
    again = fb.progressive(images, k=4, patch=2, seed=0)
    assert torch.equal(again.fills, res.fills)
    labelled = fb.progressive(images, k=4, target="label", labels=[1, 1, 1, 1], seed=0)
    assert labelled.fills.shape == res.fills.shape


# ---------------------------------------------------------------------------- 4.5 second order
def test_second_order_bfgs_lowers_loss_on_blank_pixels(
    model: nn.Module, images: torch.Tensor
) -> None:
    fb = FillInTheBlanks(model, device="cpu")
    keep = patch_masks(1, generator=make_generator(2))[0]
    res = fb.second_order_update(images[0], keep, max_iter=5)
    assert res.loss_end < res.loss_start
    assert torch.all(res.delta[keep.expand_as(res.delta) == 1] == 0)
    assert res.delta.abs().sum() > 0 and 1 <= res.n_iter <= 5


# ---------------------------------------------------------------------------- input checks
def test_bad_inputs(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, device="cpu")
    keep = patch_masks(4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fb.update(images * 255, keep)
    with pytest.raises(ValueError, match="B, C, H, W"):
        fb.update(images[0, 0], keep)
    with pytest.raises(TypeError, match="floating"):
        fb.update((images * 255).to(torch.uint8), keep)
    with pytest.raises(ValueError, match="labels"):
        fb.update(images, keep, [1, 2])
    with pytest.raises(ValueError, match="binarize"):
        threshold(torch.zeros(1, 1, 28, 28), keep[:1], "mean")
    with pytest.raises(ValueError, match="gamma"):
        FillInTheBlanks(model, gamma=0.0)


def test_with_input_normalization(model: nn.Module, images: torch.Tensor) -> None:
    wrapped = with_input_normalization(model, [0.5], [0.25])
    assert torch.allclose(wrapped(images), model((images - 0.5) / 0.25))


# ------------------------------------------------------------------------------ Table 1 scores
def test_classification_scores_match_sklearn() -> None:
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from visxai.methods.fill_blanks import classification_scores

    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.integers(0, 10, int(rng.integers(1, 80)))
        # some correct, some wrong, some predicted classes that never occur as labels
        p = np.where(rng.random(y.size) < 0.6, y, rng.integers(0, 12, y.size))
        want = (
            100 * accuracy_score(y, p),
            100 * f1_score(y, p, average="macro"),
            100 * f1_score(y, p, average="weighted"),
        )
        assert np.allclose(classification_scores(y, p), want)
    assert classification_scores([3, 3, 3], [3, 3, 3]) == (100.0, 100.0, 100.0)
    with pytest.raises(ValueError):
        classification_scores([1, 2], [1])


def test_prototype_scores_bootstrap_over_images() -> None:
    import numpy as np

    from visxai.methods.fill_blanks import SCORE_NAMES, classification_scores, prototype_scores

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(10), 10)[:, None].repeat(3, 1)  # 100 images x 3 seeds
    p = np.where(rng.random(y.shape) < 0.7, y, (y + 1) % 10)
    est = prototype_scores(y, p)
    assert set(est) == set(SCORE_NAMES)
    for k, name in enumerate(SCORE_NAMES):
        e = est[name]
        # the point value is the statistic on all pooled pairs; n counts images, not image x seed
        assert e.value == pytest.approx(classification_scores(y, p)[k])
        assert (e.n, e.seeds, e.unit) == (100, 3, "images")
        assert e.lo <= e.value <= e.hi and e.hi - e.lo > 0
    # the image is the unit: three identical seeds per image carry no more information than one, so
    # the CI is that of the 100 images, not the narrower one of 300 pooled "independent" pairs
    same = p[:, :1].repeat(3, 1)
    width = lambda e: e.hi - e.lo  # noqa: E731
    clustered = prototype_scores(y, same)["accuracy"]
    one_seed = prototype_scores(y[:, 0], same[:, 0])["accuracy"]
    pooled = prototype_scores(y.reshape(-1), same.reshape(-1))["accuracy"]
    assert clustered.value == one_seed.value == pooled.value
    assert width(clustered) == pytest.approx(width(one_seed), rel=0.2)
    assert width(clustered) > 1.4 * width(pooled)
    # perfect prototypes: a degenerate CI at 100
    perfect = prototype_scores(y[:, 0], y[:, 0])
    assert all((v.value, v.lo, v.hi) == (100.0, 100.0, 100.0) for v in perfect.values())
    # the same data give the same interval (seeded resampling)
    assert prototype_scores(y, p) == est
