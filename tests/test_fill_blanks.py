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
    # normalisation keeps the sign: 1 exactly where the update is largest and positive,
    # 0 where it is <= 0
    d_blank = delta[keep.expand_as(delta) == 0]
    assert torch.equal(blank_vals == 0, d_blank <= 0)
    # binarised: ink only where the update is positive
    assert torch.all(d_blank[threshold(delta, keep)[keep.expand_as(delta) == 0] == 1] > 0)
    assert torch.all(soft[keep.expand_as(soft) == 1] == 0)
    filled = fill(images, keep, threshold(delta, keep))
    assert torch.equal(filled[keep.expand_as(filled) == 1], images[keep.expand_as(images) == 1])
    # normalisation: T does not depend on gamma
    assert torch.equal(threshold(3.0 * delta, keep), threshold(delta, keep))


@pytest.mark.parametrize("binarize", [0.5, 0.0, "none", "otsu"])
def test_threshold_of_a_batch_is_that_of_each_image(binarize: object) -> None:
    """T works per image (Eq. 4): a batch gives, bit for bit, what each image gives alone; an
    image without blank pixels, or with a zero update, gets an all-zero T."""
    g = make_generator(2)
    delta = torch.randn(6, 1, 28, 28, generator=g) * torch.logspace(-3, 3, 6).view(6, 1, 1, 1)
    delta[0], delta[1] = delta[0].abs(), 0.0
    keep = patch_masks(6, ratio=0.3, generator=g)
    keep[2] = 1.0
    t = threshold(delta, keep, binarize)
    for b in range(6):
        assert torch.equal(t[b : b + 1], threshold(delta[b : b + 1], keep[b : b + 1], binarize))
    assert torch.all(t[1] == 0) and torch.all(t[2] == 0) and torch.all(t[keep.bool()] == 0)
    assert t[0][~keep[0].bool()].max() == 1.0  # the largest (positive) update: 1 in every mode


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
    fb = FillInTheBlanks(model, device="cpu", batch_size=64, min_correct=150, seed=7)
    y = int(model(images[:1]).argmax())
    a = fb.expected_update(images[0], y, snapshots=(50,))
    b = fb.expected_update(images[0], y)
    c = fb.replace(seed=8).expected_update(images[0], y)
    assert a.n_correct == 151  # N* > min_correct, stopped at the first mask that makes it so
    assert a.n_sampled >= a.n_correct and 0 < a.correct_rate <= 1
    assert torch.equal(a.mean, b.mean)  # same seed, same output
    assert not torch.equal(a.mean, c.mean)
    # same masks whatever the batch size (one sequential random stream), up to float rounding
    other = FillInTheBlanks(
        model, device="cpu", batch_size=23, min_correct=150, seed=7
    ).expected_update(images[0], y)
    assert other.n_sampled == a.n_sampled and torch.allclose(other.mean, a.mean, atol=1e-6)
    # the snapshot equals a run that stops at that count
    d = fb.replace(min_correct=50).expected_update(images[0], y)
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


def test_expected_updates_in_worker_processes_are_the_same(
    model: nn.Module, images: torch.Tensor
) -> None:
    from visxai.evaluation.fill_blanks import expected_updates

    fb = FillInTheBlanks(model, device="cpu", batch_size=64, min_correct=40, seed=3)
    with torch.no_grad():
        y = model(images).argmax(1)
    one = expected_updates(fb, images, y, snapshots=(10,))
    two = expected_updates(fb, images, y, snapshots=(10,), workers=2)  # round-robin, 2 processes
    assert len(two) == len(images)
    for a, b in zip(one, two):  # in image order, bitwise
        assert torch.equal(a.mean, b.mean) and torch.equal(a.snapshots[10], b.snapshots[10])
        assert (a.n_correct, a.n_sampled, a.label) == (b.n_correct, b.n_sampled, b.label)
        assert torch.equal(a.keep, b.keep)


