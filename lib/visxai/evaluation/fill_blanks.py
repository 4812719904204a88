"""Notebook 04 / Fill in the Blanks: its protocols and figures.

They stand on :mod:`visxai.methods.fill_blanks`.

The sample sizes of each profile (:func:`notebook_settings`), the test sets, models and methods
(:func:`load_study`), one function per figure case (:func:`single_fill`, :func:`expected_panels`,
:func:`progressive_examples`, :func:`mask_sweep`, :func:`first_vs_second_order`,
:func:`binarisation_comparison`), Table 1 over mask seeds with its controls (:func:`table1`), its
verdicts and scorecard rows (:func:`table1_verdicts`), and the figures (``plot_*``). The notebook
configures, calls these functions, plots and explains; the method itself (masks, Eq. 1-5, the
progressive fill, BFGS) is :class:`visxai.methods.fill_blanks.FillInTheBlanks`, re-exported here so
that the notebook needs one import.

Written by hand: the protocol glue (loops over images and seeds, tables, figures); the statistics
are :mod:`visxai.stats` (scipy's bootstrap), the figures matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import make_generator, pick_device
from ..methods.fill_blanks import (
    DEFAULT_BINARIZE,
    SCORE_NAMES,
    Binarize,
    ExpectedUpdate,
    FillInTheBlanks,
    ProgressiveFill,
    apply_mask,
    binarize_mode,
    blank_fraction,
    fill,
    patch_masks,
    prototype_scores,
    threshold,
)
from ..stats import Estimate, estimate, paired_difference

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..models import LoadedModel
    from ..scorecard import Scorecard

__all__ = [
    "expected_updates",
    "TABLE1_PAPER",
    "TABLE1_TOL",
    "FIG5_BANDS",
    "NotebookSettings",
    "notebook_settings",
    "Study",
    "load_study",
    "masked_accuracy",
    "single_fill",
    "most_confident_per_class",
    "expected_panels",
    "expected_table",
    "convergence_check",
    "progressive_examples",
    "describe_progressive",
    "table_images",
    "ABLATION_BINARIZE",
    "ABLATION_TARGETS",
    "binarize_label",
    "RandomPrototypes",
    "random_prototypes",
    "progressive_prototypes",
    "stack_seeds",
    "Table1",
    "table1",
    "table1_setting",
    "table1_verdicts",
    "ordering",
    "mask_sweep",
    "first_vs_second_order",
    "order_scorecard",
    "binarisation_comparison",
    "plot_single_fill",
    "plot_expected",
    "plot_progressive",
    "plot_table1",
    "misclassified_counts",
    "plot_misclassified",
    "plot_mask_sweep",
    "plot_orders",
    "plot_binarisation",
    "plot_fill_panel",
    "PANEL_RATIOS",
    "PANEL_PATCHES",
    "fill_panel",
]


# What follows is notebook 04's protocol (its profiles, its cases, the Table 1 loops and verdicts,
# the figures): the notebook configures, calls these functions, plots and explains.

#: Table 1 of the paper (ResNet5, MNIST): accuracy of f on its own prototypes [%]
TABLE1_PAPER = {"random (4.1)": 99.0, "progressive (4.2)": 93.0}
#: points: the paper gives neither a CI nor its number of images; 3 points is about one binomial
#: s.e. of 95% on 50 images
TABLE1_TOL = 3.0
#: Fig. 5 bands, "nearly the same direction / fill": the median's 95% CI must lie inside
FIG5_BANDS = {"cosine(dx1, dx2)": (0.9, 1.0), "IoU(T(dx1), T(dx2))": (0.5, 1.0)}


@dataclass(frozen=True)
class NotebookSettings:
    """The sample sizes of notebook 04 for one profile (a profile changes only these numbers).

    ``offline``: CPU, 2 cores, a few minutes: the same code on smaller samples (about 1,000-2,500
    masked forward+backward passes per second there, ``benchmarks/bench_fill_blanks.py``).
    ``paper``: a GPU, the paper's sample sizes (``N* > 10,000`` for every image), full MNIST.
    """

    profile: str
    mnist_subset: str  # "10k": the real 10k subset (8000 train / 2000 test, fixed split); "full"
    fig_model: str  # "a simple three-layered CNN" (Fig. 1-6)
    fmnist_model: str  # "a ResNet model" on Fashion-MNIST (Fig. 2b)
    table_model: str  # "ResNet5" (Table 1); the CNN3 rows are extra
    fig2_min_correct: int  # N* of Fig. 2 (the paper's 10,000; the check compares with more)
    check_min_correct: int  # N* of the convergence check of Fig. 2
    table_per_class: int | None  # correctly classified test images per class (None: every one)
    table_min_correct: int  # N* of Table 1 (the paper's 10,000 in both profiles)
    #: N* of Table 1's other runs (CNN3, the controls, the extra model): offline 1,000 (budget),
    #: checked on ResNet5, whose estimate at this N* is recorded on the way to table_min_correct
    other_min_correct: int
    control_per_class: int | None  # images per class of the randomised-model control
    fig5_images: int  # images (2 per class offline) of the first- vs second-order comparison
    fig4_min_correct: int  # N* of every cell of Fig. 4
    max_masks_factor: int  # stop sampling after factor * (N* + 1) masks (rarely correct images)
    #: measured best batch (benchmarks/bench_fill_blanks.py; offline, 1 thread, channels_last:
    #: 256 gives 1.26x the passes per CPU-second of 1024 for ResNet5, 1.43x for CNN3). The mask
    #: stream does not depend on it; E[dx] only up to float rounding (summation order)
    batch_size: int
    #: extra Table 1 rows (not in the paper), control_per_class images per class: the ResNet5
    #: trained with the masks as an augmentation
    extra_table_models: tuple[str, ...] = ()
    #: FillInTheBlanks.forward_first_below: below this rate of correct masks an E[dx] batch is
    #: classified first and only its correct masks go backward (offline, measured on a CPU:
    #: ResNet5 1.19x at rate 0.46, CNN3 0.86x at 0.75; the same N* and masks; the crossover
    #: 1 - t_forward / t_forward+backward is about 0.7 for ResNet5, 0.6 for CNN3)
    forward_first_below: float = 0.0


def notebook_settings(profile: str, min_correct: int = 10_000) -> NotebookSettings:
    """Notebook 04's :class:`NotebookSettings` for ``profile`` ("offline" or "paper");
    ``min_correct`` is the paper's ``N* > 10,000`` (the notebook's parameter)."""
    profiles = {
        "offline": NotebookSettings(
            "offline", "10k", "mnist-cnn3", "fmnist-resnet5", "mnist-resnet5",
            fig2_min_correct=min_correct, check_min_correct=2 * min_correct, table_per_class=10,
            table_min_correct=min_correct, other_min_correct=min(1_000, min_correct),
            control_per_class=3, fig5_images=20,
            fig4_min_correct=100, max_masks_factor=3, batch_size=256,
            extra_table_models=("mnist-resnet5-maskaug",), forward_first_below=0.65,
        ),
        "paper": NotebookSettings(
            "paper", "full", "mnist-cnn3", "fmnist-resnet5", "mnist-resnet5",
            fig2_min_correct=min_correct, check_min_correct=2 * min_correct, table_per_class=None,
            table_min_correct=min_correct, other_min_correct=min_correct,
            control_per_class=10, fig5_images=100,
            fig4_min_correct=min_correct, max_masks_factor=20, batch_size=8192,
            extra_table_models=("mnist-resnet5-maskaug",),
        ),
    }  # fmt: skip
    if profile not in profiles:
        raise ValueError(f"profile must be one of {sorted(profiles)}, got {profile!r}")
    return profiles[profile]


@dataclass
class Study:
    """Notebook 04's test sets, models and one :class:`FillInTheBlanks` per model
    (:func:`load_study`). ``data`` maps "mnist" / "fashion-mnist" to ``(images, labels)``;
    ``predictions`` are each model's classes of its clean test images."""

    settings: NotebookSettings
    device: torch.device
    data: dict[str, tuple[torch.Tensor, torch.Tensor]]
    loaded: dict[str, LoadedModel]
    methods: dict[str, FillInTheBlanks]
    predictions: dict[str, torch.Tensor]

    def dataset(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The test set of model ``name``: Fashion-MNIST for "fmnist-*", MNIST otherwise."""
        return self.data["fashion-mnist" if name.startswith("fmnist") else "mnist"]

    def labels(self, name: str) -> list[str]:
        """The class names of model ``name``."""
        return list(self.loaded[name].labels)


def load_study(
    settings: NotebookSettings,
    *,
    device: str | torch.device = "auto",
    gamma: float = 1.0,
    binarize: Binarize = DEFAULT_BINARIZE,
    ratio: float = 0.25,
    patch: int = 2,
    k: int = 4,
    seed: int = 0,
    bfgs_iterations: int = 10,
    progressive_target: str = "first",
) -> Study:
    """Load notebook 04's test sets and its three models (figures, Table 1, Fashion-MNIST) and
    build one :class:`FillInTheBlanks` per model from the notebook's parameters. Each method
    samples ``N* > settings.fig2_min_correct`` masks (Fig. 2) up to ``max_masks_factor`` times as
    many; the other figures :meth:`~FillInTheBlanks.replace` what they change. channels_last is
    used on a CPU (measured there, 1 thread: 1.4x the passes per CPU-second for ResNet5 and for
    the three-layer CNN)."""
    from ..data import load_fashion_mnist, load_mnist
    from ..models import load_model

    dev = pick_device(device)
    data = {
        "mnist": load_mnist("test", subset=settings.mnist_subset),
        "fashion-mnist": load_fashion_mnist("test"),
    }
    names = [
        settings.fig_model,
        settings.table_model,
        settings.fmnist_model,
        *settings.extra_table_models,
    ]
    loaded = {n: load_model(n, profile=settings.profile) for n in names}
    methods = {
        n: FillInTheBlanks(
            loaded[n].model,
            gamma=gamma,
            binarize=binarize,
            ratio=ratio,
            patch=patch,
            k=k,
            min_correct=settings.fig2_min_correct,
            max_masks=settings.max_masks_factor * (settings.fig2_min_correct + 1),
            seed=seed,
            progressive_target=progressive_target,
            bfgs_iterations=bfgs_iterations,
            device=dev,
            batch_size=settings.batch_size,
            channels_last=dev.type == "cpu",
            forward_first_below=settings.forward_first_below,
        )
        for n in names
    }
    study = Study(settings, dev, data, loaded, methods, {})
    study.predictions = {n: methods[n].predict(study.dataset(n)[0]) for n in names}
    return study


# --------------------------------------------------------------- models and data: masked accuracy
@dataclass(frozen=True)
class MaskedAccuracy:
    """Test accuracy of one model on its clean test images and on the same images under one
    random mask each; ``drop`` is the paired difference clean - masked over the images."""

    clean: Estimate
    masked: Estimate
    drop: Estimate
    n_images: int

    def summary(self, name: str) -> str:
        return (
            f"{name:<16} test accuracy {self.clean.fmt()} on {self.n_images} test images; "
            f"on masked test images M(x): {self.masked.fmt()} (95% CIs over test images)"
        )


def masked_accuracy(study: Study) -> dict[str, MaskedAccuracy]:
    """Per model, its accuracy on clean and on masked test images (one mask of the method's ratio
    and patch per image, drawn from its seed): how often a masked image is "correct", which
    section 4.1 relies on."""
    out = {}
    for n, f in study.methods.items():
        x, y = study.dataset(n)
        keep = patch_masks(len(x), x.shape[-2:], f.ratio, f.patch, generator=make_generator(f.seed))
        ok_clean = (study.predictions[n] == y).double().numpy()
        ok_masked = (f.predict(apply_mask(x, keep)) == y).double().numpy()
        # paired over the same test images
        drop = paired_difference(ok_clean, ok_masked)
        out[n] = MaskedAccuracy(estimate(ok_clean), estimate(ok_masked), drop, len(y))
    return out


# ---------------------------------------------------------------------------------- Fig. 1
@dataclass
class SingleFill:
    """Fig. 1: one test image ``x`` [1, C, H, W], one mask, its update and its fill."""

    model: str
    index: int
    x: torch.Tensor
    keep: torch.Tensor
    delta: torch.Tensor
    masked_prediction: int
    t: torch.Tensor
    filled: torch.Tensor
    fill_prediction: int


def single_fill(study: Study, label: int = 3) -> SingleFill:
    """Fig. 1 (section 3.2): the first MNIST test image of class ``label`` that the figure model
    classifies correctly, one random mask (the method's ratio, patch and seed), ``Delta x`` for
    the class predicted for ``M(x)``, ``T`` and ``M(x) + T(Delta x)``."""
    name = study.settings.fig_model
    f = study.methods[name]
    x_all, y_all = study.data["mnist"]
    i = int(torch.nonzero((y_all == label) & (study.predictions[name] == label))[0])
    x = x_all[i : i + 1]
    keep = patch_masks(1, x.shape[-2:], f.ratio, f.patch, generator=make_generator(f.seed))
    delta, logits = f.update(x, keep)  # target = predicted class of M(x)
    t = f.threshold(delta.cpu(), keep)
    filled = fill(x, keep, t)
    pred = int(f.predict(filled)[0])
    return SingleFill(name, i, x, keep, delta.cpu(), int(logits.argmax()), t, filled, pred)


# ---------------------------------------------------------------------------------- Fig. 2
@dataclass
class ExpectedPanel:
    """One panel of Fig. 2: per class, the test image ``indices[c]`` and its ``E[Delta x]``."""

    model: str
    x: torch.Tensor
    indices: list[int]
    estimates: list[ExpectedUpdate]


def most_confident_per_class(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, first: int = 500, batch: int = 1000
) -> list[int]:
    """Per class ``0 .. max(y)``, the index of the test image (among the first ``first`` of that
    class) whose softmax probability of its class is largest."""
    dev = next(model.parameters()).device
    with torch.no_grad():
        prob = torch.cat(
            [
                torch.softmax(model(x[s : s + batch].to(dev)), 1).cpu()
                for s in range(0, len(x), batch)
            ]
        )
    out = []
    for c in range(int(y.max()) + 1):
        cand = torch.nonzero(y == c).flatten()[:first]
        out.append(int(cand[prob[cand, c].argmax()]))
    return out


def expected_panels(
    study: Study, progress: bool = True, workers: int = 1
) -> dict[str, ExpectedPanel]:
    """Fig. 2 (section 4.1): for the most confident test image of each class, ``E[Delta x]`` over
    random masks until ``N* > settings.fig2_min_correct`` (a) with the figure model on MNIST and
    (b) with the Fashion-MNIST model. ``workers``: CPU processes (:func:`expected_updates`: the
    same estimates)."""
    s = study.settings
    out = {}
    for panel, (name, key) in {
        "MNIST": (s.fig_model, "mnist"),
        "Fashion-MNIST": (s.fmnist_model, "fashion-mnist"),
    }.items():
        x, y = study.data[key]
        f = study.methods[name]
        idx = most_confident_per_class(f.model, x, y)
        classes = torch.arange(len(idx))
        ests = expected_updates(
            f, x[idx], classes, progress=f"Fig. 2 {panel}" if progress else False, workers=workers
        )
        out[panel] = ExpectedPanel(name, x, idx, ests)
    return out


def expected_table(study: Study, panels: dict[str, ExpectedPanel]) -> pd.DataFrame:
    """Fig. 2's numbers: per panel and class, the image, ``N*``, the masks sampled, the rate of
    correct masks and whether ``f(M(x) + T(E[dx]))`` is the class."""
    import pandas as pd

    rows = []
    for panel, p in panels.items():
        f = study.methods[p.model]
        for c, (i, e) in enumerate(zip(p.indices, p.estimates)):
            proto = f.expected_fill(p.x[i], e)
            rows.append(
                {
                    "data": panel,
                    "model": p.model,
                    "class": c,
                    "test image": i,
                    "N*": e.n_correct,
                    "masks sampled": e.n_sampled,
                    "correct rate": round(e.correct_rate, 3),
                    "f(M(x)+T(E[dx])) == class": int(f.predict(proto[None])[0]) == c,
                }
            )
    return pd.DataFrame(rows)


def convergence_check(
    study: Study, panels: dict[str, ExpectedPanel], label: int = 3, progress: bool = True
) -> tuple[float, float]:
    """Fig. 2's sample-size check: one MNIST image to ``N* > settings.check_min_correct``,
    compared with its own running estimate at ``settings.fig2_min_correct``. Returns the cosine
    similarity of the two ``E[Delta x]`` and the IoU of their binarised whole-image prototypes."""
    s = study.settings
    p = panels["MNIST"]
    f = study.methods[p.model].replace(min_correct=s.check_min_correct, max_masks=None)
    chk = f.expected_update(
        p.x[p.indices[label]],
        label,
        snapshots=(s.fig2_min_correct,),
        progress="check" if progress else False,
    )
    small = chk.snapshots.get(s.fig2_min_correct, chk.mean).flatten()
    cos = float(F.cosine_similarity(small, chk.mean.flatten(), dim=0))
    ta = f.expected_prototype(small.view_as(chk.mean)).bool()
    tb = f.expected_prototype(chk).bool()
    iou = float((ta & tb).sum() / (ta | tb).sum().clamp_min(1))
    return cos, iou


# ---------------------------------------------------------------------------------- Fig. 3
@dataclass
class ProgressiveExample:
    """Fig. 3: the progressive fill of one test image ``x`` [C, H, W] of class ``label``."""

    model: str
    x: torch.Tensor
    label: int
    result: ProgressiveFill
    final_prediction: int


def progressive_examples(
    study: Study, examples: Sequence[tuple[str, int]] | None = None
) -> list[ProgressiveExample]:
    """Fig. 3 (section 4.2): for each ``(model, class)`` (default: the figure model's 3 and 7, the
    Fashion-MNIST model's Ankle boot) the first correctly classified test image of that class,
    filled progressively with the method's ``k`` masks."""
    s = study.settings
    if examples is None:
        examples = [(s.fig_model, 3), (s.fig_model, 7), (s.fmnist_model, 9)]
    out = []
    for name, c in examples:
        x, y = study.dataset(name)
        f = study.methods[name]
        i = int(torch.nonzero((y == c) & (study.predictions[name] == c))[0])
        res = f.progressive(x[i : i + 1])
        out.append(ProgressiveExample(name, x[i], c, res, int(f.predict(res.image)[0])))
    return out


def describe_progressive(study: Study, example: ProgressiveExample) -> str:
    """One line: the predicted class of every step and of the final image."""
    labels = study.labels(example.model)
    steps = ", ".join(labels[int(p)] for p in example.result.predictions[0])
    return (
        f"{example.model} class {labels[example.label]}: predictions per step: {steps}; "
        f"final image classified as {labels[example.final_prediction]}"
    )


# ------------------------------------------------------------------------------- Table 1
RANDOM, PROGRESSIVE = "random (4.1)", "progressive (4.2)"
WHOLE = "random, T(E[dx]) whole image (not in paper)"
NOISE = "random-saliency fill, same masks (control)"
PROGRESSIVE_ALL = "progressive (4.2), all correct test images (not in paper)"


def reduced_name(n: int) -> str:
    """The Table 1 row of random masking stopped at ``N* > n`` (the check of a reduced N*)."""
    return f"random (4.1) at N* > {n:,} (check of the reduced N*)"


#: (labels [n], predictions [n]) per mechanism
Pairs = dict[str, tuple[torch.Tensor, torch.Tensor]]
#: the ablation of Table 1: every ``Binarize`` mode (fixed 0.5 is the default) ...
ABLATION_BINARIZE: tuple[Binarize, ...] = (0.5, "otsu", "none")
#: ... and both readings of the progressive target (held from step 1: the default)
ABLATION_TARGETS = ("first", "predicted")


def binarize_label(binarize: Binarize) -> str:
    """``"fixed(0.5)"``, ``"otsu"`` or ``"none"``: the printed name of a ``binarize`` value."""
    mode, t = binarize_mode(binarize)
    return f"fixed({t:g})" if mode == "fixed" else mode


@dataclass
class RandomPrototypes:
    """Section 4.1 prototypes of images ``x`` for one mask seed: ``labels`` ``y_hat = f(x)``,
    the estimates ``E[Delta x]`` (with ``N*`` per image), and per ``Binarize`` mode the
    predictions of ``M(x) + T(E[dx])``; ``whole`` and ``noise`` the extra rows."""

    labels: torch.Tensor
    estimates: list[ExpectedUpdate]
    predictions: dict[str, torch.Tensor]
    whole: torch.Tensor
    noise: torch.Tensor
    #: ``{n: predictions}`` of the prototypes from the running estimate at ``N* > n`` (the
    #: snapshots of :meth:`~FillInTheBlanks.expected_update`; ``f.binarize``)
    reduced: dict[int, torch.Tensor] = field(default_factory=dict)
    #: the prototypes ``M(x) + T(E[dx])`` [n, C, H, W] under ``f.binarize`` (the ones that
    #: ``predictions[binarize_label(f.binarize)]`` classifies)
    images: torch.Tensor | None = None

    @property
    def n_star(self) -> np.ndarray:
        """``N*`` reached per image."""
        return np.array([e.n_correct for e in self.estimates])


def _expected_updates(part: tuple) -> list[ExpectedUpdate]:
    """One worker's images of :func:`expected_updates` (progress relayed to the parent's bar)."""
    from ..device import worker_progress

    f, x, lab, snapshots = part
    bar = worker_progress()
    out = []
    for j in range(len(x)):
        out.append(f.expected_update(x[j], int(lab[j]), snapshots=snapshots))
        if bar is not None:
            bar.update(1)
    return out


def expected_updates(
    f: FillInTheBlanks,
    x: torch.Tensor,
    labels: torch.Tensor,
    snapshots: Sequence[int] = (),
    progress: bool | str = False,
    workers: int = 1,
) -> list[ExpectedUpdate]:
    """``f.expected_update`` of every image of ``x`` for its label, in image order.

    ``workers > 1`` deals the images round-robin to that many CPU processes
    (:func:`visxai.device.process_map`); each image's estimate is the same as in one process (its
    own mask stream, batches of its own masked copies)."""
    from tqdm.auto import tqdm

    from ..device import deal, process_map, undeal

    n = len(x)
    w = min(int(workers), n) if f.device.type == "cpu" else 1
    bar = tqdm(total=n, desc=progress or "E[dx]", disable=not progress, leave=False)
    try:
        if w <= 1:
            here = []
            for j in range(n):
                here.append(f.expected_update(x[j], int(labels[j]), snapshots=snapshots))
                bar.update(1)
            return here
        idx = deal(n, w)
        parts = [(f, x[i], labels[i], tuple(snapshots)) for i in idx]
        outs = process_map(_expected_updates, parts, w, progress=bar)
    finally:
        bar.close()
    return undeal(idx, outs)


def random_prototypes(
    f: FillInTheBlanks,
    x: torch.Tensor,
    binarizes: Sequence[Binarize] = (),
    progress: bool | str = False,
    snapshots: Sequence[int] = (),
    workers: int = 1,
) -> RandomPrototypes:
    """Table 1 "random (4.1)" for images ``x``: ``E[Delta x]`` per image (``N* > f.min_correct``,
    masks of seed ``f.seed``), then ``M(x) + T(E[dx])`` labelled ``y_hat = f(x)`` (the class the
    kept masks must predict; the true label for correctly classified images) under
    ``f.binarize`` and every mode of ``binarizes`` (the estimate is shared: only ``T`` changes).
    An image without any correct mask has no ``M``: its prototype is ``T(E[dx])``. Extra rows:
    ``T(E[dx])`` over the whole image, and a random-saliency fill of the same blanks (uniform
    noise of seed ``f.seed`` through the same ``T``: :func:`visxai.controls.random_saliency`).
    ``snapshots``: also the predictions from the running estimate at each ``N* > n`` (free: the
    same mask stream, stopped earlier), to check a reduced ``N*``. ``workers``: CPU processes
    for the estimates (:func:`expected_updates`; the same results)."""
    from ..controls import random_saliency

    lab = f.predict(x)
    ests = expected_updates(f, x, lab, snapshots, progress, workers)
    size = tuple(x.shape[-2:])
    keeps = torch.stack([e.keep if e.keep is not None else torch.ones(1, *size) for e in ests])
    preds, images = {}, None
    for b in dict.fromkeys([f.binarize, *binarizes]):
        fb = f.replace(binarize=b)
        proto = torch.stack(
            [
                fb.expected_fill(x[j], e) if e.keep is not None else fb.expected_prototype(e)
                for j, e in enumerate(ests)
            ]
        )
        preds[binarize_label(b)] = fb.predict(proto)
        images = proto if images is None else images  # f.binarize comes first
    noise = fill(
        x, keeps, threshold(random_saliency((len(x), 1, *size), seed=f.seed), keeps, f.binarize)
    )
    whole = f.predict(torch.stack([f.expected_prototype(e) for e in ests]))
    reduced = {}
    for n in snapshots:
        early = [replace(e, mean=e.snapshots.get(n, e.mean)) for e in ests]
        reduced[n] = f.predict(
            torch.stack(
                [
                    f.expected_fill(x[j], e) if e.keep is not None else f.expected_prototype(e)
                    for j, e in enumerate(early)
                ]
            )
        )
    return RandomPrototypes(lab, ests, preds, whole, f.predict(noise), reduced, images)


def progressive_prototypes(
    f: FillInTheBlanks, x: torch.Tensor, *, images: bool = False
) -> tuple[torch.Tensor, ...]:
    """Table 1 "progressive (4.2)" for images ``x`` (masks of seed ``f.seed``): the label
    ``y_hat`` of the first masked input ``M_1(x)`` and the prediction of the fully filled image,
    with ``f.progressive_target`` and ``f.binarize``; ``images=True`` adds the filled images
    [n, C, H, W] (the prototypes) as a third element."""
    prog = f.progressive(x)
    out = (prog.first_prediction, f.predict(prog.image))
    return (*out, prog.image) if images else out


def stack_seeds(per_seed: Sequence[Pairs]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{mechanism: (labels [n, seeds], predictions [n, seeds])}`` from per-seed results."""
    return {
        k: tuple(np.stack([d[k][j].numpy() for d in per_seed], 1) for j in (0, 1))
        for k in per_seed[0]
    }


def table_images(
    predictions: torch.Tensor, labels: torch.Tensor, per_class: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Table 1's images, every correctly classified image)``: indices of the first
    ``per_class`` correctly classified test images of each class (None: all of them)."""
    ok = torch.nonzero(predictions == labels).flatten()
    if per_class is None:
        return ok, ok
    n_classes = int(labels.max()) + 1
    return torch.cat([ok[labels[ok] == c][:per_class] for c in range(n_classes)]), ok


@dataclass
class Table1:
    """Table 1 (section 4.3) for every run (model) and mechanism: ``pairs[run][mechanism] =
    (labels, predictions)``, each ``[n_images, n_seeds]`` (random: ``random_seeds``, one
    ``E[Delta x]`` per image and seed; progressive: ``seeds``); ``n_star[run]`` the ``N*``
    reached per image and random seed ``[n_images, n_random_seeds]`` (``indices[run]``: the test
    images); ``scores[run, mechanism]`` the :func:`prototype_scores`; ``ablation`` the
    binarisation x target-rule table (:data:`ABLATION_BINARIZE`, :data:`ABLATION_TARGETS`).
    ``control`` names the run of the randomised table model."""

    study: Study
    seeds: tuple[int, ...]
    random_seeds: tuple[int, ...]
    control: str
    n_images: int
    pairs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    n_star: dict[str, np.ndarray]
    indices: dict[str, np.ndarray]
    scores: dict[tuple[str, str], dict[str, Estimate]]
    ablation_pairs: dict[tuple[str, str, str, str], tuple[np.ndarray, np.ndarray]]
    #: the N* target of each run (``table_min_correct`` for the table model, else
    #: ``other_min_correct``)
    min_correct: dict[str, int] = field(default_factory=dict)
    #: ``prototypes[run][mechanism] = (labels [n], predictions [n], images [n, C, H, W])`` for
    #: random (4.1) and progressive (4.2), the first mask seed, the default binarisation: the
    #: prototypes that Table 1 scores (:func:`plot_misclassified` shows them)
    prototypes: dict[str, dict[str, tuple[np.ndarray, np.ndarray, torch.Tensor]]] = field(
        default_factory=dict
    )

    @property
    def short(self) -> dict[str, list[int]]:
        """Per run and random seed, the number of images short of its ``N*`` target."""
        return {run: list((ns <= self.min_correct[run]).sum(0)) for run, ns in self.n_star.items()}

    def frame(self) -> pd.DataFrame:
        """The printed table: value [95% CI] per run, mechanism and metric."""
        import pandas as pd

        rows = []
        for (run, mech), sc_ in self.scores.items():
            lab = self.pairs[run][mech][0]
            rows.append(
                {
                    "Model f": run,
                    "Masking Mechanism": mech,
                    "n images": sc_["accuracy"].n,
                    "seeds": lab.shape[1],
                    **{k: v.fmt() for k, v in sc_.items()},
                }
            )
        return pd.DataFrame(rows)

    def to_text(self) -> str:
        """The printed table (:meth:`frame`) under its title, at most 60 characters a column."""
        import pandas as pd

        with pd.option_context("display.max_colwidth", 60, "display.width", 250):
            table = self.frame().to_string(index=False)
        return (
            f"Table 1 [%], value [95% CI over images]; masks of seeds {self.random_seeds} "
            f"(random), {self.seeds} (progressive)\n{table}"
        )

    def short_lines(self) -> list[str]:
        """Per run, the images that stopped short of ``N*`` (test image index: ``N*`` reached),
        or that every image reached it."""
        s = self.study.settings
        lines = []
        for run, ns in self.n_star.items():
            m = self.min_correct[run]
            bad = [
                f"{int(self.indices[run][i])}: {int(ns[i].min())}"
                for i in np.nonzero((ns <= m).any(1))[0]
            ]
            head = (
                f"{run}: N* > {m:,} reached by {len(ns) - len(bad)} of {len(ns)} "
                f"images (sampling stops at {s.max_masks_factor} x (N* + 1) masks)"
            )
            lines.append(head + (f"; short (test image: N*): {', '.join(bad)}" if bad else ""))
        return lines

    def ablation(self) -> pd.DataFrame:
        """Accuracy [95% CI over images] per run, mechanism, binarisation and target rule (the
        target rule applies to progressive masking only: random masking's label is ``f(x)``)."""
        import pandas as pd

        rows = []
        for (run, mech, b, target), (lab, pr) in self.ablation_pairs.items():
            est = prototype_scores(lab, pr)["accuracy"]
            rows.append(
                {
                    "model": run,
                    "mechanism": mech,
                    "binarize": b,
                    "target": target,
                    "accuracy [%]": est.fmt(),
                    "value": est.value,
                    "ci_lo": est.lo,
                    "ci_hi": est.hi,
                }
            )
        return pd.DataFrame(rows)

    def values(self) -> pd.DataFrame:
        """One row per run, mechanism and metric with value, CI, n and seeds (figures' CSV)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "model": run,
                    "mechanism": mech,
                    "metric": k,
                    "value": v.value,
                    "ci_lo": v.lo,
                    "ci_hi": v.hi,
                    "n_images": v.n,
                    "seeds": v.seeds,
                }
                for (run, mech), s_ in self.scores.items()
                for k, v in s_.items()
            ]
        )


def table1(
    study: Study,
    seeds: Sequence[int] = (0, 1, 2),
    random_seeds: Sequence[int] = (0,),
    progress: bool = True,
    workers: int = 1,
) -> Table1:
    """Table 1 for the table model (ResNet5), the same model with re-initialised weights (the
    model-randomisation control, :func:`visxai.controls.randomized_model` with seed 0: only the
    masks change with the seed) and the figure model (CNN3, not in the paper), on
    ``settings.table_per_class`` correctly classified test images per class
    (``settings.control_per_class`` for the control).

    *random (4.1)*: one ``E[Delta x]`` per image and seed of ``random_seeds`` with
    ``N* > settings.table_min_correct`` (:func:`random_prototypes`). *progressive (4.2)*: the
    ``k`` masks of every seed of ``seeds`` (cheap: ``k`` passes per image). The trained models
    get the ablation (every :data:`ABLATION_BINARIZE` x :data:`ABLATION_TARGETS`) and an extra
    row: progressive masking over every correctly classified test image. ``workers``: CPU
    processes for the ``E[Delta x]`` estimates (the same results, :func:`expected_updates`)."""
    from tqdm.auto import tqdm

    from ..controls import randomized_model

    s = study.settings
    tm, cm = s.table_model, s.fig_model
    x_all, y_all = study.data["mnist"]
    control = f"{tm}, randomised weights (control)"
    base = study.methods[tm]
    fb_control = FillInTheBlanks(
        randomized_model(base.model, seed=0),
        gamma=base.gamma,
        binarize=base.binarize,
        ratio=base.ratio,
        patch=base.patch,
        k=base.k,
        seed=base.seed,
        progressive_target=base.progressive_target,
        bfgs_iterations=base.bfgs_iterations,
        device=study.device,
        batch_size=s.batch_size,
        channels_last=base.channels_last,
        forward_first_below=base.forward_first_below,
    )
    runs = {tm: study.methods[tm], control: fb_control, cm: study.methods[cm]}
    runs.update({m: study.methods[m] for m in s.extra_table_models})
    per_class = {tm: s.table_per_class, control: s.control_per_class, cm: s.table_per_class}
    per_class.update({m: s.control_per_class for m in s.extra_table_models})
    pairs, n_star, indices, ablation, targets, kept = {}, {}, {}, {}, {}, {}
    for run, f_run in runs.items():
        own = tm if run == control else run  # the control: the table model's images
        tidx, ok = table_images(study.predictions[own], y_all, per_class[run])
        x = x_all[tidx]
        indices[run] = tidx.numpy()
        trained = run in (tm, cm)  # the ablation and the all-images row
        target = targets[run] = s.table_min_correct if run == tm else s.other_min_correct
        check = (s.other_min_correct,) if run == tm and target > s.other_min_correct else ()
        rnd = [
            random_prototypes(
                f_run.replace(
                    min_correct=target,
                    max_masks=s.max_masks_factor * (target + 1),
                    seed=sd,
                ),
                x,
                binarizes=ABLATION_BINARIZE if trained else (),
                snapshots=check,
                progress=f"Table 1 {run}, E[dx] (seed {sd})" if progress else False,
                workers=workers,
            )
            for sd in random_seeds
        ]
        default_b = binarize_label(f_run.binarize)
        mechs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        stack = lambda arrays: np.stack([a.numpy() for a in arrays], 1)  # noqa: E731
        lab_r = stack([r.labels for r in rnd])
        mechs[RANDOM] = (lab_r, stack([r.predictions[default_b] for r in rnd]))
        prog = [
            progressive_prototypes(f_run.replace(seed=sd), x, images=j == 0)
            for j, sd in enumerate(
                tqdm(seeds, desc=f"Table 1 {run}, progressive", disable=not progress)
            )
        ]
        mechs[PROGRESSIVE] = (stack([p[0] for p in prog]), stack([p[1] for p in prog]))
        kept[run] = {
            RANDOM: (rnd[0].labels.numpy(), rnd[0].predictions[default_b].numpy(), rnd[0].images),
            PROGRESSIVE: (prog[0][0].numpy(), prog[0][1].numpy(), prog[0][2]),
        }
        mechs[WHOLE] = (lab_r, stack([r.whole for r in rnd]))
        mechs[NOISE] = (lab_r, stack([r.noise for r in rnd]))
        for n in check:  # the table model at the other runs' N*: does the reduction matter?
            mechs[reduced_name(n)] = (lab_r, stack([r.reduced[n] for r in rnd]))
        if trained:
            all_prog = [progressive_prototypes(f_run.replace(seed=sd), x_all[ok]) for sd in seeds]
            mechs[PROGRESSIVE_ALL] = (
                stack([p[0] for p in all_prog]),
                stack([p[1] for p in all_prog]),
            )
            for b in ABLATION_BINARIZE:
                bl = binarize_label(b)
                ablation[run, RANDOM, bl, "-"] = (lab_r, stack([r.predictions[bl] for r in rnd]))
                for target in ABLATION_TARGETS:
                    fp = f_run.replace(binarize=b, progressive_target=target)
                    pp = [progressive_prototypes(fp.replace(seed=sd), x) for sd in seeds]
                    ablation[run, PROGRESSIVE, bl, target] = (
                        stack([p[0] for p in pp]),
                        stack([p[1] for p in pp]),
                    )
        pairs[run] = mechs
        n_star[run] = np.stack([r.n_star for r in rnd], 1)
    scores = {
        (run, mech): prototype_scores(lab, pr)
        for run, mechs in pairs.items()
        for mech, (lab, pr) in mechs.items()
    }
    return Table1(
        study, tuple(seeds), tuple(random_seeds), control, len(indices[tm]), pairs, n_star,
        indices, scores, ablation, targets, kept,
    )  # fmt: skip


def table1_setting(t1: Table1) -> str:
    """The scorecard's "setting" text of Table 1's rows."""
    s, f = t1.study.settings, t1.study.methods[t1.study.settings.table_model]
    per_class = "all" if s.table_per_class is None else s.table_per_class
    return (
        f"{s.profile}: {s.table_model} (ours, MNIST {s.mnist_subset}), {t1.n_images} correctly "
        f"classified test images ({per_class}/class), eta={f.ratio}, patch {f.patch}, "
        f"binarize={binarize_label(f.binarize)}, progressive target={f.progressive_target}; "
        f"95% CI: bootstrap over images (each with its prototypes of mask seeds "
        f"{', '.join(map(str, t1.random_seeds))} (random) / {', '.join(map(str, t1.seeds))} "
        f"(progressive))"
    )


def table1_verdicts(t1: Table1, scorecard: Scorecard) -> dict[str, list[str]]:
    """Table 1's verdicts per mask seed, and its scorecard rows.

    * Every paper cell (:data:`TABLE1_PAPER`) for ResNet5 (the paper's model) and CNN3 (not in
      the paper): per seed, ``verdict_paper`` of the seed's CI against the paper's value
      +- :data:`TABLE1_TOL` points (random: the seeds of ``t1.random_seeds``, progressive: of
      ``t1.seeds``). With the model-randomisation control: where the randomised ResNet5's
      accuracy also agrees with the paper, the agreement cannot come from what the model learnt,
      and the final verdict is ``uninformative``.
    * The ordering "random > progressive" (paper 99 - 93 = 6): per seed, a paired bootstrap of
      the per-image difference of correctness on the same images (:func:`ordering`), for the
      trained and the randomised model; the final verdict is ``verdict_controlled``.
    * The controls' accuracies as ``observed`` rows.

    Returns ``{claim: verdicts per seed}`` (the notebook's stability table) in print order.
    """
    from ..stats import verdict_controlled, verdict_over_seeds, verdict_paper

    s = t1.study.settings
    tm, cm, k = s.table_model, s.fig_model, t1.study.methods[s.table_model].k
    setting = table1_setting(t1)
    stability: dict[str, list[str]] = {}

    def per_seed(run: str, mech: str, metric: str, pv: float) -> list[str]:
        lab, pr = t1.pairs[run][mech]
        return [
            verdict_paper(prototype_scores(lab[:, j], pr[:, j])[metric], pv, TABLE1_TOL)
            for j in range(lab.shape[1])
        ]

    for run, title in ((tm, "MNIST ResNet5"), (cm, "MNIST CNN3 (not the paper's model)")):
        for mech, pv in TABLE1_PAPER.items():
            extra = f", N* > {t1.min_correct[run]:,} per image" if mech == RANDOM else f", k={k}"
            control_acc = verdict_over_seeds(per_seed(t1.control, mech, "accuracy", pv))
            for metric in SCORE_NAMES:
                vs = per_seed(run, mech, metric, pv)
                item = f"Table 1, {title}, {mech}"
                stability[f"{item}: {metric}"] = vs
                final = verdict_over_seeds(vs)
                if final == "agrees" and control_acc == "agrees":
                    final = "uninformative"
                scorecard.add(
                    item,
                    f"{metric} [%]",
                    pv,
                    t1.scores[run, mech][metric],
                    f"{setting}{extra}; verdict: CI of every seed inside paper "
                    f"+- {TABLE1_TOL:g} points; control: the randomised ResNet5's accuracy "
                    f"{control_acc} with the paper",
                    final,
                    digits=1,
                )
    ord_v, ord_est = ordering(t1.pairs[tm])
    ord_ctrl_v, ord_ctrl_est = ordering(t1.pairs[t1.control])
    ord_final = [verdict_controlled(v, c) for v, c in zip(ord_v, ord_ctrl_v)]
    stability["Table 1, ResNet5: random accuracy > progressive accuracy"] = ord_v
    stability["Table 1, randomised ResNet5 (control): random accuracy > progressive accuracy"] = (
        ord_ctrl_v
    )
    stability["Table 1, ResNet5: random > progressive, with the model-randomisation control"] = (
        ord_final
    )
    scorecard.add(
        "Table 1, ordering (ResNet5)",
        "random accuracy - progressive accuracy [points], > 0",
        "99 - 93 = 6",
        ord_est,
        f"{setting}; verdict per progressive seed: paired bootstrap of the per-image difference "
        f"over the same images; control: the randomised ResNet5 gives "
        f"{verdict_over_seeds(ord_ctrl_v)} ({ord_ctrl_est.fmt()} points)",
        verdict_over_seeds(ord_final),
    )
    if s.other_min_correct < s.table_min_correct:  # the reduced N* of the other runs, checked
        name = reduced_name(s.other_min_correct)
        same = [
            verdict_over_seeds(per_seed(tm, RANDOM, m, TABLE1_PAPER[RANDOM]))
            == verdict_over_seeds(per_seed(tm, name, m, TABLE1_PAPER[RANDOM]))
            for m in SCORE_NAMES
        ]
        diff = paired_difference(
            100.0 * (t1.pairs[tm][RANDOM][0] == t1.pairs[tm][RANDOM][1]).mean(1),
            100.0 * (t1.pairs[tm][name][0] == t1.pairs[tm][name][1]).mean(1),
        )
        stability[
            f"Table 1, ResNet5 random: N* > {s.other_min_correct:,} gives the verdicts of "
            f"N* > {s.table_min_correct:,}"
        ] = ["yes" if all(same) else "no"]
        scorecard.add(
            f"Table 1, ResNet5 random (4.1): N* > {s.table_min_correct:,} vs "
            f"N* > {s.other_min_correct:,} (the other runs' N*)",
            "accuracy difference [points]",
            "",
            diff,
            f"{setting}; the estimate at N* > {s.other_min_correct:,} is the same mask stream "
            f"stopped earlier; same verdicts on all three metrics: {'yes' if all(same) else 'no'}",
            "observed",
        )
    for run, mech, what in [
        (t1.control, RANDOM, "control: randomised ResNet5, random (4.1)"),
        (t1.control, PROGRESSIVE, "control: randomised ResNet5, progressive (4.2)"),
        (tm, NOISE, "control: random-saliency fill (ResNet5)"),
        *[
            (m, mech, f"extra: {m} (trained with the masks, not in the paper), {mech}")
            for m in s.extra_table_models
            for mech in (RANDOM, PROGRESSIVE)
        ],
    ]:
        scorecard.add(
            f"Table 1, {what}",
            "accuracy [%]",
            "",
            t1.scores[run, mech]["accuracy"],
            setting + "; not in the paper",
            "observed",
        )
    return stability


def ordering(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[list[str], Estimate]:
    """ "random > progressive" for one run: per progressive seed, ``verdict_claim`` of the paired
    bootstrap of correct(random) - correct(progressive) [points] over the same images (random:
    each image's mean over its seeds); and the estimate pooled over seeds (each image's mean)."""
    from ..stats import verdict_claim

    (lr, pr), (lp, pp) = pairs[RANDOM], pairs[PROGRESSIVE]
    ok_r, ok_p = (100.0 * (lr == pr)).mean(1), 100.0 * (lp == pp)
    per_seed = [paired_difference(ok_r, ok_p[:, j]) for j in range(ok_p.shape[1])]
    pooled = paired_difference(ok_r, ok_p.mean(1), seeds=ok_p.shape[1])
    return [verdict_claim(d) for d in per_seed], pooled


# ---------------------------------------------------------------------------------- Fig. 4
@dataclass
class MaskSweep:
    """Fig. 4: ``E[Delta x]`` of one test image ``index`` per (ratio, patch), and the rate of
    correctly classified masks (rows: ratios, columns: patch sizes)."""

    index: int
    label: int
    estimates: dict[tuple[float, int], ExpectedUpdate]
    rates: pd.DataFrame

    def rate_falls(self) -> tuple[bool, bool]:
        """Whether the rate of correct masks at the largest ratio is below that at the smallest,
        for every patch size; and at the largest patch below the smallest, for every ratio."""
        r = self.rates
        return bool((r.iloc[-1] < r.iloc[0]).all()), bool((r.iloc[:, -1] < r.iloc[:, 0]).all())


def mask_sweep(
    study: Study,
    label: int = 2,
    ratios: Sequence[float] = (0.1, 0.25, 0.5, 0.75),
    patches: Sequence[int] = (1, 2, 4, 7),
    progress: bool = True,
) -> MaskSweep:
    """Fig. 4 (section 4.4): the first correctly classified MNIST test image of class ``label``,
    ``E[Delta x]`` for every mask ratio x patch size with ``N* > settings.fig4_min_correct``
    (at most ``10 * (N* + 1)`` masks per cell)."""
    import pandas as pd
    from tqdm.auto import tqdm

    s = study.settings
    name = s.fig_model
    x_all, y_all = study.data["mnist"]
    i = int(torch.nonzero((y_all == label) & (study.predictions[name] == label))[0])
    base = study.methods[name].replace(
        min_correct=s.fig4_min_correct, max_masks=10 * (s.fig4_min_correct + 1)
    )
    ests = {}
    for r in tqdm(ratios, desc="Fig. 4", disable=not progress):
        for p in patches:
            ests[r, p] = base.replace(ratio=r, patch=p).expected_update(x_all[i], label)
    rates = pd.DataFrame(
        [[ests[r, p].correct_rate for p in patches] for r in ratios],
        index=[f"eta={r}" for r in ratios],
        columns=[f"patch {p}" for p in patches],
    )
    return MaskSweep(i, label, ests, rates)


# ---------------------------------------------------------------------------------- Fig. 5
@dataclass
class OrderComparison:
    """Fig. 5: per image the losses, BFGS iterations, cosine of the two updates on the blanks and
    IoU of their binarised fills (``stats``), the medians with 95% CIs over images
    (``medians``), and four examples ``(index, class, keep, fill first-order, fill BFGS)``."""

    stats: pd.DataFrame
    medians: dict[str, Estimate]
    examples: list[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]]
    bfgs_iterations: int

    def check_lines(self) -> list[str]:
        """The checked statements: each median's CI inside its :data:`FIG5_BANDS` band, BFGS
        within its iterations and never above the starting loss."""
        lines = []
        for key, (lo, hi) in FIG5_BANDS.items():
            e = self.medians[key]
            inside = "yes" if lo <= e.lo and e.hi <= hi + 1e-9 else "no"
            lines.append(f"median {key} over {e.n} images: 95% CI inside [{lo}, {hi}]: {inside}")
        st, it = self.stats, self.bfgs_iterations
        within = "yes" if (st["BFGS iterations"] <= it).all() else "no"
        lower = "yes" if (st["loss BFGS"] <= st["loss start"]).all() else "no"
        lines.append(f"BFGS stopped within {it} iterations on every image: {within}")
        lines.append(f"BFGS loss <= starting loss on every image: {lower}")
        return lines


def first_vs_second_order(study: Study, n_images: int | None = None) -> OrderComparison:
    """Fig. 5 (section 4.5): on ``n_images`` MNIST test images (image j: the (j // 10)-th
    correctly classified one of class j % 10, one mask of seed ``seed + j``) the gradient update
    ``Delta x_1`` against the BFGS update ``Delta x_2`` of the figure model, both through the same
    ``T``. An agreement measurement of two update rules, reported with medians over images."""
    import pandas as pd

    name = study.settings.fig_model
    f = study.methods[name]
    n = study.settings.fig5_images if n_images is None else n_images
    x_all, y_all = study.data["mnist"]
    examples, rec = [], []
    for j in range(n):
        c = j % 10
        i = int(torch.nonzero((y_all == c) & (study.predictions[name] == c))[j // 10])
        xi = x_all[i : i + 1]
        keep = patch_masks(1, xi.shape[-2:], f.ratio, f.patch, generator=make_generator(f.seed + j))
        d1 = f.update(xi, keep)[0].cpu()
        so = f.second_order_update(x_all[i], keep[0])
        d2 = so.delta[None]
        t_1, t_2 = f.threshold(d1, keep), f.threshold(d2, keep)
        bl = (1 - keep).bool().expand_as(d1)
        b1, b2 = t_1.bool(), t_2.bool()
        rec.append(
            {
                "image": i,
                "class": c,
                "loss start": so.loss_start,
                "loss BFGS": so.loss_end,
                "BFGS iterations": so.n_iter,
                "cosine(dx1, dx2)": float(F.cosine_similarity(d1[bl], d2[bl], dim=0)),
                "IoU(T(dx1), T(dx2))": float((b1 & b2).sum() / (b1 | b2).sum().clamp_min(1)),
            }
        )
        if j < 10 and c in (0, 3, 5, 8):
            examples.append((i, c, keep, fill(xi, keep, t_1), fill(xi, keep, t_2)))
    stats = pd.DataFrame(rec)
    medians = {k: estimate(stats[k], statistic="median") for k in FIG5_BANDS}
    return OrderComparison(stats, medians, examples, f.bfgs_iterations)


def order_scorecard(study: Study, comparison: OrderComparison, scorecard: Scorecard) -> None:
    """Fig. 5's two ``observed`` scorecard rows (median cosine and IoU, CIs over images)."""
    s = study.settings
    setting = (
        f"{s.profile}: {s.fig_model}, {len(comparison.stats)} images (2/class), one mask each, "
        f"BFGS <= {comparison.bfgs_iterations} iterations; 95% CI: bootstrap over images"
    )
    item = "Fig. 5, first- vs second-order (CNN3)"
    scorecard.add(
        item,
        "median cosine(dx1, dx2) on the blanks",
        "",
        comparison.medians["cosine(dx1, dx2)"],
        setting,
        "observed",
    )
    scorecard.add(
        item,
        "median IoU of T(dx1), T(dx2)",
        "",
        comparison.medians["IoU(T(dx1), T(dx2))"],
        setting,
        "observed",
    )


# ---------------------------------------------------------------------------------- Fig. 6
@dataclass
class BinarisationComparison:
    """Fig. 6: the fills of ``classes`` (random masking: ``E[Delta x]`` of Fig. 2; progressive)
    binarised and not, and their predicted classes per variant (``predictions``)."""

    classes: list[int]
    random_fills: dict[str, torch.Tensor]  # "binarised" / "not binarised": [n, C, H, W]
    progressive: dict[str, ProgressiveFill]
    predictions: dict[str, torch.Tensor]

    def kept_class(self, variant: str) -> int:
        """How many fills of ``variant`` are classified as their class."""
        return int((self.predictions[variant] == torch.tensor(self.classes)).sum())


def binarisation_comparison(
    study: Study, panels: dict[str, ExpectedPanel], classes: Sequence[int] = (0, 3, 5, 8)
) -> BinarisationComparison:
    """Fig. 6 (section 4.6): binarised ``T`` against ``binarize=None`` for random masking (the
    MNIST ``E[Delta x]`` of Fig. 2) and progressive masking of the same images."""
    p = panels["MNIST"]
    f = study.methods[p.model]
    soft = f.replace(binarize=None)
    xs = p.x[[p.indices[c] for c in classes]]
    random_fills = {
        v: torch.stack([g.expected_fill(p.x[p.indices[c]], p.estimates[c]) for c in classes])
        for v, g in (("binarised", f), ("not binarised", soft))
    }
    prog = {"binarised": f.progressive(xs), "not binarised": soft.progressive(xs)}
    preds = {f"random, {v}": f.predict(t) for v, t in random_fills.items()}
    preds.update({f"progressive, {v}": f.predict(r.image) for v, r in prog.items()})
    return BinarisationComparison(list(classes), random_fills, prog, preds)


# --------------------------------------------------------------------- notebook 04: figures
def _plt():
    import matplotlib.pyplot as plt

    return plt


def _clean_axes(axes: np.ndarray) -> None:
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])


def plot_single_fill(study: Study, case: SingleFill) -> Figure:
    """Fig. 1: x, the mask, M(x), the signed update on the blanks (red +, blue -) over M(x), and
    the fill M(x) + T(dx)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 5, figsize=(12, 2.8))
    keep = case.keep
    blank = (1 - keep)[0, 0].numpy().astype(bool)
    d = (case.delta * (1 - keep))[0, 0].numpy()
    lim = float(np.abs(d).max()) or 1.0
    masked = apply_mask(case.x, keep)[0, 0]
    panels = [(case.x[0, 0], "x"), (keep[0, 0], "mask M (black: blank)"), (masked, "M(x)")]
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
    axes[3].imshow(masked, cmap="gray", vmin=0, vmax=1)
    axes[3].imshow(np.ma.masked_where(~blank, d), cmap="bwr", vmin=-lim, vmax=lim)
    axes[3].set_title("M(x) + M~(dx): red +, blue -", fontsize=9)
    axes[4].imshow(case.filled[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[4].set_title("M(x) + T(dx)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    f = study.methods[case.model]
    fig.suptitle(f"Fig. 1 ({case.model}): eta={f.ratio}, patch {f.patch}x{f.patch}", fontsize=10)
    return fig


def plot_expected(study: Study, panels: dict[str, ExpectedPanel]) -> Figure:
    """Fig. 2: per panel and class, x, E[dx] (red +, blue -), M(x) + T(E[dx]) and T(E[dx]) over
    the whole image."""
    plt = _plt()
    fig, axes = plt.subplots(4 * len(panels), 10, figsize=(13, 11))
    for p, (panel, pn) in enumerate(panels.items()):
        f, labels = study.methods[pn.model], study.labels(pn.model)
        for c, (i, e) in enumerate(zip(pn.indices, pn.estimates)):
            col = axes[4 * p : 4 * p + 4, c]
            m = e.mean[0].numpy()
            lim = float(np.abs(m).max()) or 1.0
            col[0].imshow(pn.x[i, 0], cmap="gray", vmin=0, vmax=1)
            col[0].set_title(labels[c][:11], fontsize=8)
            col[1].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
            col[2].imshow(f.expected_fill(pn.x[i], e)[0], cmap="gray", vmin=0, vmax=1)
            col[3].imshow(f.expected_prototype(e)[0], cmap="gray", vmin=0, vmax=1)
        for r, text in enumerate(["x", "E[dx]", "M(x)+T(E[dx])", "T(E[dx]) whole"]):
            axes[4 * p + r, 0].set_ylabel(f"({'ab'[p]}) {text}" if r == 0 else text, fontsize=8)
    _clean_axes(axes)
    s = study.settings
    fig.suptitle(
        f"Fig. 2: (a) MNIST, {panels['MNIST'].model}; (b) Fashion-MNIST, "
        f"{panels['Fashion-MNIST'].model}; N* > {s.fig2_min_correct} per image",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_progressive(examples: Sequence[ProgressiveExample]) -> Figure:
    """Fig. 3: per example, the masks M_i, the region predicted so far and the image after each
    step."""
    plt = _plt()
    k = examples[0].result.keeps.shape[1]
    fig, axes = plt.subplots(
        3 * len(examples), k + 1, figsize=(1.9 * (k + 1), 1.9 * 3 * len(examples))
    )
    for e, ex in enumerate(examples):
        rows, res = axes[3 * e : 3 * e + 3], ex.result
        rows[0, 0].imshow(ex.x[0], cmap="gray", vmin=0, vmax=1)
        rows[0, 0].set_title(f"x ({ex.model})", fontsize=8)
        rows[1, 0].axis("off")
        rows[2, 0].axis("off")
        for i in range(k):
            rows[0, i + 1].imshow(res.keeps[0, i, 0], cmap="gray", vmin=0, vmax=1)
            rows[0, i + 1].set_title(f"M{i + 1}", fontsize=8)
            rows[1, i + 1].imshow(res.predicted_region[0, i, 0], cmap="gray", vmin=0, vmax=1)
            rows[1, i + 1].set_title(f"predicted {100 * (i + 1) // k}%", fontsize=8)
            rows[2, i + 1].imshow(res.fills[0, i, 0], cmap="gray", vmin=0, vmax=1)
            rows[2, i + 1].set_title(f"after step {i + 1}", fontsize=8)
    _clean_axes(axes)
    fig.suptitle(f"Fig. 3: progressive masking, k={k} masks of {100 // k}%", fontsize=10)
    fig.tight_layout()
    return fig


def plot_table1(t1: Table1) -> Figure:
    """Table 1 as a figure: value and 95% CI per run, mechanism and metric; the paper's value
    (star) and its +- tolerance band (grey)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    mechs = [RANDOM, PROGRESSIVE, WHOLE, NOISE]
    short_name = dict(
        zip(mechs, [RANDOM, PROGRESSIVE, "random, whole T(E[dx])", "random-saliency fill"])
    )
    for ax, metric in zip(axes, SCORE_NAMES):
        for r, (run, col) in enumerate(zip(t1.pairs, ["C0", "C3", "C2", "C1", "C4"])):
            ests = [t1.scores[run, m][metric] for m in mechs]
            ypos = np.arange(len(mechs)) + (r - (len(t1.pairs) - 1) / 2) * 0.8 / len(t1.pairs)
            xerr = [[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]]
            label = run if metric == SCORE_NAMES[0] else None
            values = [e.value for e in ests]
            ax.errorbar(values, ypos, xerr=xerr, fmt="o", color=col, capsize=3, label=label)
        for m, pv in TABLE1_PAPER.items():
            yp = mechs.index(m)
            first = metric == SCORE_NAMES[0] and m == RANDOM
            ax.plot(
                [pv], [yp], marker="*", color="k", markersize=11, linestyle="none",
                label="paper (ResNet5)" if first else None,
            )  # fmt: skip
            ax.fill_betweenx(
                [yp - 0.4, yp + 0.4], pv - TABLE1_TOL, pv + TABLE1_TOL, color="0.85", zorder=0
            )
        ax.set_yticks(range(len(mechs)), [short_name[m] for m in mechs], fontsize=8)
        ax.set_xlim(0, 102)
        ax.set_xlabel(f"{metric} [%]", fontsize=9)
        ax.invert_yaxis()
    fig.legend(loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(
        f"Table 1 (MNIST): value and 95% CI over images ({t1.n_images} for the trained models; "
        f"mask seeds {t1.random_seeds} random, {t1.seeds} progressive); grey: paper "
        f"+- {TABLE1_TOL:g}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def misclassified_counts(t1: Table1, run: str | None = None) -> dict[str, tuple[int, int]]:
    """Per mechanism (random, progressive), ``(misclassified, all)`` prototypes of ``run``
    (default: the table model) in :attr:`Table1.prototypes` (the first mask seed)."""
    run = t1.study.settings.table_model if run is None else run
    return {m: (int((lab != pr).sum()), len(lab)) for m, (lab, pr, _) in t1.prototypes[run].items()}


def plot_misclassified(t1: Table1, run: str | None = None, n: int = 8) -> Figure:
    """The prototypes behind Table 1's errors: for random (4.1) and progressive (4.2) masking
    (the first mask seed, the default binarisation; ``run`` default: the table model), up to
    ``n`` prototypes that the model misclassifies, each titled with its label ``y_hat`` and the
    model's prediction, beside (below) up to ``n`` correctly classified ones."""
    run = t1.study.settings.table_model if run is None else run
    if run not in t1.prototypes:
        raise ValueError(
            f"no prototypes of run {run!r} in this Table 1; runs: {list(t1.prototypes)}"
        )
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    plt = _plt()
    mechs = t1.prototypes[run]
    fig, axes = plt.subplots(2 * len(mechs), n, figsize=(1.5 * n, 1.75 * 2 * len(mechs)))
    axes = np.asarray(axes).reshape(2 * len(mechs), n)
    for r, (mech, (lab, pr, img)) in enumerate(mechs.items()):
        for row, (wrong, what) in enumerate(((True, "misclassified"), (False, "correct"))):
            ax_row = axes[2 * r + row]
            picks = np.nonzero((lab != pr) == wrong)[0][:n]
            for ax, i in zip(ax_row, picks):
                ax.imshow(img[i, 0], cmap="gray", vmin=0, vmax=1)
                ax.set_title(
                    f"y_hat {int(lab[i])}, f {int(pr[i])}", fontsize=8, color="C3" if wrong else "k"
                )
            for ax in ax_row[len(picks) :]:
                ax.set_frame_on(False)  # empty (the row's label stays visible)
            ax_row[0].set_ylabel(
                f"{mech}\n{what}: {len(np.nonzero((lab != pr) == wrong)[0])} of {len(lab)}",
                fontsize=8,
            )
    _clean_axes(axes)
    fig.suptitle(
        f"Table 1 prototypes of {run} (first mask seed): misclassified (red) and correct; "
        "title: label y_hat, model's prediction f",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_mask_sweep(study: Study, sweep: MaskSweep) -> Figure:
    """Fig. 4: M(x) + T(E[dx]) per mask ratio (rows) x patch size (columns), with the achieved
    blank fraction in each title."""
    plt = _plt()
    name = study.settings.fig_model
    f, x = study.methods[name], study.data["mnist"][0][sweep.index]
    ratios = sorted({r for r, _ in sweep.estimates})
    patches = sorted({p for _, p in sweep.estimates})
    fig, axes = plt.subplots(
        len(ratios), len(patches), figsize=(2.2 * len(patches), 2.3 * len(ratios)), squeeze=False
    )
    for a, r in enumerate(ratios):
        for b, p in enumerate(patches):
            ax = axes[a, b]
            ax.imshow(f.expected_fill(x, sweep.estimates[r, p])[0], cmap="gray", vmin=0, vmax=1)
            frac = blank_fraction(r, tuple(x.shape[-2:]), p)
            ax.set_title(f"eta={r} (blank {frac:.2f}), {p}x{p}", fontsize=7)
            ax.axis("off")
    fig.suptitle(
        f"Fig. 4 ({name}): M(x) + T(E[dx]), mask ratio (rows) x patch size (columns)", fontsize=10
    )
    fig.tight_layout()
    return fig


def plot_orders(study: Study, comparison: OrderComparison) -> Figure:
    """Fig. 5: M(x) and the fills of the gradient and of the BFGS update for four images."""
    plt = _plt()
    x_all = study.data["mnist"][0]
    ex = comparison.examples
    fig, axes = plt.subplots(3, len(ex), figsize=(2.2 * len(ex), 6.8), squeeze=False)
    for b, (i, _c, keep, f1, f2) in enumerate(ex):
        axes[0, b].imshow(apply_mask(x_all[i : i + 1], keep)[0, 0], cmap="gray", vmin=0, vmax=1)
        axes[1, b].imshow(f1[0, 0], cmap="gray", vmin=0, vmax=1)
        axes[2, b].imshow(f2[0, 0], cmap="gray", vmin=0, vmax=1)
    for r, t in enumerate(["M(x)", "M(x)+T(dx1), gradient", "M(x)+T(dx2), BFGS"]):
        axes[r, 0].set_ylabel(t, fontsize=8)
    _clean_axes(axes)
    fig.suptitle(
        f"Fig. 5 ({study.settings.fig_model}): first-order vs second-order "
        f"(BFGS, <= {comparison.bfgs_iterations} iterations)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_binarisation(study: Study, comparison: BinarisationComparison) -> Figure:
    """Fig. 6: rows random masking binarised / not, progressive binarised / not."""
    plt = _plt()
    n = len(comparison.classes)
    fig, axes = plt.subplots(4, n, figsize=(2.2 * n, 9), squeeze=False)
    rows = [
        comparison.random_fills["binarised"],
        comparison.random_fills["not binarised"],
        comparison.progressive["binarised"].image,
        comparison.progressive["not binarised"].image,
    ]
    for r, imgs in enumerate(rows):
        for b in range(n):
            axes[r, b].imshow(imgs[b, 0], cmap="gray", vmin=0, vmax=1)
    names = ["random, binarised", "random, not binarised", "progressive, binarised"]
    for r, t in enumerate([*names, "progressive, not bin."]):
        axes[r, 0].set_ylabel(t, fontsize=8)
    _clean_axes(axes)
    fig.suptitle(f"Fig. 6 ({study.settings.fig_model}): binarised vs non-binarised T", fontsize=10)
    fig.tight_layout()
    return fig


def plot_fill_panel(
    study: Study, index: int, ratio: float, patch: int, mask_seed: int
) -> Figure | None:
    """The interactive panel: x, M(x) and the single-mask fill M(x) + T(dx) of MNIST test image
    ``index`` with the figure model, for one mask of ``ratio`` and ``patch`` drawn from
    ``mask_seed``. A ratio that blanks no whole patch, or every patch, is printed, not drawn."""
    plt = _plt()
    x_all, y_all = study.data["mnist"]
    xi = x_all[index : index + 1]
    try:
        keep = patch_masks(1, xi.shape[-2:], ratio, patch, generator=make_generator(mask_seed))
    except ValueError as err:
        print(err)
        return None
    f = study.methods[study.settings.fig_model]
    labels = study.labels(study.settings.fig_model)
    out = f.fill(xi, keep).cpu()
    fig, axes = plt.subplots(1, 3, figsize=(6.6, 2.4))
    titles = [
        f"x (label {labels[int(y_all[index])]})",
        f"M(x), blank {float((1 - keep).mean()):.2f}",
        f"M(x)+T(dx) -> {labels[int(f.predict(out)[0])]}",
    ]
    for ax, img, t in zip(axes, [xi, apply_mask(xi, keep), out], titles):
        ax.imshow(img[0, 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    values = {"image": index, "η": ratio, "patch": patch, "mask seed": mask_seed}
    fig.suptitle(", ".join(f"{k} = {v:g}" for k, v in values.items()), fontsize=9)
    fig.tight_layout()
    return fig


#: the mask-ratio slider's values: 0.05 .. 0.95 exactly (the paper's 0.25 and Fig. 4's among them)
PANEL_RATIOS = tuple(round(0.05 * k, 2) for k in range(1, 20))
PANEL_PATCHES = (1, 2, 4, 7, 14)  # divisors of 28 (MNIST); the paper's 2 and Fig. 4's 1, 2, 4, 7


def fill_panel(
    study: Study, index: int, ratio: float = 0.25, patch: int = 2, mask_seed: int = 0
) -> object:
    """Notebook 04's slider panel: "image" (an MNIST test index), "η" (:data:`PANEL_RATIOS`),
    "patch" (:data:`PANEL_PATCHES`) and "mask seed"; each move shows :func:`plot_fill_panel`
    (its title names the values), with the busy state of :func:`visxai.plotting.busy_panel`.
    Returns the panel widget."""
    import ipywidgets as widgets

    from ..plotting import busy_panel

    n = len(study.data["mnist"][0])
    for name, v, allowed in (("ratio", ratio, PANEL_RATIOS), ("patch", patch, PANEL_PATCHES)):
        if v not in allowed:
            raise ValueError(f"fill_panel: {name}={v!r} is not a slider value {list(allowed)}")
    if not 0 <= index < n:
        raise ValueError(f"fill_panel: index={index} is not an MNIST test index (0..{n - 1})")
    controls = {
        "index": widgets.IntSlider(index, 0, n - 1, description="image"),
        "ratio": widgets.SelectionSlider(options=PANEL_RATIOS, value=ratio, description="η"),
        "patch": widgets.SelectionSlider(options=PANEL_PATCHES, value=patch, description="patch"),
        "mask_seed": widgets.IntSlider(mask_seed, 0, 99, description="mask seed"),
    }
    return busy_panel(lambda **v: plot_fill_panel(study, **v), controls)
