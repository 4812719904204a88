"""Properties of visxai.methods.tio (Algorithm 1 of the TIO paper and its classic baseline)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visxai.methods.tio import (
    GradientAscent,
    TransformationInvariantOptimizer,
    gray_images,
    pixel_to_input,
    predict_topk,
    replicate_estimate,
    replicate_seeds,
    replicate_starts,
    rotate,
    screen_square,
    smoothed_argmax,
)

TO_INPUT = pixel_to_input([0.5] * 3, [0.5] * 3)


def _tiny_cnn(seed: int = 0) -> nn.Module:
    """A small random CNN whose weights are scaled up so that a target class is reachable."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 10, 3, stride=2, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    return model


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
    model = _tiny_cnn()
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
    # every round that was not capped ended because q_C exceeded q_target
    assert all(len(s) == 6 for s in res.steps_per_round)
    assert (res.capped_rounds == 0).all()
    # the classic baseline with the same step budget also raises q_C, and clips too
    ga = GradientAscent(model, TO_INPUT, lr=8.0)
    base = ga.optimize(x0, target, res.steps)
    assert (base.q_final > q0).all() and torch.equal(base.steps, res.steps)
    assert base.images.min() >= 0.0 and base.images.max() <= 255.0
    # from the black start, clipping removes every negative step: no pixel below 0, some at 0
    assert (res.images[0] == 0).any()


def test_batched_equals_one_at_a_time() -> None:
    model = _tiny_cnn(1)
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
    # target 1 can never pass: every round hits the step cap, the loop still terminates
    assert res.capped_rounds[1].item() == 5 and res.steps[1].item() == 15


def test_bad_inputs_raise() -> None:
    model = _tiny_cnn()
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
    """Adds a tiny term that depends on the batch size (like a kernel whose blocking changes with N)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + 1e-3 * len(x)


def test_result_does_not_depend_on_batch_companions() -> None:
    model = _tiny_cnn(2)
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


def test_every_capped_round_is_reported() -> None:
    model = _Constant()
    x0 = gray_images([50, 50, 50], 8)
    tio = TransformationInvariantOptimizer(
        model, TO_INPUT, q_target=0.9, n_rotations=4, max_steps_per_round=3
    )
    res = tio.optimize(x0, torch.tensor([1, 0, 2]))
    # classes 1 and 2 can never pass: every round is capped and counted, with its step count
    assert res.capped_rounds.tolist() == [4, 0, 4]
    assert res.steps_per_round[0] == [3, 3, 3, 3] and res.steps_per_round[1] == [0, 0, 0, 0]
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