def test_forward_first_gives_the_same_estimate(model: nn.Module, images: torch.Tensor) -> None:
    """forward_first_below: the misclassified masks skip the backward pass; N*, the masks and
    E[dx] stay those of the plain loop (E[dx] up to float rounding)."""
    x = images[0]
    label = int(model(images[:1]).argmax())
    plain = FillInTheBlanks(model, device="cpu", min_correct=40, batch_size=16, seed=2)
    a = plain.expected_update(x, label)
    b = plain.replace(forward_first_below=1.0).expected_update(x, label)  # every batch but one
    assert 0 < a.correct_rate < 1  # some masks are skipped, some are kept
    assert (a.n_correct, a.n_sampled) == (b.n_correct, b.n_sampled)
    assert torch.equal(a.keep, b.keep)
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="forward_first_below"):
        plain.replace(forward_first_below=1.5)


def test_expected_update_is_mean_of_blank_updates(model: nn.Module, images: torch.Tensor) -> None:
    """Eq. 5: per pixel, the mean of M~_i(Delta x_i) over the correct masks in which it was
    blank."""
    fb = FillInTheBlanks(model, device="cpu", batch_size=1000, min_correct=30, seed=3)
    x = images[1:2]
    y = int(model(x).argmax())
    e = fb.expected_update(x, y)
    keep = patch_masks(e.n_sampled, generator=make_generator(3))
    delta, logits = fb.update(
        x.expand(e.n_sampled, -1, -1, -1), keep, torch.full((e.n_sampled,), y)
    )
    ok = (logits.argmax(1) == y).float().view(-1, 1, 1, 1)
    ref = (ok * (1 - keep) * delta).sum(0) / (ok * (1 - keep)).sum(0).clamp_min(1)
    assert int(ok.sum()) == e.n_correct
    assert torch.allclose(e.mean, ref, atol=1e-6)


