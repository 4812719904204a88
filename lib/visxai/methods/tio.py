"""Transformation invariant optimisation (Li et al., "Towards interpreting computer vision based on
transformation invariant optimization", Algorithm 1) and the classic gradient-ascent baseline.

Algorithm 1 (paper, Sec. 2.1)::

    input: initial image M_i, target class C, stopping criterion S
    while S is not true:
        optimisation:   gradient-based optimisation of M_i until q_C > q_target  -> M_o
        transformation: rotate M_o (10 degrees; rotated-out corners filled with zero RGB) -> M_i
        evaluation:     transformation test; leave the loop when S holds
    output: the visualisation image

Everything lives in *pixel space*: images are float tensors ``[B, 3, H, W]`` with values in
[0, 255] (as in the paper, where the start images are gray levels (g, g, g), g = 0..255, the
corners are filled with RGB (0, 0, 0) and the image is clipped to [0, 255]). The model sees
``(x / 255 - mean) / std``.

Batched: :class:`TransformationInvariantOptimizer` optimises many start images at once (gray
levels x classes). Every image carries its own state (current round, steps in the round, done);
each iteration runs one forward+backward pass over the *unfinished* images only and, per image,
either takes a gradient step (``q_C <= q_target``) or ends its round with a transformation
(the final round, without one, ends the image's run).

Decisions where the paper is silent (all are constructor arguments; defaults documented here):

* objective (``objective``): ascent on ``log q_C`` (``"log_prob"``, the log-softmax of the target
  class; default). The paper's stopping rule is stated on the confidence ``q_C``; the
  log-probability raises ``q_C`` directly rather than a logit that can grow together with its
  competitors. ``"logit"`` ascends the class logit ``z_C`` (Simonyan et al.'s class score
  ``S_C``); the stopping test stays on the softmax ``q_C`` either way.
* step (``step_rule``): normalised gradient ascent ``x <- clip(x + lr * g / mean|g|, 0, 255)``
  per image (``"normalized"``, the DeepDream normalisation; default), so ``lr`` reads as "mean
  change in gray levels per step" independently of the model's gradient scale. Default
  ``lr = 2``. ``"sign"`` takes ``x <- clip(x + lr * sign(g), 0, 255)`` (every pixel moves by
  ``lr``; the fast-gradient-sign step), as scale-free but blind to the gradient's shape.
* ``q_target = 0.9``; a round also ends after ``max_steps_per_round`` steps so that an
  unreachable target cannot hang the loop (the count of such rounds is reported).
* rotation: by ``angle = 10`` degrees, counter-clockwise for a positive angle (the paper does
  not give the direction; a negative ``angle`` turns clockwise), bilinear interpolation about
  the image centre (torchvision's ``rotate``), corners filled with ``fill = 0`` (black, the
  paper's zero RGB). Bilinear resampling slightly low-pass filters every round; nearest
  neighbour is available via ``interpolation="nearest"``.
* transformations (``transforms``, default ``("rotate",)``: the paper's figures): the abstract
  also names scaling and symmetry, without a protocol. Round ``i`` applies
  ``transforms[i % len(transforms)]``: ``"scale"`` resamples about the centre (:func:`scale`,
  the same ``interpolation`` and ``fill``), by ``scale_factor = 0.9`` and ``1 / scale_factor`` on
  alternate scale rounds so that the net scale stays near 1 (a fixed factor would shrink the
  content to a dot or zoom it out of the frame); ``"mirror"`` is the left-right flip
  (:func:`mirror`, exact). ``n_rotations`` then counts the rounds of all transforms together.
* stopping criterion S: one full revolution, i.e. ``n_rotations = 36`` rotations by 10 degrees
  (the setting of all the paper's figures). The evaluation step records ``q_C`` of the freshly
  rotated image (the transformation test); with ``stop_when_invariant = k`` an image also stops
  once ``k`` consecutive rotated images passed the test without needing a gradient step.
* the run ends with an optimisation (``final_optimize=True``, default): Algorithm 1 leaves the
  loop after the evaluation step, so its output is the last *optimised* image; after the last
  transformation one more round ascends until ``q_C > q_target`` or the cap (its steps count in
  ``steps``, a capped final round in ``capped_rounds``; ``rounds`` stays the number of
  transformations). Both readings are reported: ``q_after_transform`` (the transformation test
  of the last transformation) and ``q_final`` (the output). With ``final_optimize=False`` the
  output is the image after the last rotation (back in its start orientation), as before.
* the notebook's offline run uses ``lr = 4`` and ``max_steps_per_round = 25`` (fewer passes on a
  CPU); hard classes (laptop, goldfish, ...) then hit the cap in a few rounds, which is reported.
* batching: the batch *size* changes the float summation order of a real network's kernels (oneDNN
  blocks differently), and Algorithm 1 is chaotic: one rounding difference moves the whole
  trajectory. With ``fixed_chunks=True`` (default) every forward/backward pass runs on chunks of
  exactly ``batch_size`` images (the last chunk padded with black images whose results are
  dropped), so an image's result does not depend on which, or how many, other jobs share its run
  (measured bitwise for EfficientNet-Lite0 on CPU; tests/test_tio.py). It still depends on the
  CPU's numerics: that is what the replicates below are for. For the same reason ``workers > 1``
  (CPU processes of one thread each, :func:`visxai.device.process_map`) changes no result: the
  images are dealt round-robin to the processes, each runs its share in the same fixed chunks.
* replicates: the trajectory is chaotic, so one run per start is not a result.
  :func:`replicate_starts` adds seeded uniform noise of amplitude ``0.5`` gray levels (below
  one 8-bit step: the rounded start image is unchanged) to a start; :func:`replicate_seeds`
  derives the replicate seeds from a notebook seed (seed 0 -> 0, 1, 2, ...; seed 1 -> 1000,
  1001, ...). Statistics of replicated curves come with a bootstrap CI over replicates
  (:func:`replicate_estimate`).
* classic baseline (Fig. 1, row 1): the same ascent step (the same ``objective`` and
  ``step_rule``) without transformations, run for a given number of steps per image
  (notebook 03 matches each image's step count in Algorithm 1).
* every parameter is a constructor argument; ``optimize`` takes only the data (start images,
  targets; for the baseline also the per-image step budgets).
* notebook 03's protocol (its profiles, the replicate jobs, the studies of Figs. 1-7 and the
  gallery with their verdicts and scorecard rows, and its figures) is
  :mod:`visxai.evaluation.tio`: the notebook configures, calls, plots and explains.

Written by hand because no library implements Algorithm 1 (Captum's / lucent's feature
visualisation use random jitter / transform-robust losses, not the iterate-then-rotate scheme);
the transformations themselves are library calls: torchvision's ``rotate`` and ``affine`` (the
scaling), ``torch.flip`` (the mirror).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..checks import check_images
from ..device import iter_chunks
from ..layers import Normalizer
from ..models.inference import inference_copy
from ..stats import CONFIDENCE, Estimate
from ..targets import as_targets

if TYPE_CHECKING:  # annotations only
    from ..models import LoadedModel

__all__ = [
    "gray_images",
    "rotate",
    "scale",
    "mirror",
    "OBJECTIVES",
    "STEP_RULES",
    "TRANSFORMS",
    "screen_square",
    "pixel_to_input",
    "to_pixels",
    "TIOResult",
    "TransformationInvariantOptimizer",
    "GradientAscent",
    "predict_topk",
    "replicate_seeds",
    "replicate_starts",
    "replicate_estimate",
    "smoothed_argmax",
]

_INTERP = {"bilinear": InterpolationMode.BILINEAR, "nearest": InterpolationMode.NEAREST}
OBJECTIVES = ("log_prob", "logit")  # what the ascent raises: log q_C, or the class logit
STEP_RULES = ("normalized", "sign")  # x + lr g / mean|g|, or x + lr sign(g)
TRANSFORMS = ("rotate", "scale", "mirror")  # the abstract's rotation, scaling and symmetry


def _check_choice(value: object, choices: Sequence[str], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def gray_images(
    levels: Sequence[float] | torch.Tensor, size: int | tuple[int, int]
) -> torch.Tensor:
    """Start images of constant RGB ``(g, g, g)`` for every gray level ``g`` (paper Sec. 2.2).

    Returns ``[len(levels), 3, H, W]`` float32 in [0, 255].
    """
    levels = torch.as_tensor(levels, dtype=torch.float32).flatten()
    if levels.numel() == 0:
        raise ValueError("gray_images needs at least one gray level")
    if (levels < 0).any() or (levels > 255).any():
        raise ValueError(f"gray levels must lie in [0, 255], got {levels.tolist()}")
    h, w = (size, size) if isinstance(size, int) else size
    return levels.view(-1, 1, 1, 1).expand(-1, 3, h, w).contiguous()


def _check_pixels(x: torch.Tensor, name: str = "images") -> None:
    check_images(
        x,
        name=name,
        ndim=4,
        channels=3,
        value_range=(0.0, 255.0),
        tol=0.0,
        hint="TIO works in pixel space",
    )


def rotate(
    x: torch.Tensor, angle: float, interpolation: str = "bilinear", fill: float = 0.0
) -> torch.Tensor:
    """Rotate a batch ``[B, C, H, W]`` by ``angle`` degrees (counter-clockwise) about its centre.

    The direction is the sign of ``angle``: positive turns counter-clockwise (torchvision's
    convention, as the image is displayed), negative clockwise. Pixels rotated in from outside the
    square are ``fill`` (0 = black, Algorithm 1's zero RGB).
    """
    _check_choice(interpolation, list(_INTERP), "interpolation")
    return TF.rotate(x, float(angle), interpolation=_INTERP[interpolation], fill=float(fill))


def scale(
    x: torch.Tensor, factor: float, interpolation: str = "bilinear", fill: float = 0.0
) -> torch.Tensor:
    """Resample a batch ``[B, C, H, W]`` by ``factor`` about its centre, at the same size.

    Notebook 03 / TIO, the abstract's scaling. ``factor < 1`` shrinks the content and fills the
    border it leaves with ``fill``; ``factor > 1`` zooms in and crops. ``factor == 1`` is the
    identity and returns a copy without resampling (torchvision's bilinear identity resample is
    off by ~1e-4). Resampling is a convex combination of pixels and ``fill``, so an image in
    [0, 255] with ``fill`` in [0, 255] stays there (clipped, against rounding).
    """
    _check_choice(interpolation, list(_INTERP), "interpolation")
    if not factor > 0:
        raise ValueError(f"scale factor must be > 0, got {factor}")
    if not 0.0 <= fill <= 255.0:
        raise ValueError(f"fill must be a pixel value in [0, 255], got {fill}")
    if factor == 1:
        return x.clone()
    out = TF.affine(
        x,
        angle=0.0,
        translate=[0, 0],
        scale=float(factor),
        shear=[0.0, 0.0],
        interpolation=_INTERP[interpolation],
        fill=float(fill),
    )
    return out.clamp_(0.0, 255.0)


def mirror(x: torch.Tensor) -> torch.Tensor:
    """Left-right flip of a batch ``[B, C, H, W]`` (notebook 03 / TIO, the abstract's symmetry).

    ``torch.flip`` of the width axis: no resampling, an exact involution (``mirror(mirror(x))``
    is ``x``), values unchanged.
    """
    return torch.flip(x, dims=(-1,))


def screen_square(
    x: torch.Tensor, box: tuple[int, int, int, int], value: float | Sequence[float]
) -> torch.Tensor:
    """Fill ``box = (top, left, height, width)`` of ``x`` ``[.., 3, H, W]`` with RGB ``value``.

    Notebook 03 / TIO, Fig. 7.

    The paper's "zero square" is the pixel value that the model sees as input 0: black for a
    model fed raw pixels, ``255 * mean`` for a normalised one (gray 127.5 for inputs in [-1, 1]).
    """
    top, left, h, w = (int(v) for v in box)
    if h <= 0 or w <= 0 or top < 0 or left < 0 or top + h > x.shape[-2] or left + w > x.shape[-1]:
        raise ValueError(f"box {box} does not fit an image of size {tuple(x.shape[-2:])}")
    out = x.clone()
    val = torch.as_tensor(value, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    out[..., top : top + h, left : left + w] = val
    return out


def pixel_to_input(mean: Sequence[float], std: Sequence[float]) -> Normalizer:
    """The map pixel space [0, 255] -> model input ``(x / 255 - mean) / std`` (differentiable)."""
    return Normalizer(mean, std, scale=255.0)


def to_pixels(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Inverse of :func:`pixel_to_input`: a normalised model input -> pixel space [0, 255]."""
    return Normalizer(mean, std, inverse=True, scale=255.0)(x).clamp(0.0, 255.0)


@dataclass
class TIOResult:
    """Output of an optimisation run (one entry per start image).

    ``q_after_transform`` is ``q_C`` of the image right after its last transformation, before
    the final optimisation round (``final_optimize``); without a final round, and for the
    baseline, it is ``q_final`` (the default when it is not given). ``steps_per_round`` lists
    every optimisation round, the final one last (``rounds + 1`` entries with a final round).
    """

    images: torch.Tensor  # [B, 3, H, W] in [0, 255], CPU
    targets: torch.Tensor  # [B]
    q_final: torch.Tensor  # [B] target confidence of the output image
    steps: torch.Tensor  # [B] gradient steps taken in total (the final round's included)
    rounds: torch.Tensor  # [B] transformations done
    capped_rounds: torch.Tensor  # [B] rounds (the final one too) that hit max_steps_per_round
    q_after_transform: torch.Tensor | None = None  # [B] q_C after the last transformation
    q_after_rotation: list[list[float]] = field(default_factory=list)  # per image, per round
    steps_per_round: list[list[int]] = field(default_factory=list)  # per image, per round

    def __post_init__(self) -> None:
        if self.q_after_transform is None:
            self.q_after_transform = self.q_final.clone()


class _Ascent:
    """Shared step rule: ascent on the ``objective`` in pixel space by the ``step_rule``, clipped
    to [0, 255] (defaults: normalised ascent on log q_C; see the module docstring).

    Every parameter is a constructor argument (``progress``: a tqdm bar, its text when a
    string); the ``optimize`` call takes only the data. :meth:`replace` gives a copy with some
    parameters changed (the same model).
    """

    def __init__(
        self,
        model: nn.Module,
        to_input: Callable[[torch.Tensor], torch.Tensor],
        lr: float = 2.0,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        channels_last: bool = True,
        fixed_chunks: bool = True,
        progress: bool | str = False,
        objective: str = "log_prob",
        step_rule: str = "normalized",
        workers: int = 1,
    ) -> None:
        self._params = {
            k: v for k, v in locals().items() if k not in ("self", "model", "to_input", "__class__")
        }
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        _check_choice(objective, OBJECTIVES, "objective")
        _check_choice(step_rule, STEP_RULES, "step_rule")
        self.objective = objective
        self.step_rule = step_rule
        # a frozen copy with batch norm folded into the convolutions: the same function (and
        # input gradient) up to float rounding, fewer passes (visxai.models.inference)
        self.model = inference_copy(model, channels_last=channels_last)
        self.to_input = to_input
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        self.channels_last = channels_last
        self.fixed_chunks = bool(fixed_chunks)
        self.progress = progress
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self._sink: Any = None  # in a worker process: the relay to the parent's progress bar

    @classmethod
    def for_model(cls, lm: LoadedModel, *args: Any, **params: Any):
        """The optimiser for a loaded model: its network and its pixel map (:func:`pixel_to_input`
        of its mean and std); ``args`` / ``params`` are the constructor's other parameters."""
        return cls(lm.model, pixel_to_input(lm.mean, lm.std), *args, **params)

    def replace(self, model: LoadedModel | None = None, **changes: Any):
        """A new optimiser with ``changes`` to the parameters, on the same network and input map,
        or on the loaded model ``model`` (its network and :func:`pixel_to_input`)."""
        unknown = set(changes) - set(self._params)
        if unknown:
            raise TypeError(f"unknown parameters {sorted(unknown)}; known: {sorted(self._params)}")
        params = {**self._params, **changes}
        if model is not None:
            return type(self).for_model(model, **params)
        return type(self)(self.model, self.to_input, **params)

    def _bar(self, total: int, default: str):
        if self._sink is not None:
            return self._sink
        if not self.progress:
            return None
        from tqdm.auto import tqdm

        desc = self.progress if isinstance(self.progress, str) else default
        return tqdm(total=total, desc=desc, leave=False)

    def _chunks(self, x: torch.Tensor, targets: torch.Tensor):
        """``(chunk, targets, n_real)`` of ``batch_size`` images; the last one padded
        (``fixed_chunks``)."""
        for sl in iter_chunks(len(x), self.batch_size):
            xc, tc = x[sl], targets[sl]
            n = len(xc)
            if self.fixed_chunks and n < self.batch_size:
                pad = self.batch_size - n
                xc = torch.cat([xc, xc.new_zeros((pad, *xc.shape[1:]))])
                tc = torch.cat([tc, tc.new_zeros(pad)])
            yield xc, tc, n

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def confidence_and_grad(
        self, x: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``q_C`` [B] and the gradient of the objective w.r.t. the pixels, in batch_size chunks.

        The objective is ``log q_C`` (``"log_prob"``, the log-softmax of the target class) or the
        target's logit ``z_C`` (``"logit"``, Simonyan et al.'s class score)."""
        qs, gs = [], []
        for xc, tc, n in self._chunks(x, targets):
            xi = self._prep(xc).requires_grad_(True)
            logits = self.model(self.to_input(xi)).float()
            ti = tc.to(self.device).view(-1, 1)
            if self.objective == "logit":
                sel = logits.gather(1, ti).squeeze(1)
                q = torch.softmax(logits.detach(), 1).gather(1, ti).squeeze(1)
            else:
                sel = torch.log_softmax(logits, dim=1).gather(1, ti).squeeze(1)
                q = sel.detach().exp()
            (g,) = torch.autograd.grad(sel.sum(), xi)
            qs.append(q[:n])
            gs.append(g.detach()[:n].contiguous())
        return torch.cat(qs).to(x.device), torch.cat(gs).to(x.device)

    @torch.no_grad()
    def confidence(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out = []
        for xc, tc, n in self._chunks(x, targets):
            logits = self.model(self.to_input(self._prep(xc))).float()
            out.append(
                torch.softmax(logits, 1).gather(1, tc.to(self.device).view(-1, 1)).squeeze(1)[:n]
            )
        return torch.cat(out).cpu()

    def step(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``clip(x + lr * g / mean|g|, 0, 255)`` per image (``"normalized"``), or
        ``clip(x + lr * sign(g), 0, 255)`` (``"sign"``: every pixel moves by ``lr`` gray levels)."""
        if self.step_rule == "sign":
            return (x + self.lr * g.sign()).clamp_(0.0, 255.0)
        norm = g.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        return (x + self.lr * g / norm).clamp_(0.0, 255.0)


class TransformationInvariantOptimizer(_Ascent):
    """Algorithm 1: ascend until ``q_C > q_target``, transform, repeat (batched); then, with
    ``final_optimize``, ascend once more so that the output itself passes ``q_target``.

    Round ``i`` (0-based) applies ``transforms[i % len(transforms)]``: ``"rotate"`` by ``angle``,
    ``"scale"`` by ``scale_factor`` and ``1 / scale_factor`` on alternate scale rounds (the net
    scale stays near 1), ``"mirror"`` (left-right flip). ``n_rotations`` counts the rounds of all
    transforms together: with ``k`` transforms a full revolution of 10 degrees needs
    ``n_rotations = 36 k``. ``objective``, ``step_rule``, ``interpolation``, ``fill`` and the sign
    of ``angle`` (positive: counter-clockwise) are the open choices of the module docstring.

    >>> tio = TransformationInvariantOptimizer(model, pixel_to_input(mean, std), lr=4.0)
    >>> res = tio.optimize(gray_images([0, 60, 127], 224), targets=805)  # 805: soccer ball
    """

    def __init__(
        self,
        model: nn.Module,
        to_input: Callable[[torch.Tensor], torch.Tensor],
        q_target: float = 0.9,
        angle: float = 10.0,
        n_rotations: int = 36,
        lr: float = 2.0,
        max_steps_per_round: int = 50,
        interpolation: str = "bilinear",
        fill: float = 0.0,
        stop_when_invariant: int | None = None,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        channels_last: bool = True,
        fixed_chunks: bool = True,
        progress: bool | str = False,
        objective: str = "log_prob",
        step_rule: str = "normalized",
        final_optimize: bool = True,
        transforms: Sequence[str] = ("rotate",),
        scale_factor: float = 0.9,
        workers: int = 1,
    ) -> None:
        self._params = {
            k: v for k, v in locals().items() if k not in ("self", "model", "to_input", "__class__")
        }
        own = dict(self._params)
        super().__init__(
            model,
            to_input,
            lr,
            batch_size,
            device,
            channels_last,
            fixed_chunks,
            progress,
            objective,
            step_rule,
            workers,
        )
        self._params = own
        if isinstance(transforms, str):
            transforms = (transforms,)
        transforms = tuple(transforms)
        if not transforms:
            raise ValueError(f"transforms needs at least one of {list(TRANSFORMS)}")
        for name in transforms:
            _check_choice(name, TRANSFORMS, "every transform")
        if not scale_factor > 0:
            raise ValueError(f"scale_factor must be > 0, got {scale_factor}")
        if not 0.0 < q_target < 1.0:
            raise ValueError(f"q_target must lie in (0, 1), got {q_target}")
        if n_rotations < 0 or max_steps_per_round < 1:
            raise ValueError("n_rotations must be >= 0 and max_steps_per_round >= 1")
        if interpolation not in _INTERP:
            raise ValueError(
                f"interpolation must be one of {sorted(_INTERP)}, got {interpolation!r}"
            )
        if not 0.0 <= fill <= 255.0:
            raise ValueError(f"fill must be a pixel value in [0, 255], got {fill}")
        self.q_target = float(q_target)
        self.angle = float(angle)
        self.n_rotations = int(n_rotations)
        self.max_steps_per_round = int(max_steps_per_round)
        self.interpolation = interpolation
        self.fill = float(fill)
        self.stop_when_invariant = stop_when_invariant
        self.final_optimize = bool(final_optimize)
        self.transforms = transforms
        self.scale_factor = float(scale_factor)

    def round_transform(self, i: int) -> tuple[str, float]:
        """The transformation of round ``i`` (0-based) and its parameter: the angle for
        ``"rotate"``, the factor for ``"scale"`` (``scale_factor`` on the even-numbered scale
        rounds, ``1 / scale_factor`` on the odd ones), 0 for ``"mirror"``."""
        k = len(self.transforms)
        name = self.transforms[i % k]
        if name == "rotate":
            return name, self.angle
        if name == "scale":
            n_scale = self.transforms.count("scale")
            j = (i // k) * n_scale + self.transforms[: i % k].count("scale")
            return name, self.scale_factor if j % 2 == 0 else 1.0 / self.scale_factor
        return name, 0.0

    def transform(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Round ``i``'s transformation of ``x`` (:meth:`round_transform`), clipped to [0, 255]."""
        return self._apply(x, *self.round_transform(i))

    def _apply(self, x: torch.Tensor, name: str, value: float) -> torch.Tensor:
        if name == "rotate":
            y = rotate(x, value, self.interpolation, self.fill)
        elif name == "scale":
            y = scale(x, value, self.interpolation, self.fill)
        else:
            y = mirror(x)
        return y.clamp_(0.0, 255.0)

    def optimize(self, x0: torch.Tensor, targets: int | Sequence[int] | torch.Tensor) -> TIOResult:
        """Run Algorithm 1 on every start image of ``x0`` ``[B, 3, H, W]`` (pixels in [0, 255]).

        With ``final_optimize`` the run ends with an optimisation round (also the only round when
        ``n_rotations == 0``); without it the output is the image after the last transformation.

        With ``workers > 1`` on the CPU the images are dealt round-robin to that many processes
        (:func:`visxai.device.process_map`), at most one per ``batch_size`` images. Each image's
        result is the same as in one process: every pass runs on chunks of exactly
        ``batch_size`` images whichever images share them (``fixed_chunks``; tested bitwise).
        """
        _check_pixels(x0, "x0")
        n = len(x0)
        t = as_targets(targets, n)
        w = min(self.workers, n // max(self.batch_size, 1))
        if w > 1 and self.device.type == "cpu" and self.fixed_chunks:
            return self._optimize_in_workers(x0, t, w)
        return self._optimize_here(x0, t)

    def _optimize_in_workers(self, x0: torch.Tensor, t: torch.Tensor, w: int) -> TIOResult:
        from ..device import deal, process_map

        n = len(x0)
        parts_idx = [torch.tensor(p, dtype=torch.long) for p in deal(n, w)]
        params = {**self._params, "workers": 1, "progress": False, "device": "cpu"}
        state = (type(self), self.model, self.to_input, params)
        parts = [(state, x0[i].detach().cpu(), t[i]) for i in parts_idx]
        bar = self._bar(n * (self.n_rotations + self.final_optimize), "TIO")
        try:
            outs = process_map(_optimize_part, parts, w, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        return _merge_results(outs, parts_idx, n)

    def _optimize_here(self, x0: torch.Tensor, t: torch.Tensor) -> TIOResult:
        n = len(x0)
        x = x0.detach().float().clone().to(self.device)
        rounds = torch.zeros(n, dtype=torch.long)
        in_round = torch.zeros(n, dtype=torch.long)
        steps = torch.zeros(n, dtype=torch.long)
        capped = torch.zeros(n, dtype=torch.long)
        streak = torch.zeros(n, dtype=torch.long)  # consecutive rounds passed without a step
        done = torch.zeros(n, dtype=torch.bool)
        final = torch.zeros(n, dtype=torch.bool)  # in the final optimisation round
        q_after = torch.zeros(n)  # q_C after the last transformation
        q_rot: list[list[float]] = [[] for _ in range(n)]
        spr: list[list[int]] = [[] for _ in range(n)]
        if self.n_rotations == 0:
            final[:] = self.final_optimize
            done[:] = not self.final_optimize
        bar = self._bar(n * (self.n_rotations + self.final_optimize), "TIO")
        while not bool(done.all()):
            idx = (~done).nonzero().flatten()
            q, g = self.confidence_and_grad(x[idx.to(x.device)], t[idx])
            q = q.cpu()
            for j, v in zip(idx.tolist(), q.tolist()):
                if in_round[j] == 0 and rounds[j] > 0:  # transformation test of the rotated image
                    q_rot[j].append(float(v))
                if in_round[j] == 0 and final[j]:
                    q_after[j] = v
            passed = q > self.q_target
            hit_cap = (~passed) & (in_round[idx] >= self.max_steps_per_round)
            finish = passed | hit_cap
            # images still below q_target: one gradient step
            go = idx[~finish]
            if len(go):
                sel = (~finish).nonzero().flatten()
                x[go.to(x.device)] = self.step(x[go.to(x.device)], g[sel.to(g.device)])
                steps[go] += 1
                in_round[go] += 1
            # images whose round is over: record; the final round ends the run
            fin = idx[finish]
            if len(fin):
                capped[idx[hit_cap]] += 1
                for j in fin.tolist():
                    spr[j].append(int(in_round[j]))
                ended = fin[final[fin]]
                done[ended] = True
                fin = fin[~final[fin]]
                if bar is not None:
                    bar.update(len(ended))
            # the other finished rounds: transform, evaluate the stopping criterion
            if len(fin):
                streak[fin] = torch.where(
                    in_round[fin] == 0, streak[fin] + 1, torch.zeros_like(streak[fin])
                )
                # one call per distinct transformation (one call for rotation only)
                kinds = [self.round_transform(i) for i in rounds[fin].tolist()]
                for kind in dict.fromkeys(kinds):
                    grp = fin[torch.tensor([k == kind for k in kinds])]
                    gd = grp.to(x.device)
                    x[gd] = self._apply(x[gd], *kind)
                rounds[fin] += 1
                in_round[fin] = 0
                stop = rounds[fin] >= self.n_rotations
                if self.stop_when_invariant is not None:
                    stop |= streak[fin] >= self.stop_when_invariant
                if self.final_optimize:
                    final[fin[stop]] = True
                else:
                    done[fin[stop]] = True
                if bar is not None:
                    bar.update(len(fin))
        if bar is not None:
            bar.close()
        q_final = self.confidence(x, t)
        for j in range(n):  # the last rotation is tested on the output itself
            if rounds[j] > len(q_rot[j]):
                q_rot[j].append(float(q_final[j]))
        if not self.final_optimize:
            q_after = q_final.clone()
        return TIOResult(x.cpu(), t, q_final, steps, rounds, capped, q_after, q_rot, spr)


def _optimize_part(part: tuple) -> TIOResult:
    """One worker's share of :meth:`TransformationInvariantOptimizer.optimize` (its images, run
    in this process; progress relayed to the parent's bar)."""
    from ..device import worker_progress

    (cls, model, to_input, params), x0, t = part
    opt = cls(model, to_input, **params)
    opt._sink = worker_progress()
    return opt._optimize_here(x0, t)


def _merge_results(
    outs: Sequence[TIOResult], parts_idx: Sequence[torch.Tensor], n: int
) -> TIOResult:
    """The per-worker results put back in the images' order (:func:`visxai.device.undeal`)."""
    from ..device import undeal

    parts = [p.tolist() for p in parts_idx]

    def cat(name: str) -> torch.Tensor:
        return torch.stack(undeal(parts, [list(getattr(o, name).unbind(0)) for o in outs]))

    def lists(name: str) -> list:
        return undeal(parts, [list(getattr(o, name)) for o in outs])

    return TIOResult(
        cat("images"),
        cat("targets"),
        cat("q_final"),
        cat("steps"),
        cat("rounds"),
        cat("capped_rounds"),
        cat("q_after_transform"),
        lists("q_after_rotation"),
        lists("steps_per_round"),
    )


class GradientAscent(_Ascent):
    """The classic baseline (Erhan et al. / Simonyan et al.; Fig. 1 row 1): the same ascent step,
    no transformation, ``n_steps`` steps per image (an int or one count per image).

    The step budget is data, one count per start image (notebook 03 gives each image the steps
    Algorithm 1 took for it), so it is an argument of :meth:`optimize`.
    """

    def optimize(
        self,
        x0: torch.Tensor,
        targets: int | Sequence[int] | torch.Tensor,
        n_steps: int | Sequence[int] | torch.Tensor,
    ) -> TIOResult:
        _check_pixels(x0, "x0")
        n = len(x0)
        t = as_targets(targets, n)
        budget = as_targets(n_steps, n, what="step budgets")
        if (budget < 0).any():
            raise ValueError("n_steps must be >= 0")
        x = x0.detach().float().clone().to(self.device)
        steps = torch.zeros(n, dtype=torch.long)
        bar = self._bar(int(budget.max()), "ascent")
        while bool((steps < budget).any()):
            idx = (steps < budget).nonzero().flatten()
            d = idx.to(x.device)
            _, g = self.confidence_and_grad(x[d], t[idx])
            x[d] = self.step(x[d], g)
            steps[idx] += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        zeros = torch.zeros(n, dtype=torch.long)
        return TIOResult(x.cpu(), t, self.confidence(x, t), steps, zeros, zeros.clone())


@torch.no_grad()
def predict_topk(
    model: nn.Module,
    to_input: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    labels: Sequence[str],
    k: int = 2,
    batch_size: int = 32,
) -> list[list[tuple[str, float]]]:
    """Top-``k`` (label, probability) per image of ``x`` ``[B, 3, H, W]`` in pixel space.

    Notebook 03 / TIO, Figs. 6-7."""
    _check_pixels(x, "x")
    dev = next(model.parameters()).device
    out: list[list[tuple[str, float]]] = []
    for sl in iter_chunks(len(x), batch_size):
        p = torch.softmax(model(to_input(x[sl].to(dev))).float(), 1).cpu()
        vals, inds = p.topk(k, dim=1)
        out.extend(
            [
                [(labels[i], float(v)) for v, i in zip(vr, ir)]
                for vr, ir in zip(vals.tolist(), inds.tolist())
            ]
        )
    return out


# --- replicates: Algorithm 1 is chaotic, so every statistic rests on seeded replicate runs ---

SEED_STRIDE = 1000


def replicate_seeds(seed: int, n: int) -> list[int]:
    """The ``n`` replicate seeds of a notebook ``seed``: ``seed * 1000 + r``, r = 0..n-1.

    Seed 0 gives 0, 1, 2, ...; seed 1 gives 1000, 1001, ...: two notebook seeds never share a
    replicate (for ``n <= 1000``).
    """
    if n < 1 or n > SEED_STRIDE:
        raise ValueError(f"need 1 <= n <= {SEED_STRIDE} replicates, got {n}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return [SEED_STRIDE * int(seed) + r for r in range(n)]


def replicate_starts(x0: torch.Tensor, seed: int, amplitude: float = 0.5) -> torch.Tensor:
    """The start images ``x0`` ``[B, 3, H, W]`` (pixels) plus seeded uniform noise, clipped.

    The result lies in [0, 255].

    The noise field ``U(-amplitude, amplitude)`` of shape ``[3, H, W]`` depends only on ``seed``
    and the image size (a CPU ``torch.Generator``), and is the same for every image of ``x0``: a
    replicate is one noise draw applied to all starts, whatever else is in the batch. With the
    default amplitude 0.5 the rounded 8-bit start is unchanged (gray level g stays g), yet the
    chaotic optimisation decorrelates the replicates within a few steps. ``amplitude=0`` returns
    the clean start.
    """
    _check_pixels(x0, "x0")
    if amplitude < 0:
        raise ValueError(f"amplitude must be >= 0, got {amplitude}")
    gen = torch.Generator().manual_seed(int(seed))
    noise = (torch.rand(tuple(x0.shape[1:]), generator=gen, dtype=torch.float32) * 2 - 1) * float(
        amplitude
    )
    return (x0.detach().float() + noise.to(x0.device)).clamp_(0.0, 255.0)


def smoothed_argmax(levels: Sequence[float], curve: Sequence[float], window: int = 5) -> float:
    """The level at the maximum of ``curve`` after a centred moving average over ``window`` levels.

    Levels must be sorted; the average uses only the levels that exist at the ends (a shorter
    window there). ``window=1`` is the plain argmax. Ties go to the lowest level.
    """
    lv = np.asarray(levels, dtype=float)
    c = np.asarray(curve, dtype=float)
    if lv.shape != c.shape or lv.ndim != 1 or len(lv) == 0:
        raise ValueError("levels and curve must be 1-D and of the same length")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number >= 1, got {window}")
    if np.any(np.diff(lv) <= 0):
        raise ValueError("levels must be strictly increasing")
    h = window // 2
    sm = np.array([c[max(0, i - h) : i + h + 1].mean() for i in range(len(c))])
    return float(lv[int(np.argmax(sm))])


def replicate_estimate(
    statistic: Callable[[Any], float],
    n_replicates: int,
    *,
    unit: str = "replicates",
    seeds: int | None = None,
    seed: int = 0,
    n_resamples: int = 1999,
) -> Estimate:
    """A statistic of ``n_replicates`` replicate runs with its 95% percentile-bootstrap CI.

    ``statistic(idx)`` gets an int array of replicate indices (with repeats in a resample) and
    returns a float, e.g. the argmax of the mean curve ``curves[idx].mean(0)``; the value is
    ``statistic(arange(n))``. Returns a :class:`visxai.stats.Estimate` with ``n`` =
    ``n_replicates`` and ``seeds`` (default ``n_replicates``: each replicate has its own seed;
    pass the number of replicate seeds when a resampled unit holds several). The resampling is
    seeded (the same runs give the same CI on every machine). With one replicate the CI is the
    point.
    """
    if n_replicates < 1:
        raise ValueError("replicate_estimate needs at least one replicate")
    full = np.arange(n_replicates)
    value = float(statistic(full))
    if n_replicates == 1:
        return Estimate(value, value, value, 1, seeds or 1, unit)
    rng = np.random.default_rng(seed)
    boot = np.array(
        [float(statistic(rng.integers(0, n_replicates, n_replicates))) for _ in range(n_resamples)]
    )
    boot = boot[np.isfinite(boot)]
    a = (1 - CONFIDENCE) / 2
    lo, hi = (float(v) for v in np.quantile(boot, [a, 1 - a], method="inverted_cdf"))
    return Estimate(
        value, min(lo, value), max(hi, value), n_replicates, seeds or n_replicates, unit
    )
