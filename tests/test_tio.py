"""Properties of visxai.methods.tio (Algorithm 1 of the TIO paper and its classic baseline)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tiny_models import tio_cnn
from torch import nn

from visxai.evaluation import tio
from visxai.methods.tio import (
    GradientAscent,
    TIOResult,
    TransformationInvariantOptimizer,
    gray_images,
    mirror,
    pixel_to_input,
    predict_topk,
    replicate_estimate,
    replicate_seeds,
    replicate_starts,
    rotate,
    scale,
    screen_square,
    smoothed_argmax,
)

TO_INPUT = pixel_to_input([0.5] * 3, [0.5] * 3)


class _Constant(nn.Module):
    """Ignores its input: class 0 has probability ~1 whatever the image (for stopping tests)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([10.0] + [0.0] * 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), -1) + 0.0 * x.mean(dim=(1, 2, 3), keepdim=False)[:, None]


def _blob(size: int = 48) -> torch.Tensor:
    """A smooth, asymmetric pattern inside the inscribed disc (no content in the corners)."""
    yy, xx = torch.meshgrid(
        torch.arange(size) - size / 2, torch.arange(size) - size / 2, indexing="ij"
    )
    b = 200 * torch.exp(-((yy - 8) ** 2 + (xx + 5) ** 2) / 30.0)
    b += 120 * torch.exp(-((yy + 6) ** 2 + (xx - 9) ** 2) / 15.0)
    return b.expand(3, -1, -1)[None].clone()


def test_gray_images() -> None:
    x = gray_images([0, 60, 255], 16)
    assert x.shape == (3, 3, 16, 16)
    assert x[1].unique().tolist() == [60.0]
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        gray_images([300], 8)


def test_36_rotations_of_10_degrees_return_to_start() -> None:
    x = _blob()
    y = x.clone()
    for _ in range(36):
        y = rotate(y, 10.0)
    half = x.clone()
    for _ in range(18):
        half = rotate(half, 10.0)
    err_full = (y - x).abs().mean().item()
    err_half = (half - x).abs().mean().item()
    # one revolution is back at the start orientation (up to bilinear smoothing); half a turn is not
    assert err_full < 0.25 * err_half
    assert torch.equal(y.flatten(1).argmax(1), x.flatten(1).argmax(1))
    # the nearest-neighbour variant by 4 x 90 degrees is exact
    z = x.clone()
    for _ in range(4):
        z = rotate(z, 90.0, interpolation="nearest")
    assert torch.equal(z, x)