def test_expected_update_warns_when_never_correct(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(
        model, device="cpu", batch_size=32, min_correct=10_000, max_masks=64, seed=0
    )
    y = int(model(images[:1]).argmax())
    wrong = (y + 1) % 10
    with torch.no_grad():
        keep = patch_masks(64, generator=make_generator(0))
        assert (model(apply_mask(images[:1], keep)).argmax(1) == wrong).float().mean() < 0.5
    with pytest.warns(RuntimeWarning, match="classified"):
        e = fb.expected_update(images[0], wrong)
    assert e.n_sampled == 64 and e.n_correct < 10_001


# ---------------------------------------------------------------------------- 4.2 progressive
def test_progressive_fill(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, device="cpu", k=4, patch=2, seed=0)
    res = fb.progressive(images)
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
    again = fb.progressive(images)
    assert torch.equal(again.fills, res.fills)
    labelled = fb.replace(progressive_target="label").progressive(images, labels=[1, 1, 1, 1])
    assert labelled.fills.shape == res.fills.shape


# ---------------------------------------------------------------------------- 4.5 second order
def test_progressive_in_chunks_equals_one_batch(model: nn.Module, images: torch.Tensor) -> None:
    """The images of a progressive fill are independent: chunks of batch_size give the same."""
    keeps = partition_masks(4, n=len(images), generator=make_generator(4))
    for target in ("first", "predicted", "label"):
        fb = FillInTheBlanks(model, device="cpu", progressive_target=target, batch_size=256)
        whole = fb.progressive(images, labels=[1, 2, 3, 4], keeps=keeps)
        parts = fb.replace(batch_size=3).progressive(images, labels=[1, 2, 3, 4], keeps=keeps)
        for a, b in zip(
            (whole.keeps, whole.predicted_region, whole.fills, whole.predictions),
            (parts.keeps, parts.predicted_region, parts.fills, parts.predictions),
        ):
            assert torch.equal(a, b)


def test_second_order_bfgs_lowers_loss_on_blank_pixels(
    model: nn.Module, images: torch.Tensor
) -> None:
    fb = FillInTheBlanks(model, device="cpu", bfgs_iterations=5)
    keep = patch_masks(1, generator=make_generator(2))[0]
    res = fb.second_order_update(images[0], keep)
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


def test_prototype_scores_equal_a_bootstrap_of_classification_scores() -> None:
    """The fast resample statistic (per-image confusion counts, once for the three metrics, and
    the memo) gives exactly the CIs of bootstrapping classification_scores itself."""
    import numpy as np

    from visxai.methods.fill_blanks import SCORE_NAMES, classification_scores, prototype_scores
    from visxai.stats import estimate

    rng = np.random.default_rng(3)
    y = rng.integers(0, 7, (40, 2))
    p = np.where(rng.random(y.shape) < 0.6, y, rng.integers(0, 9, y.shape))  # classes 7, 8 too
    idx = np.arange(40, dtype=float)
    for seed in (0, 5):
        got = prototype_scores(y, p, seed=seed)
        for k, name in enumerate(SCORE_NAMES):
            direct = estimate(
                idx,
                statistic=lambda i, k=k: classification_scores(y[i.astype(int)], p[i.astype(int)])[
                    k
                ],
                seeds=2,
                seed=seed,
            )
            assert got[name] == direct
        assert prototype_scores(y, p, seed=seed) == got  # memo: the same answer again


# ------------------------------------------------------------- the parameter set, in one place
def test_constructor_holds_parameters_and_replace_copies(model: nn.Module) -> None:
    fb = FillInTheBlanks(model, device="cpu", ratio=0.5, patch=4, k=2, min_correct=7, seed=3)
    other = fb.replace(ratio=0.25, seed=4)
    assert (other.ratio, other.seed, other.patch, other.k, other.min_correct) == (0.25, 4, 4, 2, 7)
    assert (fb.ratio, fb.seed) == (0.5, 3)  # the original is unchanged
    assert other.model is fb.model and other.device == fb.device  # the model is shared
    with pytest.raises(TypeError, match="unknown"):
        fb.replace(device="cpu")
    for bad in ({"ratio": 1.0}, {"patch": 0}, {"k": 0}, {"binarize": "mean"}, {"min_correct": -1}):
        with pytest.raises(ValueError):
            fb.replace(**bad)
    with pytest.raises(ValueError, match="progressive_target"):
        FillInTheBlanks(model, device="cpu", progressive_target="true")


def test_default_mask_limit_is_twenty_times_target() -> None:
    """max_masks=None stops after 20 * (min_correct + 1) masks (what the docstring says)."""
    never = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    with torch.no_grad():
        never[1].weight.zero_()
        never[1].bias.copy_(torch.arange(10, 0, -1).float())  # always predicts class 0
    fb = FillInTheBlanks(never, device="cpu", min_correct=3, batch_size=16)
    assert fb.mask_limit() == 80 and fb.replace(max_masks=5).mask_limit() == 5
    with pytest.warns(RuntimeWarning, match="classified"):
        e = fb.expected_update(torch.rand(1, 28, 28), 1)
    assert (e.n_sampled, e.n_correct) == (80, 0)


def test_parameters_change_the_masks(model: nn.Module, images: torch.Tensor) -> None:
    fb = FillInTheBlanks(model, device="cpu", k=2, patch=7, seed=1)
    res = fb.progressive(images[:2])
    assert res.keeps.shape[1] == 2 and torch.equal(
        res.keeps, partition_masks(2, (28, 28), 7, n=2, generator=make_generator(1))
    )
    y = int(model(images[:1]).argmax())
    e = fb.replace(ratio=0.5, patch=7, min_correct=3).expected_update(images[0], y)
    assert e.keep is not None and float((1 - e.keep).mean()) == blank_fraction(0.5, (28, 28), 7)


# ------------------------------------------------------------------ notebook 04's protocols
def _tiny_study(min_correct: int = 5):
    """A Study of linear models on noise images labelled with the model's own predictions."""
    from types import SimpleNamespace

    from visxai.evaluation import fill_blanks as fib

    g = make_generator(5)
    templates = (torch.rand(10, 28 * 28, generator=g) > 0.5).float()
    lin = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    with torch.no_grad():
        lin[1].weight.copy_((templates - 0.5) / 20)
        lin[1].bias.zero_()
        c = torch.arange(300) % 10
        x = (0.6 * templates[c] + 0.4 * torch.rand(300, 28 * 28, generator=g)).view(-1, 1, 28, 28)
        y = lin(x).argmax(1)
    assert len(y.unique()) == 10  # every class occurs
    s = fib.NotebookSettings(
        "offline", "10k", "lin-a", "fmnist-lin", "lin-b", fig2_min_correct=min_correct,
        check_min_correct=min_correct, table_per_class=2, table_min_correct=3,
        other_min_correct=2, control_per_class=1, fig5_images=2, fig4_min_correct=3,
        max_masks_factor=3, batch_size=64,
    )  # fmt: skip
    names = [s.fig_model, s.table_model, s.fmnist_model]
    methods = {n: FillInTheBlanks(lin, device="cpu", min_correct=min_correct) for n in names}
    loaded = {n: SimpleNamespace(model=lin, labels=[str(c) for c in range(10)]) for n in names}
    preds = {n: methods[n].predict(x) for n in names}
    data = {"mnist": (x, y), "fashion-mnist": (x, y)}
    return fib.Study(s, torch.device("cpu"), data, loaded, methods, preds)


def test_notebook_settings() -> None:
    from visxai.evaluation.fill_blanks import notebook_settings

    off, paper = notebook_settings("offline", 10_000), notebook_settings("paper", 10_000)
    for s in (off, paper):  # the paper's N* > 10,000 in both profiles (Fig. 2 and Table 1)
        assert s.fig2_min_correct == s.table_min_correct == 10_000
        assert s.check_min_correct > s.fig2_min_correct
    assert paper.other_min_correct == 10_000 and off.other_min_correct == 1_000
    assert off.table_per_class * 10 >= 100  # at least 10 images per class, 100 in all
    assert paper.table_per_class is None and off.profile == "offline"
    with pytest.raises(ValueError, match="profile"):
        notebook_settings("laptop")


def test_table_images_and_stack_seeds() -> None:
    from visxai.evaluation.fill_blanks import stack_seeds, table_images

    y = torch.tensor([0, 1, 0, 1, 0, 1, 2])
    p = torch.tensor([0, 1, 1, 1, 0, 0, 2])
    tidx, ok = table_images(p, y, 1)
    assert ok.tolist() == [0, 1, 3, 4, 6] and tidx.tolist() == [0, 1, 6]  # first correct per class
    assert torch.equal(table_images(p, y, None)[0], ok)
    per_seed = [{"a": (y[:3], p[:3])}, {"a": (y[:3], y[:3])}]
    lab, pr = stack_seeds(per_seed)["a"]
    assert lab.shape == pr.shape == (3, 2) and (pr[:, 1] == lab[:, 1]).all()


def test_masked_accuracy_and_single_fill() -> None:
    from visxai.evaluation import fill_blanks as fib

    st = _tiny_study()
    acc = fib.masked_accuracy(st)
    assert set(acc) == set(st.methods)
    for m in acc.values():
        assert m.clean.value == 1.0 and m.n_images == 300  # labels are the model's predictions
        assert m.drop.value == pytest.approx(m.clean.value - m.masked.value)
    case = fib.single_fill(st, label=4)
    assert int(st.data["mnist"][1][case.index]) == 4
    kept = case.keep.expand_as(case.x).bool()
    assert torch.equal(case.filled[kept], case.x[kept]) and torch.all(case.t[kept] == 0)


def test_expected_panels_and_convergence() -> None:
    from visxai.evaluation import fill_blanks as fib

    st = _tiny_study()
    panels = fib.expected_panels(st, progress=False)
    p = panels["MNIST"]
    assert len(p.indices) == 10 and all(e.n_correct <= 6 for e in p.estimates)
    assert all(int(st.data["mnist"][1][i]) == c for c, i in enumerate(p.indices))
    table = fib.expected_table(st, panels)
    assert len(table) == 20 and (table["N*"] == [e.n_correct for e in p.estimates] * 2).all()
    # check and figure at the same N*: the snapshot is the final estimate
    cos, iou = fib.convergence_check(st, panels, label=3, progress=False)
    assert cos == pytest.approx(1.0) and iou == pytest.approx(1.0)


def test_table1_and_verdicts() -> None:
    from visxai.evaluation import fill_blanks as fib
    from visxai.scorecard import Scorecard

    st = _tiny_study()
    t1 = fib.table1(st, seeds=(0, 1), progress=False)
    assert t1.n_images == 20 and t1.control.endswith("(control)")
    tm = st.settings.table_model
    assert t1.random_seeds == (0,) and t1.n_star[t1.control].shape == (10, 1)
    # the table model at the other runs' N* (2): the same mask stream stopped earlier
    assert t1.min_correct == {tm: 3, t1.control: 2, st.settings.fig_model: 2}
    assert fib.reduced_name(2) in t1.pairs[tm] and fib.reduced_name(2) not in t1.pairs[t1.control]
    assert set(t1.pairs) == {tm, t1.control, st.settings.fig_model}
    assert fib.PROGRESSIVE_ALL in t1.pairs[tm] and fib.PROGRESSIVE_ALL not in t1.pairs[t1.control]
    lab, pr = t1.pairs[tm][fib.RANDOM]
    tidx, _ = fib.table_images(st.predictions[tm], st.data["mnist"][1], 2)
    assert lab.shape == (20, 1) and (lab == st.data["mnist"][1][tidx].numpy()[:, None]).all()
    assert t1.pairs[tm][fib.PROGRESSIVE][0].shape == (20, 2)  # progressive: every seed
    assert len(t1.frame()) == sum(len(m) for m in t1.pairs.values())
    # the ablation: 3 binarisations x (random + progressive x 2 target rules), trained models only
    ab = t1.ablation()
    assert len(ab) == 2 * 3 * 3 and set(ab["binarize"]) == {"fixed(0.5)", "otsu", "none"}
    assert set(ab["target"]) == {"-", "first", "predicted"}
    default = ab[(ab.model == tm) & (ab.mechanism == fib.RANDOM) & (ab.binarize == "fixed(0.5)")]
    assert default["value"].iloc[0] == pytest.approx(t1.scores[tm, fib.RANDOM]["accuracy"].value)
    sc = Scorecard("test")
    stab = fib.table1_verdicts(t1, sc)
    assert all(len(v) in (1, 2) for v in stab.values())
    assert len(sc.rows) == 17  # 2 x 6 paper cells, the ordering, the reduced-N* check, 3 controls
    assert t1.values()["metric"].nunique() == 3


def test_table1_keeps_its_prototypes_and_plots_the_misclassified() -> None:
    """Table 1 keeps the prototypes it scores (first seed): they are the images whose
    predictions the table counts, and the figure shows the misclassified beside the correct."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from visxai.evaluation import fill_blanks as fib

    st = _tiny_study()
    t1 = fib.table1(st, seeds=(0, 1), progress=False)
    assert set(t1.prototypes) == set(t1.pairs)
    for run, mechs in t1.prototypes.items():
        f = st.methods.get(run)
        for mech, (lab, pr, img) in mechs.items():
            assert img.shape == (len(t1.indices[run]), 1, 28, 28)
            assert (lab == t1.pairs[run][mech][0][:, 0]).all()  # first seed of the table
            assert (pr == t1.pairs[run][mech][1][:, 0]).all()
            if f is not None:  # the trained runs: the model's prediction of the kept image
                assert (f.predict(img).numpy() == pr).all()
    tm = st.settings.table_model
    counts = fib.misclassified_counts(t1)
    for mech, (bad, n) in counts.items():
        lab, pr, _ = t1.prototypes[tm][mech]
        assert (bad, n) == (int((lab != pr).sum()), len(lab))
    fig = fib.plot_misclassified(t1, n=3)
    assert len(fig.axes) == 4 * 3  # (misclassified, correct) x (random, progressive) x n
    shown = [ax.get_title() for ax in fig.axes[:3] if ax.get_title()]
    assert len(shown) == min(3, counts[fib.RANDOM][0])
    plt.close(fig)
    with pytest.raises(ValueError, match="no prototypes of run"):
        fib.plot_misclassified(t1, run="no-such-model")


def test_ordering_verdicts() -> None:
    import numpy as np

    from visxai.evaluation import fill_blanks as fib

    y = np.repeat(np.arange(10), 5)[:, None].repeat(2, 1)
    wrong = (y + 1) % 10
    verdicts, pooled = fib.ordering({fib.RANDOM: (y, y), fib.PROGRESSIVE: (y, wrong)})
    assert verdicts == ["holds", "holds"] and pooled.value == 100.0
    verdicts, _ = fib.ordering({fib.RANDOM: (y, wrong), fib.PROGRESSIVE: (y, y)})
    assert "holds" not in verdicts


def test_sweep_orders_and_binarisation() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from visxai.evaluation import fill_blanks as fib

    st = _tiny_study()
    sweep = fib.mask_sweep(st, label=2, ratios=(0.1, 0.5), patches=(1, 7), progress=False)
    assert sweep.rates.shape == (2, 2)
    assert sweep.rates.iloc[1, 1] == sweep.estimates[0.5, 7].correct_rate
    assert isinstance(sweep.rate_falls(), tuple)
    cmp = fib.first_vs_second_order(st)
    assert len(cmp.stats) == 2 and (cmp.stats["loss BFGS"] <= cmp.stats["loss start"]).all()
    assert cmp.check_lines()[-1].endswith("yes")
    panels = fib.expected_panels(st, progress=False)
    b = fib.binarisation_comparison(st, panels, classes=(0, 3))
    for j, c in enumerate((0, 3)):  # M(x) + T(E[dx]): binary on the blanks of the first mask
        blank = panels["MNIST"].estimates[c].keep == 0
        assert set(b.random_fills["binarised"][j][blank].unique().tolist()) <= {0.0, 1.0}
    assert set(b.progressive["binarised"].image.unique().tolist()) <= {0.0, 1.0}
    soft = b.progressive["not binarised"].image
    assert soft.min() >= 0 and soft.max() <= 1
    assert list(b.predictions) == [
        "random, binarised", "random, not binarised",
        "progressive, binarised", "progressive, not binarised",
    ]  # fmt: skip
    figs = [
        fib.plot_single_fill(st, fib.single_fill(st, label=1)),
        fib.plot_expected(st, panels),
        fib.plot_mask_sweep(st, sweep),
        fib.plot_orders(st, cmp),
        fib.plot_binarisation(st, b),
        fib.plot_fill_panel(st, 0, 0.25, 2, 0),
    ]
    assert [len(f.axes) for f in figs] == [5, 80, 4, 3, 8, 3]  # Fig. 5: one example
    assert fib.plot_fill_panel(st, 0, 0.001, 2, 0) is None  # no whole patch blanked


# ------------------------------------------------------------------- Table 1 protocol (#12)
def test_progressive_target_held_from_the_first_step(
    model: nn.Module, images: torch.Tensor
) -> None:
    """progressive_target="first" (the default): every step's update uses y_hat of M_1(x)."""
    fb = FillInTheBlanks(model, device="cpu", k=4, patch=2, seed=0)
    assert fb.progressive_target == "first"
    res = fb.progressive(images)
    y1 = model(apply_mask(images, res.keeps[:, 0])).argmax(1)
    assert torch.equal(res.first_prediction, y1)
    # replaying the steps with y1 as the fixed label gives the same fills
    prev = images
    for i in range(4):
        keep = res.keeps[:, i]
        delta, _ = fb.update(prev, keep, y1)
        prev = fill(prev, keep, fb.threshold(delta, keep))
        assert torch.equal(prev, res.fills[:, i])
    # the per-step reading re-targets: with its own predictions it equals target="label" only
    # when they agree with y1; on this model the two readings differ on some image
    per_step = fb.replace(progressive_target="predicted").progressive(images)
    held = fb.replace(progressive_target="label").progressive(images, labels=y1)
    assert torch.equal(held.fills, res.fills)
    assert per_step.predictions.shape == res.predictions.shape


def test_binarize_modes_on_a_hand_made_update() -> None:
    """fixed(t): 1 where u = dx / max|dx| > t; otsu: Otsu's t of the positive u; none: clip(u)."""
    from skimage.filters import threshold_otsu

    from visxai.methods.fill_blanks import binarize_mode

    keep = torch.ones(1, 1, 2, 4)
    keep[..., 0, :] = 0.0  # the first row is blank
    delta = torch.zeros(1, 1, 2, 4)
    delta[0, 0, 0] = torch.tensor([-4.0, 1.0, 2.2, 4.0])  # u = -1, 0.25, 0.55, 1
    delta[0, 0, 1] = 100.0  # kept pixels: ignored by M~ (and by the normalisation)
    blank = keep.expand_as(delta) == 0
    assert threshold(delta, keep, 0.5)[blank].tolist() == [0, 0, 1, 1]
    assert threshold(delta, keep, 0.6)[blank].tolist() == [0, 0, 0, 1]
    assert threshold(delta, keep, 0.0)[blank].tolist() == [0, 1, 1, 1]
    t = threshold_otsu(torch.tensor([0.25, 0.55, 1.0], dtype=torch.float64).numpy())
    expected = [0.0] + [float(v > t) for v in (0.25, 0.55, 1.0)]
    assert threshold(delta, keep, "otsu")[blank].tolist() == expected
    soft = threshold(delta, keep, "none")[blank]
    assert torch.allclose(soft, torch.tensor([0.0, 0.25, 0.55, 1.0]))
    assert torch.equal(threshold(delta, keep, None), threshold(delta, keep, "none"))
    for out in (threshold(delta, keep, b) for b in (0.5, "otsu", "none")):
        assert torch.all(out[~blank] == 0)  # kept pixels never change
    assert binarize_mode(0.5) == ("fixed", 0.5) and binarize_mode("otsu") == ("otsu", None)
    for bad in ("mean", 1.0, -0.1, True):
        with pytest.raises(ValueError, match="binarize"):
            binarize_mode(bad)


def test_table1_reports_every_image_short_of_n_star(model: nn.Module) -> None:
    """N* is reached, or the shortfall is reported per image (test image: N* reached)."""
    import numpy as np

    from visxai.evaluation import fill_blanks as fib

    st = _tiny_study()
    t1 = fib.table1(st, seeds=(0,), progress=False)
    for run, ns in t1.n_star.items():
        m = t1.min_correct[run]
        assert ns.shape == (len(t1.indices[run]), 1)
        line = next(ln for ln in t1.short_lines() if ln.startswith(f"{run}:"))
        bad = np.nonzero(ns[:, 0] <= m)[0]
        assert f"reached by {len(ns) - len(bad)} of {len(ns)} images" in line
        for i in bad:
            assert f"{int(t1.indices[run][i])}: {int(ns[i, 0])}" in line
    # a rarely correct image: force a shortfall with a tiny mask budget
    f = st.methods[st.settings.table_model].replace(min_correct=50, max_masks=20)
    with pytest.warns(RuntimeWarning, match="classified"):
        rp = fib.random_prototypes(f, st.data["mnist"][0][:2])
    assert (rp.n_star <= 20).all()