def test_rotation_fills_corners_with_zero() -> None:
    white = torch.full((1, 3, 32, 32), 255.0)
    r = rotate(white, 10.0)
    assert r[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert torch.allclose(r[0, :, 16, 16], torch.full((3,), 255.0))


def test_optimisation_raises_target_confidence_and_clips() -> None:
    model = tio_cnn()
    x0 = gray_images([0, 128, 255], 24)
    target = 3
    q0 = torch.softmax(model(TO_INPUT(x0)), 1)[:, target]
    tio = TransformationInvariantOptimizer(
        model, TO_INPUT, q_target=0.5, n_rotations=6, lr=8.0, max_steps_per_round=40
    )
    res = tio.optimize(x0, target)
    assert (res.q_final > q0).all()
    assert (res.steps > 0).all() and (res.rounds == 6).all()
    assert res.images.min() >= 0.0 and res.images.max() <= 255.0  # clipping in pixel space
    # every round that was not capped ended because q_C exceeded q_target; the run ends with an
    # optimisation round (6 rotations, 7 optimisation rounds), so the output itself passes
    assert all(len(s) == 7 and sum(s) == k for s, k in zip(res.steps_per_round, res.steps))
    assert (res.capped_rounds == 0).all() and (res.q_final > 0.5).all()
    # the classic baseline with the same step budget also raises q_C, and clips too
    ga = GradientAscent(model, TO_INPUT, lr=8.0)
    base = ga.optimize(x0, target, res.steps)
    assert (base.q_final > q0).all() and torch.equal(base.steps, res.steps)
    assert base.images.min() >= 0.0 and base.images.max() <= 255.0
    # from the black start, clipping removes every negative step: no pixel below 0, some at 0
    assert (res.images[0] == 0).any()


def test_batched_equals_one_at_a_time() -> None:
    model = tio_cnn(1)
    x0 = gray_images([20, 90, 200], 24)
    targets = torch.tensor([1, 5, 7])
    kw = dict(q_target=0.4, n_rotations=4, lr=6.0, max_steps_per_round=20)
    batched = TransformationInvariantOptimizer(model, TO_INPUT, **kw).optimize(x0, targets)
    for i in range(3):
        single = TransformationInvariantOptimizer(model, TO_INPUT, **kw).optimize(
            x0[i : i + 1], targets[i : i + 1]
        )
        assert single.steps.item() == batched.steps[i].item()
        assert torch.allclose(single.images[0], batched.images[i], atol=1e-2)


def test_each_image_has_its_own_stopping_state() -> None:
    model = _Constant()
    x0 = gray_images([50, 50], 8)
    tio = TransformationInvariantOptimizer(
        model, TO_INPUT, q_target=0.9, n_rotations=5, max_steps_per_round=3, stop_when_invariant=1
    )
    res = tio.optimize(x0, torch.tensor([0, 1]))
    # target 0 is already confident: the first rotated image passes the test -> stops after 1 round
    assert res.rounds.tolist() == [1, 5]
    assert res.steps[0].item() == 0
    # target 1 can never pass: every round (5 rotation rounds + the final one) hits the step cap,
    # the loop still terminates
    assert res.capped_rounds[1].item() == 6 and res.steps[1].item() == 18


def test_bad_inputs_raise() -> None:
    model = tio_cnn()
    tio = TransformationInvariantOptimizer(model, TO_INPUT)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        tio.optimize(torch.rand(1, 3, 8, 8) * 2 - 1, 0)  # a normalised tensor, not pixels
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        tio.optimize(torch.zeros(3, 8, 8), 0)
    with pytest.raises(ValueError, match="one target per image"):
        tio.optimize(gray_images([0, 1], 8), [0, 1, 2])
    with pytest.raises(ValueError, match="q_target"):
        TransformationInvariantOptimizer(model, TO_INPUT, q_target=1.5)


def test_screen_square_and_topk() -> None:
    x = gray_images([10], 16)
    s = screen_square(x, (4, 4, 8, 8), 127.5)
    assert s[0, :, 4:12, 4:12].unique().tolist() == [127.5] and s[0, 0, 0, 0] == 10
    with pytest.raises(ValueError, match="does not fit"):
        screen_square(x, (10, 10, 8, 8), 0.0)
    labels = [f"c{i}" for i in range(10)]
    top = predict_topk(_Constant(), TO_INPUT, x, labels, k=2)
    assert top[0][0][0] == "c0" and top[0][0][1] > 0.99


def test_replicate_seeds_and_starts_are_deterministic_and_small() -> None:
    assert replicate_seeds(0, 3) == [0, 1, 2]
    assert set(replicate_seeds(0, 6)).isdisjoint(
        replicate_seeds(1, 6)
    )  # two notebook seeds share no replicate
    x0 = gray_images([0, 60, 255], 16)
    a, b, c = replicate_starts(x0, 5), replicate_starts(x0, 5), replicate_starts(x0, 6)
    assert torch.equal(a, b) and not torch.equal(a, c)  # seeded: the same seed gives the same start
    assert a.min() >= 0 and a.max() <= 255  # clipped at black and white
    assert torch.equal(a.round(), x0)  # below one 8-bit step: the rounded start is unchanged
    assert (a[1] - x0[1]).abs().max() <= 0.5 and (a[1] != x0[1]).any()
    # the noise of one start does not depend on the other starts in the call
    assert torch.equal(replicate_starts(x0[1:2], 5), a[1:2])
    assert torch.equal(replicate_starts(x0, 5, amplitude=0.0), x0)
    with pytest.raises(ValueError):
        replicate_seeds(0, 0)


class _BatchSizeSensitive(nn.Module):
    """Adds a tiny term that depends on the batch size (a kernel whose blocking changes with N)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + 1e-3 * len(x)


def test_result_does_not_depend_on_batch_companions() -> None:
    model = tio_cnn(2)
    kw = dict(q_target=0.45, n_rotations=5, lr=6.0, max_steps_per_round=12, batch_size=4)
    x = replicate_starts(gray_images([40, 90, 140, 200, 250], 20), 3)
    t = torch.tensor([2, 4, 6, 8, 1])
    alone = TransformationInvariantOptimizer(_BatchSizeSensitive(model), TO_INPUT, **kw).optimize(
        x[:1], t[:1]
    )
    # other companions, another position, another number of jobs: bitwise the same run for job 0
    for perm in ([0, 1, 2, 3, 4], [3, 0, 4], [4, 2, 1, 3, 0]):
        r = TransformationInvariantOptimizer(_BatchSizeSensitive(model), TO_INPUT, **kw).optimize(
            x[perm], t[perm]
        )
        k = perm.index(0)
        assert torch.equal(r.images[k], alone.images[0])
        assert r.steps[k] == alone.steps[0] and r.steps_per_round[k] == alone.steps_per_round[0]
    # without fixed chunks the batch size leaks into the logits: the runs are not bitwise equal
    loose = TransformationInvariantOptimizer(
        _BatchSizeSensitive(model), TO_INPUT, fixed_chunks=False, **kw
    )
    a, b = loose.optimize(x[:1], t[:1]), loose.optimize(x, t)
    assert not torch.equal(a.images[0], b.images[0]) or a.q_final[0] != b.q_final[0]


def test_worker_processes_give_the_same_runs() -> None:
    # images dealt round-robin to 2 processes (fixed chunks of 2): every field bitwise equal
    kw = dict(q_target=0.45, n_rotations=4, lr=6.0, max_steps_per_round=10, batch_size=2)
    x = replicate_starts(gray_images([30, 80, 130, 180, 230], 16), 7)
    t = torch.tensor([2, 4, 6, 8, 1])
    one = TransformationInvariantOptimizer(tio_cnn(3), TO_INPUT, **kw).optimize(x, t)
    two = TransformationInvariantOptimizer(tio_cnn(3), TO_INPUT, workers=2, **kw).optimize(x, t)
    for name in ("images", "targets", "q_final", "steps", "rounds", "capped_rounds"):
        assert torch.equal(getattr(one, name), getattr(two, name)), name
    assert torch.equal(one.q_after_transform, two.q_after_transform)
    assert one.steps_per_round == two.steps_per_round
    assert one.q_after_rotation == two.q_after_rotation
    with pytest.raises(ValueError, match="workers must be >= 1"):
        TransformationInvariantOptimizer(tio_cnn(3), TO_INPUT, workers=0)


def test_every_capped_round_is_reported() -> None:
    model = _Constant()
    x0 = gray_images([50, 50, 50], 8)
    tio = TransformationInvariantOptimizer(
        model, TO_INPUT, q_target=0.9, n_rotations=4, max_steps_per_round=3
    )
    res = tio.optimize(x0, torch.tensor([1, 0, 2]))
    # classes 1 and 2 can never pass: every round is capped and counted, with its step count,
    # the final optimisation round too (4 rotations, 5 rounds)
    assert res.capped_rounds.tolist() == [5, 0, 5] and res.rounds.tolist() == [4, 4, 4]
    assert res.steps_per_round[0] == [3] * 5 and res.steps_per_round[1] == [0] * 5
    assert res.steps.tolist() == [15, 0, 15]
    # without the final round: the rotation rounds only
    res = tio.replace(final_optimize=False).optimize(x0, torch.tensor([1, 0, 2]))
    assert res.capped_rounds.tolist() == [4, 0, 4] and res.steps_per_round[0] == [3] * 4
    assert res.steps.tolist() == [12, 0, 12]


def test_smoothed_argmax() -> None:
    levels = [0, 10, 20, 30, 40, 50, 60]
    spike = [0, 0, 0, 0, 9, 0, 0]  # a single high level
    plateau = [0, 5, 5, 5, 0, 0, 0]
    assert smoothed_argmax(levels, spike, 1) == 40
    assert smoothed_argmax(levels, plateau, 3) == 20  # the centre of the plateau
    # a one-level spike beside a broad plateau: the plain argmax jumps, the smoothed one does not
    mixed = [0, 4, 4, 4, 0, 0, 7]
    assert smoothed_argmax(levels, mixed, 1) == 60 and smoothed_argmax(levels, mixed, 3) == 20
    with pytest.raises(ValueError):
        smoothed_argmax(levels, plateau, 4)


def test_replicate_estimate_covers_and_shrinks() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 6), rng.normal(1.0, 1.0, 60)
    e_small = replicate_estimate(lambda i: float(small[i].mean()), 6)
    e_large = replicate_estimate(lambda i: float(large[i].mean()), 60)
    assert e_small.lo <= e_small.value <= e_small.hi and e_small.n == e_small.seeds == 6
    assert (e_large.hi - e_large.lo) < (e_small.hi - e_small.lo)  # more replicates, narrower CI
    assert e_large.lo < 1.0 < e_large.hi
    # seeded: the same replicates give the same interval
    again = replicate_estimate(lambda i: float(small[i].mean()), 6)
    assert (again.lo, again.hi) == (e_small.lo, e_small.hi)
    one = replicate_estimate(lambda i: 3.0, 1)
    assert (one.value, one.lo, one.hi) == (3.0, 3.0, 3.0)


# --- Algorithm 1 as written: the final optimisation round, the open choices, scale and mirror ---


def test_mirror_is_an_exact_involution_and_keeps_the_range() -> None:
    x = torch.rand((2, 3, 9, 12), generator=torch.Generator().manual_seed(0)) * 255
    m = mirror(x)
    assert torch.equal(mirror(m), x) and not torch.equal(m, x)
    assert torch.equal(m[..., 0], x[..., -1])  # left-right: the first column is the last one
    assert m.min() >= 0 and m.max() <= 255 and torch.equal(m.sort().values, x.sort().values)


def test_scale_identity_border_and_range() -> None:
    x = torch.rand((2, 3, 20, 20), generator=torch.Generator().manual_seed(1)) * 255
    assert torch.equal(scale(x, 1.0), x)  # factor 1 is the identity, exactly
    for interp in ("bilinear", "nearest"):
        small = scale(x, 0.5, interp, fill=30.0)
        # shrunk to the centre: the border the content leaves is the fill value
        assert (small[..., :3, :] == 30.0).all() and (small[..., :, -3:] == 30.0).all()
        assert not (small[..., 8:12, 8:12] == 30.0).all()
        big = scale(x, 1.5, interp, fill=30.0)
        assert not (big[..., 0, :] == 30.0).any()  # zoomed in and cropped: no border
        for y in (small, big):
            assert y.shape == x.shape and y.min() >= 0 and y.max() <= 255
    # shrink then grow back: near the start inside the support (resampling smooths, no more)
    back = scale(scale(_blob(), 0.9), 1 / 0.9)
    assert (back - _blob())[..., 8:-8, 8:-8].abs().mean() < 2.0


def test_transforms_commute_with_a_constant_image() -> None:
    gray = gray_images([140.0], 24)
    assert torch.equal(mirror(gray), gray)
    assert torch.equal(scale(gray, 1.3, "nearest"), gray)  # zoom in: constant everywhere
    assert torch.allclose(scale(gray, 1.3), gray, atol=1e-3)
    shrunk = scale(gray, 0.8, "nearest", fill=0.0)
    inside = shrunk[..., 4:-4, 4:-4]  # the support of the shrunk image (about 19 of 24 pixels)
    assert torch.equal(inside, torch.full_like(inside, 140.0))
    assert torch.allclose(scale(gray, 0.8)[..., 4:-4, 4:-4], inside, atol=1e-3)


def test_positive_angle_turns_counter_clockwise() -> None:
    x = torch.zeros((1, 3, 11, 11))
    x[..., 5, 9] = 255.0  # a dot right of the centre (row 0 is the top of the displayed image)
    assert (rotate(x, 90.0, "nearest")[0, 0] == 255).nonzero().tolist() == [[1, 5]]  # top
    assert (rotate(x, -90.0, "nearest")[0, 0] == 255).nonzero().tolist() == [[9, 5]]  # bottom


def test_final_round_ends_above_q_target_and_reports_both_readings() -> None:
    model = tio_cnn(1)
    x0 = gray_images([0, 90, 200], 16)
    t = torch.tensor([3, 5, 1])
    kw = dict(q_target=0.4, n_rotations=4, lr=6.0, max_steps_per_round=60)
    end = TransformationInvariantOptimizer(model, TO_INPUT, **kw).optimize(x0, t)
    assert (end.capped_rounds == 0).all() and (end.q_final > 0.4).all()  # reachable: all pass
    assert (end.rounds == 4).all() and all(len(s) == 5 for s in end.steps_per_round)
    # q_after_transform is the transformation test of the last rotation, before the final round
    assert end.q_after_transform.tolist() == [q[-1] for q in end.q_after_rotation]
    # the rotations leave some outputs below q_target; the final round lifts them
    assert (end.q_after_transform <= 0.4).any()
    rot = TransformationInvariantOptimizer(model, TO_INPUT, final_optimize=False, **kw).optimize(
        x0, t
    )
    assert torch.equal(rot.q_after_transform, rot.q_final)
    # the same run up to the last rotation: the two readings agree (up to exp(log_softmax))
    assert torch.allclose(end.q_after_transform, rot.q_final, rtol=1e-5)
    assert torch.equal(end.steps - rot.steps, torch.tensor([s[-1] for s in end.steps_per_round]))


def test_without_final_round_the_images_are_those_of_the_old_loop() -> None:
    # numbers recorded from the loop before final_optimize / objective / step_rule / transforms
    tio = TransformationInvariantOptimizer(
        tio_cnn(1),
        TO_INPUT,
        q_target=0.5,
        n_rotations=4,
        lr=6.0,
        max_steps_per_round=10,
        final_optimize=False,
    )
    res = tio.optimize(gray_images([0, 90, 200], 16), torch.tensor([3, 5, 1]))
    assert res.steps.tolist() == [12, 8, 40] and res.capped_rounds.tolist() == [0, 0, 4]
    assert res.q_final.tolist() == pytest.approx([0.317229, 0.412765, 0.014046], abs=2e-6)
    assert res.images.double().sum().item() == pytest.approx(152823.862, rel=1e-6)
    assert res.images[1, 0, 3, 5].item() == pytest.approx(72.45869, abs=1e-3)
    assert res.images[2, 1, 8, 8].item() == pytest.approx(31.83538, abs=1e-3)
    assert torch.equal(res.q_after_transform, res.q_final)


class _Linear(nn.Module):
    """Logits ``z = W x + b`` of the flattened pixels (a hand-computable gradient)."""

    def __init__(self, size: int = 4, classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.w = nn.Parameter(torch.randn((classes, 3 * size * size), generator=g) * 0.01)
        self.b = nn.Parameter(torch.tensor([0.5, 0.0, -0.5][:classes]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b


def test_objective_and_step_rule_take_the_documented_step() -> None:
    model, c, lr = _Linear(), 1, 2.0
    x0 = gray_images([128.0], 4)
    w = model.w.detach()
    p = torch.softmax(model(x0).detach(), 1)[0]
    grads = {"logit": w[c], "log_prob": w[c] - p @ w}  # d z_C / dx and d log q_C / dx
    for objective, g in grads.items():
        g = g.view(1, 3, 4, 4)
        expected = {"normalized": x0 + lr * g / g.abs().mean(), "sign": x0 + lr * g.sign()}
        for rule, want in expected.items():
            kw = dict(lr=lr, objective=objective, step_rule=rule, channels_last=False)
            # one optimisation round of one step and no transformation: exactly one step
            tio = TransformationInvariantOptimizer(
                model, lambda x: x, q_target=0.99, n_rotations=0, max_steps_per_round=1, **kw
            )
            res = tio.optimize(x0, c)
            assert res.steps.tolist() == [1] and res.rounds.tolist() == [0]
            assert torch.allclose(res.images, want, atol=1e-4), (objective, rule)
            base = GradientAscent(model, lambda x: x, **kw).optimize(x0, c, 1)
            assert torch.allclose(base.images, want, atol=1e-4), (objective, rule)
            # whatever the objective, q_C is the softmax confidence of the output
            q = torch.softmax(model(res.images), 1)[0, c]
            assert res.q_final.item() == pytest.approx(q.item(), abs=1e-6)
    sign = TransformationInvariantOptimizer(model, lambda x: x, step_rule="sign", lr=lr)
    assert set((sign.step(x0, grads["logit"].view(1, 3, 4, 4)) - x0).abs().unique().tolist()) == {
        lr
    }  # every pixel moves by exactly lr gray levels


def test_round_transforms_cycle_and_scale_alternates() -> None:
    tio = TransformationInvariantOptimizer(
        _Constant(), TO_INPUT, angle=-10.0, transforms=("rotate", "scale", "mirror")
    )
    assert [tio.round_transform(i) for i in range(6)] == [
        ("rotate", -10.0),
        ("scale", 0.9),
        ("mirror", 0.0),
        ("rotate", -10.0),
        ("scale", 1 / 0.9),
        ("mirror", 0.0),
    ]
    only = tio.replace(transforms=("scale",), scale_factor=0.8)
    assert [only.round_transform(i)[1] for i in range(4)] == [0.8, 1.25, 0.8, 1.25]
    # through the loop: a confident class takes no step, so the output is the transforms' result
    x0 = replicate_starts(_blob(16), 0, amplitude=20.0)
    flips = tio.replace(transforms=("mirror",), n_rotations=3).optimize(x0, 0)
    assert torch.equal(flips.images, mirror(x0)) and flips.steps.item() == 0
    turns = tio.replace(transforms=("mirror", "rotate"), angle=90.0, interpolation="nearest")
    out = turns.replace(n_rotations=8).optimize(x0, 0)  # 4 flips, 4 quarter turns
    assert torch.equal(out.images, x0) and out.rounds.item() == 8


def test_several_transforms_batched_equal_one_at_a_time() -> None:
    model = tio_cnn(1)
    x0 = gray_images([20, 90, 200], 24)
    targets = torch.tensor([1, 5, 7])
    kw = dict(
        q_target=0.4,
        n_rotations=6,
        lr=6.0,
        max_steps_per_round=20,
        transforms=("rotate", "scale", "mirror"),
    )
    batched = TransformationInvariantOptimizer(model, TO_INPUT, **kw).optimize(x0, targets)
    assert batched.images.min() >= 0 and batched.images.max() <= 255
    assert (batched.rounds == 6).all()
    for i in range(3):
        single = TransformationInvariantOptimizer(model, TO_INPUT, **kw).optimize(
            x0[i : i + 1], targets[i : i + 1]
        )
        assert single.steps_per_round[0] == batched.steps_per_round[i]
        assert torch.allclose(single.images[0], batched.images[i], atol=1e-2)


def test_bad_choices_raise_naming_the_choices() -> None:
    model = tio_cnn()
    bad = [
        (dict(objective="prob"), r"objective must be one of \['log_prob', 'logit'\]"),
        (dict(step_rule="adam"), r"step_rule must be one of \['normalized', 'sign'\]"),
        (dict(transforms=("shear",)), r"transform must be one of \['rotate', 'scale', 'mirror'\]"),
        (dict(transforms=()), "at least one"),
        (dict(scale_factor=0.0), "scale_factor must be > 0"),
        (dict(interpolation="cubic"), "interpolation must be one of"),
    ]
    for kw, msg in bad:
        with pytest.raises(ValueError, match=msg):
            TransformationInvariantOptimizer(model, TO_INPUT, **kw)
    with pytest.raises(ValueError, match="objective"):
        GradientAscent(model, TO_INPUT, objective="logits")
    with pytest.raises(ValueError, match="factor must be > 0"):
        scale(gray_images([0], 8), -1.0)
    with pytest.raises(ValueError, match="fill"):
        scale(gray_images([0], 8), 0.5, fill=300.0)
    # replace carries the choices and keeps the others
    opt = TransformationInvariantOptimizer(model, TO_INPUT, objective="logit", step_rule="sign")
    other = opt.replace(transforms=("rotate", "mirror"), final_optimize=False)
    assert (other.objective, other.step_rule, other.final_optimize) == ("logit", "sign", False)
    assert other.transforms == ("rotate", "mirror") and opt.transforms == ("rotate",)


# --- notebook 03's protocol: settings, replicate jobs, studies, reports ---

CLS = {"soccer ball": 0, "Persian cat": 1, "laptop": 2, "goldfish": 3}


def _jobs(fig2_levels=(0, 50, 90)) -> tio.ReplicateJobs:
    return tio.ReplicateJobs.build(
        CLS, [0, 30, 50, 60, 90], fig2_levels, 2, 4, fig2_classes=("soccer ball", "Persian cat")
    )


def test_profiles_change_only_configuration() -> None:
    off, paper = tio.PROFILES["offline"], tio.PROFILES["paper"]
    assert set(off.__dataclass_fields__) == set(paper.__dataclass_fields__)
    assert off.replicates <= off.replicates_sweep and paper.fig2_levels is None
    assert off.grass == paper.grass and off.screened == paper.screened


def test_replicate_jobs_order_and_indices() -> None:
    jobs = _jobs()
    # the sweep class at every level x 4 replicates; other classes at black x 2; Fig. 2 levels
    assert len(jobs) == 5 * 4 + 3 * 2 + 2 * 2
    assert jobs.jobs[:5] == [("soccer ball", g, 0) for g in [0, 30, 50, 60, 90]]
    assert jobs.jobs[20:23] == [("Persian cat", 0, 0), ("laptop", 0, 0), ("goldfish", 0, 0)]
    assert jobs.jobs[-2:] == [("Persian cat", 50, 1), ("Persian cat", 90, 1)]
    assert len(set(jobs.jobs)) == len(jobs)  # every job once
    for i, j in enumerate(jobs.jobs):
        assert jobs.index(*j) == i
    ids = jobs.ids("Persian cat", [0, 50, 90], [1, 0])
    assert ids.shape == (2, 3) and [jobs.jobs[k] for k in ids[0]][1] == ("Persian cat", 50, 1)
    black = jobs.black_starts(["laptop", "soccer ball"])
    assert [jobs.jobs[k] for k in black] == [
        ("laptop", 0, 0),
        ("soccer ball", 0, 0),
        ("laptop", 0, 1),
        ("soccer ball", 0, 1),
    ]
    assert jobs.targets.tolist() == [CLS[c] for c, _, _ in jobs.jobs]
    # replicate units partition the replicates of every class
    assert jobs.class_replicates("soccer ball", [0]) == [0, 2]
    assert sorted(jobs.class_replicates("soccer ball", [0, 1])) == [0, 1, 2, 3]
    assert jobs.class_replicates("laptop", [1, 1]) == [1, 1]
    assert jobs.levels_of("laptop") == [0, 50, 90] and jobs.levels_of("soccer ball")[1] == 30
    # no fig2 levels: the whole sweep for the other Fig. 2 classes too
    assert _jobs(None).levels_of("Persian cat") == [0, 30, 50, 60, 90]
    with pytest.raises(KeyError):
        jobs.index("laptop", 50, 0)


def test_replicate_jobs_starts_are_the_replicate_starts() -> None:
    jobs = _jobs()
    seeds = replicate_seeds(1, 4)
    starts, clean = jobs.starts(8, seeds, 0.5), jobs.clean(8)
    for k in [0, 7, 25]:
        c, g, r = jobs.jobs[k]
        assert torch.equal(starts[k], replicate_starts(gray_images([g], 8), seeds[r], 0.5)[0])
        assert torch.equal(clean[k], gray_images([g], 8)[0])
    assert (starts - clean).abs().max() <= 0.5


def test_replace_and_for_model_keep_every_other_parameter() -> None:
    model = tio_cnn(3)
    lm = SimpleNamespace(model=model, mean=(0.5,) * 3, std=(0.5,) * 3)
    opt = TransformationInvariantOptimizer.for_model(
        lm, 0.45, 10.0, 3, 6.0, 12, batch_size=2, progress=False
    )
    assert (opt.q_target, opt.n_rotations, opt.lr, opt.max_steps_per_round) == (0.45, 3, 6.0, 12)
    other = opt.replace(angle=90.0, n_rotations=2)
    assert (other.angle, other.n_rotations, other.lr, other.batch_size) == (90.0, 2, 6.0, 2)
    assert other.model is opt.model and opt.n_rotations == 3  # the original is unchanged
    x, t = gray_images([40, 200], 16), torch.tensor([1, 4])
    same = opt.replace().optimize(x, t)
    assert torch.equal(same.images, opt.optimize(x, t).images)
    moved = opt.replace(model=SimpleNamespace(model=tio_cnn(4), mean=lm.mean, std=lm.std))
    assert moved.model is not opt.model and moved.q_target == 0.45
    with pytest.raises(TypeError, match="unknown"):
        opt.replace(learning_rate=1.0)


def _fake_result(images: torch.Tensor, steps: torch.Tensor | None = None) -> TIOResult:
    n = len(images)
    zeros = torch.zeros(n, dtype=torch.long)
    steps = zeros if steps is None else steps
    return TIOResult(images, zeros, torch.ones(n), steps, zeros, zeros)


def test_gray_change_study_finds_the_planted_minimum() -> None:
    jobs = _jobs()
    clean = jobs.clean(16)
    # every output is its start plus a change that is smallest at gray 50: |g - 50| + 1
    change = torch.tensor([abs(g - 50) + 1.0 for _, g, _ in jobs.jobs]).view(-1, 1, 1, 1)
    st = tio.gray_change_study(
        jobs, _fake_result(clean + change), clean, ("soccer ball", "Persian cat")
    )
    assert (st.whole.value, st.whole.lo, st.whole.hi) == (50.0, 50.0, 50.0)
    assert st.disc.value == 50.0 and st.v_whole == "agrees" and st.v_disc == "observed"
    assert st.dist_127.value == 77.0 and st.v_127 == "holds"
    assert st.argmins().to_dict("list") == {"whole": [50, 50], "disc": [50, 50]}
    curves = st.curves()
    assert set(curves.replicates) == {4, 2}  # 4 sweep replicates, 2 of the other class
    assert st.report().splitlines()[0].endswith(": agrees")
    assert list(st.claims().values()) == ["agrees", "holds"]
    assert "inscribed disc" not in st.report() and "observed" in st.summary()


def test_entropy_study_statistics_match_their_definitions() -> None:
    import numpy as np
    from scipy.stats import spearmanr

    levels = [0, 10, 60, 120, 250]
    jobs = tio.ReplicateJobs.build(CLS, levels, None, 2, 4)
    g = torch.Generator().manual_seed(0)
    images = torch.rand((len(jobs), 3, 24, 24), generator=g) * 255
    st = tio.entropy_study(jobs, _fake_result(images), window=5)
    assert st.entropy.shape == st.second_order.shape == (4, 5)
    lv = np.array(levels)
    assert st.rho.value == pytest.approx(spearmanr(lv, st.entropy.mean(0)).statistic)
    assert st.rise.value == pytest.approx((st.second_order[:, 0] - st.second_order[:, 1]).mean())
    assert st.v_rise == "inconclusive" or abs(st.rise.value) > tio.RISE_MARGIN
    assert set(st.claims()) >= {"Fig. 4: rise at the black start"}
    assert len(st.report_peak().splitlines()) == 3 and len(st.run_argmax()) == 4


def test_inversion_study_counts_only_runs_top1_before() -> None:
    jobs = _jobs()
    lm = SimpleNamespace(model=_Constant(), mean=(0.5,) * 3, std=(0.5,) * 3)
    st = tio.inversion_study(lm, jobs, _fake_result(jobs.clean(8)), ["soccer ball", "laptop"])
    # the constant model says class 0 whatever the image: the soccer ball (0) is top-1 before and
    # after the inversion, the laptop never: the fraction lost is over the soccer ball runs only
    assert st.table.top1_before.tolist() == [True, False, True, False]
    assert (st.lost.value, st.lost.n) == (0.0, 2) and st.verdict == "differs"


def test_high_frequency_comparison_gives_each_classic_run_the_same_steps() -> None:
    jobs = _jobs()
    model = tio_cnn(5)
    opt = TransformationInvariantOptimizer(model, TO_INPUT, 0.4, 10.0, 2, 6.0, 10, batch_size=4)
    starts = jobs.starts(16, replicate_seeds(0, 4), 0.5)
    res = opt.optimize(starts, jobs.targets)
    cmp = tio.compare_high_frequency(opt, jobs, starts, res, ("soccer ball", "laptop"), False)
    idx = jobs.black_starts(("soccer ball", "laptop"))
    assert torch.equal(cmp.classic.steps, res.steps[idx])
    assert torch.equal(cmp.rotation_images, res.images[idx]) and len(cmp.table) == 4
    assert cmp.report().endswith("pairs: 4")


def test_run_report_states_counts_and_checks() -> None:
    jobs = _jobs()
    res = _fake_result(jobs.clean(8))
    res.rounds[:] = 3
    res.steps_per_round = [[0, 0, 0, 0] for _ in range(len(jobs))]
    lines = tio.run_report(jobs, res, 0.9, 3, 25).splitlines()
    assert (
        lines[0]
        == "runs: 30 (4 replicates x 5 soccer-ball levels, 2 replicates of every other start)"
    )
    assert lines[1].endswith("True") and lines[2].endswith("True") and lines[3].endswith("True")
    assert lines[4].endswith("CI inside [0.4, 0.9]: False")  # every q_C is 1 > 0.9
    # a run that ends below q_target without a capped last round is flagged
    res.q_final[0] = 0.1
    assert tio.run_report(jobs, res, 0.9, 3, 25).splitlines()[3].endswith("False")
    res.steps_per_round[0][-1] = 25
    assert tio.run_report(jobs, res, 0.9, 3, 25).splitlines()[3].endswith("True")
