"""Notebook 01 / Pixel Invariance: the case, the run, Table I with its controls, and the verdicts.

They stand on :mod:`visxai.methods.pixel_invariance` (the method, the metrics of Table I and
:func:`~visxai.methods.pixel_invariance.invariance_table`):

* :func:`invariance_case`: the models (through :func:`visxai.models.load_model`) and photos of a
  profile (:data:`INVARIANCE_PROFILES`, configuration only);
* :func:`run_table1`: Table I over photos and seeds, with the random-map and model-randomisation
  controls;
* :func:`table1_report`: the estimates with their 95% CIs, the verdicts against the paper and of
  the paper's claim, the scorecard rows, the texts the notebook prints and its figures;
* :func:`schedule_comparison`: the convergent fit of Eq. 2 against the paper's schedule on one
  photo (both heatmaps, their Pearson r, the final losses);
* :func:`refit_panel`: the α / λ / V slider panel (:func:`refit_figure`).

Written by hand: the protocol glue (loops, tables, figures); the statistics are
:mod:`visxai.stats` (scipy's bootstrap), the figures matplotlib.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..device import pick_device
from ..methods.pixel_invariance import (
    TABLE1_METRICS,
    InvarianceResult,
    ModelEntry,
    PixelInvariance,
    claim_difference,
    invariance_table,
    per_image,
    without_head,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..scorecard import Scorecard
    from ..stats import Estimate

__all__ = [
    "TABLE1_VARIANTS",
    "PAPER_TABLE1",
    "CLAIM_BETTER",
    "CLAIM_WORSE",
    "CLAIM_TEXT",
    "CLAIM_SHORT",
    "RANDOM_MAP_METRICS",
    "Table1Report",
    "table1_report",
    "mean_curve",
    "INVARIANCE_PROFILES",
    "VARIANT_SUFFIX",
    "photo_variants",
    "photo_of",
    "InvarianceCase",
    "invariance_case",
    "run_table1",
    "AugmentCheck",
    "augment_check",
    "invariance_photos",
    "compare_augments",
    "ScheduleComparison",
    "schedule_comparison",
    "PANEL_ALPHAS",
    "PANEL_LAMBDAS",
    "PANEL_VS",
    "refit_figure",
    "refit_panel",
]


# ------------------------------------------------------------------------------------------------
# Table I, the claim, the controls and their verdicts
# ------------------------------------------------------------------------------------------------

#: Table I's rows per model: variant -> (weights, saliency) in :func:`invariance_table`'s frame
TABLE1_VARIANTS = {
    "heatmap": ("trained", "heatmap"),
    "random map": ("trained", "random map"),
    "randomised model": ("randomised", "heatmap"),
}

#: Table I of the paper (ResNet-50 models, 100 ImageNet validation images), TABLE1_METRICS order
PAPER_TABLE1 = {
    "SimCLRv2 (1x)": (0.648, 0.281, 0.562, 0.004),
    "SimCLRv2 (2x)": (0.689, 0.269, 0.448, 0.024),
    "Barlow Twins": (0.619, 0.210, 0.623, 0.084),
    "SimSiam": (0.713, 0.330, 0.413, 0.054),
}

#: the paper's claim (Sec. IV-B): the negative-pair-free models are more invariant than SimCLRv2
CLAIM_BETTER = ("SimSiam", "Barlow Twins")
CLAIM_WORSE = ("SimCLRv2 (1x)", "SimCLRv2 (2x)")
CLAIM_TEXT = "SimSiam and Barlow Twins more invariant than SimCLRv2"
CLAIM_SHORT = "SimSiam + Barlow Twins minus SimCLRv2"

#: the metrics on which a heatmap is tested against a random map
RANDOM_MAP_METRICS = ("Insertion", "Deletion")

EstimateKey = tuple[str, str, str, int | None]  # (model, variant, metric, seed or None = pooled)
PerSeed = dict[int | None, "Estimate"]  # seed (None: per-image means over the seeds) -> Estimate


def _joined(verdicts: Sequence[str], width: int) -> str:
    from ..stats import verdict_over_seeds

    return f"{' / '.join(verdicts):{width}s} -> {verdict_over_seeds(verdicts)}"


@dataclass
class Table1Report:
    """Table I with its CIs, the paper comparison, the claim and the random-map test (notebook 01).

    Built by :func:`table1_report` from :func:`invariance_table`'s frame. Every estimate is a
    mean over the photos with a 95% bootstrap CI over the photos, per seed and pooled
    (``None``: per photo the mean over the seeds). The views of one photo (:func:`photo_variants`:
    original, flipped, cropped; ``n_images`` in all) are averaged into one value per photo
    first: they are not independent draws, so the photo is the unit the bootstrap resamples.
    Verdicts are per seed, in ``seeds`` order:

    * ``paper_verdicts[(row, metric)]``: :func:`visxai.stats.verdict_paper` of the heatmap row
      against ``paper`` with tolerance ``paper_tol``;
    * ``claim_verdicts[metric]``: :func:`visxai.stats.verdict_claim` (``margin``) of
      :attr:`claim` (the paired difference "better minus worse", signed so that > 0 supports the
      claim), made ``uninformative`` by :func:`visxai.stats.verdict_controlled` when the same
      comparison on the randomised models (:attr:`control`) gives the same holds/fails;
    * ``overall``: the claim on a seed holds (fails) only when all four metrics hold (fail);
    * ``random_verdicts[(row, metric)]``: "the heatmap beats a random map" with the same margin
      and randomised-model control.
    """

    rows: tuple[str, ...]
    seeds: tuple[int, ...]
    margin: float
    paper_tol: float
    paper: dict[str, tuple[float, ...]]
    estimates: dict[EstimateKey, Estimate]
    paper_verdicts: dict[tuple[str, str], list[str]]
    claim: dict[str, PerSeed]
    control: dict[str, PerSeed]
    claim_verdicts: dict[str, list[str]]
    overall: list[str]
    random: dict[tuple[str, str], PerSeed]
    random_control: dict[tuple[str, str], PerSeed]
    random_verdicts: dict[tuple[str, str], list[str]]
    rank_corr: dict[str, Estimate]
    n_photos: int
    n_images: int = 0
    #: (row, variant) -> the number of images behind it (the views of its photos)
    images_per_row: dict[tuple[str, str], int] = field(default_factory=dict)
    claim_text: str = CLAIM_TEXT
    claim_short: str = CLAIM_SHORT

    def table(self) -> pd.DataFrame:
        """Table I: one row per (model, map variant), ``value [lo, hi]`` per metric (pooled)."""
        import pandas as pd

        est = self.estimates
        recs = [
            {
                "model": row,
                "map": v,
                "n images": self.images_per_row.get((row, v), est[(row, v, "Insertion", None)].n),
                "n photos": est[(row, v, "Insertion", None)].n,
                **{m: est[(row, v, m, None)].fmt() for m in TABLE1_METRICS},
            }
            for row in self.rows
            for v in TABLE1_VARIANTS
        ]
        return pd.DataFrame(recs).set_index(["model", "map"])

    def long(self) -> pd.DataFrame:
        """The pooled estimates, one row each: model, map, metric, value, ci_lo, ci_hi, n, seeds."""
        import pandas as pd

        return pd.DataFrame(
            [
                dict(model=row, map=v, metric=m, value=e.value, ci_lo=e.lo, ci_hi=e.hi, n=e.n)
                | {"seeds": e.seeds}
                for (row, v, m, s), e in self.estimates.items()
                if s is None
            ]
        )

    def paper_text(self, per_seed: bool = True) -> str:
        """Table I against the paper: the per-seed verdicts (``per_seed``) or only their verdict."""
        from ..stats import verdict_over_seeds

        band = f"Table I vs paper (band paper +- {self.paper_tol})"
        if per_seed:
            head = f"{band}, verdicts for seeds {self.seeds}:"
            body = [
                f"  {r:14s} {m:10s} {_joined(vs, 40)}" for (r, m), vs in self.paper_verdicts.items()
            ]
        else:
            head = f"{band}, verdict over seeds {self.seeds}:"
            body = [
                f"  {r:14s} {m:10s} {verdict_over_seeds(vs)}"
                for (r, m), vs in self.paper_verdicts.items()
            ]
        return "\n".join([head, *body])

    def ci_text(self) -> str:
        """The CIs behind the claim and random-map verdicts, per seed (trained | randomised)."""
        from ..stats import verdict_claim

        def show(e: Estimate) -> str:
            return f"{e.fmt():24s} {verdict_claim(e, margin=self.margin):12s}"

        out = [f"{self.claim_short} (> {self.margin} = claim): trained | randomised models"]
        for m in TABLE1_METRICS:
            for s in self.seeds:
                out.append(
                    f"  {m:10s} seed {s}: {show(self.claim[m][s])} | {show(self.control[m][s])}"
                )
        out.append(
            f"\nheatmap minus random map (> {self.margin} = heatmap better): "
            "trained | randomised model"
        )
        for (r, m), est in self.random.items():
            ctl = self.random_control[(r, m)]
            for s in self.seeds:
                out.append(f"  {r:14s} {m:10s} seed {s}: {show(est[s])} | {show(ctl[s])}")
        return "\n".join(out)

    def claim_lines(self) -> str:
        """The claim's and the random-map test's verdicts per seed and over the seeds."""
        out = [
            f"claim: {self.claim_text} (margin {self.margin}, randomised-model control), "
            f"seeds {self.seeds}"
        ]
        out += [f"  {m:10s} {_joined(vs, 45)}" for m, vs in self.claim_verdicts.items()]
        out.append(f"  {'all four':10s} {_joined(self.overall, 45)}")
        out.append(
            f"\nheatmap beats a random map (margin {self.margin}, randomised-model control), "
            f"seeds {self.seeds}"
        )
        out += [
            f"  {r:14s} {m:10s} {_joined(vs, 45)}" for (r, m), vs in self.random_verdicts.items()
        ]
        return "\n".join(out)

    def verdict_table(self) -> dict[str, list[str]]:
        """Every per-seed holds/fails verdict, for :func:`visxai.scorecard.stability_table`."""
        table = {f"claim on {m}": v for m, v in self.claim_verdicts.items()}
        table["claim on all four metrics"] = self.overall
        table.update(
            {
                f"{r} heatmap beats random map on {m}": v
                for (r, m), v in self.random_verdicts.items()
            }
        )
        return table

    def stability_text(self) -> str:
        """The closing cell: the stability table, the verdict counts, Table I vs the paper."""
        from ..scorecard import stability_table

        stab = stability_table(self.verdict_table(), seeds=self.seeds)
        counts = stab.verdict.value_counts().to_dict()
        return (
            f"{stab.to_string()}\n\nfinal verdicts: {counts}\n\n{self.paper_text(per_seed=False)}"
        )

    def plot_table1(self) -> Figure:
        """Table I as error bars: per metric, every model's heatmap, random map and randomised
        model (pooled estimates, 95% CI over photos)."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharey=True)
        colors = {"heatmap": "C3", "random map": "C7", "randomised model": "C0"}
        for ax, metric in zip(axes, TABLE1_METRICS):
            for k, variant in enumerate(TABLE1_VARIANTS):
                for i, row in enumerate(self.rows):
                    e = self.estimates[(row, variant, metric, None)]
                    ax.errorbar(
                        e.value,
                        i + 0.22 * (k - 1),
                        xerr=[[e.value - e.lo], [e.hi - e.value]],
                        fmt="o",
                        ms=4,
                        color=colors[variant],
                        label=variant if i == 0 else None,
                        capsize=2,
                    )
            arrow = "higher" if TABLE1_METRICS[metric][1] else "lower"
            ax.set_title(f"{metric} ({arrow} = better)", fontsize=9)
            ax.set_yticks(range(len(self.rows)), list(self.rows))
        axes[0].invert_yaxis()
        # one legend under the panels, outside every axes (inside, it hid a row's error bars)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
        fig.suptitle(
            f"Table I: {self.n_images or self.n_photos} images of {self.n_photos} photos, seeds "
            f"{self.seeds}; mean over photos, 95% bootstrap CI over photos",
            fontsize=10,
        )
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        return fig

    def plot_claim(self) -> Figure:
        """Left: the claim's paired difference per metric, per seed and pooled, trained and
        randomised (the control); right: heatmap minus random map, pooled; dashed: ``margin``."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        labels = list(TABLE1_METRICS)
        for k, (name, src) in enumerate(
            (("trained", self.claim), ("randomised (control)", self.control))
        ):
            for j, s in enumerate((*self.seeds, None)):
                xs = np.arange(len(labels)) + 0.15 * (j - 1.5) + 0.04 * k
                e = [src[m][s] for m in labels]
                axes[0].errorbar(
                    xs,
                    [x.value for x in e],
                    yerr=[[x.value - x.lo for x in e], [x.hi - x.value for x in e]],
                    fmt="o" if k == 0 else "s",
                    ms=4,
                    capsize=2,
                    color=f"C{j}" if s is not None else "k",
                    alpha=1.0 if k == 0 else 0.45,
                    label=f"{name}, {'seed ' + str(s) if s is not None else 'seeds pooled'}",
                )
        axes[0].axhline(self.margin, color="grey", lw=0.8, ls="--")
        axes[0].axhline(0, color="grey", lw=0.5)
        axes[0].set_xticks(range(len(labels)), labels)
        axes[0].set_ylabel("SimSiam+BT better than SimCLRv2")
        axes[0].set_title(
            "claim: paired difference, 95% CI over photos (dashed: margin)", fontsize=9
        )
        axes[0].legend(fontsize=5.5, ncol=2)
        keys = list(self.random)
        e = [self.random[k][None] for k in keys]
        axes[1].errorbar(
            range(len(keys)),
            [x.value for x in e],
            yerr=[[x.value - x.lo for x in e], [x.hi - x.value for x in e]],
            fmt="o",
            capsize=2,
            color="C3",
        )
        axes[1].axhline(self.margin, color="grey", lw=0.8, ls="--")
        axes[1].axhline(0, color="grey", lw=0.5)
        axes[1].set_xticks(
            range(len(keys)), [f"{r}\n{m}" for r, m in keys], fontsize=6, rotation=45, ha="right"
        )
        axes[1].set_title("heatmap better than a random map (seeds pooled), 95% CI", fontsize=9)
        fig.tight_layout()
        return fig

    def add_to(self, scorecard: Scorecard, setting: str) -> None:
        """Add notebook 01's scorecard rows; ``setting`` describes the run (profile, B, n)."""
        from ..stats import verdict_claim, verdict_over_seeds

        sc, base, est = scorecard, setting, self.estimates
        for row in self.rows:
            for k, metric in enumerate(TABLE1_METRICS):
                sc.add(
                    row,
                    f"Table I {metric}",
                    self.paper[row][k],
                    est[(row, "heatmap", metric, None)],
                    f"{base}; agrees = CI within paper +- {self.paper_tol}",
                    verdict_over_seeds(self.paper_verdicts[(row, metric)]),
                )
        item = f"claim: {self.claim_text}"
        for metric in TABLE1_METRICS:
            ctl = ", ".join(
                verdict_claim(self.control[metric][s], margin=self.margin) for s in self.seeds
            )
            sc.add(
                item,
                f"{metric} (paired difference, > 0 = claim)",
                "holds (Table I)",
                self.claim[metric][None],
                f"{base}, paired; margin {self.margin}; randomised-model control per seed: {ctl}",
                verdict_over_seeds(self.claim_verdicts[metric]),
            )
            sc.add(
                "control: the same claim on randomised models",
                f"{metric} (paired difference)",
                "-",
                self.control[metric][None],
                f"{base}, paired; re-initialised weights (Adebayo et al. 2018)",
                "observed",
            )
        sc.add(
            item,
            "all four metrics",
            "holds (Table I)",
            "per seed: " + ", ".join(self.overall),
            f"{base}; holds/fails on a seed only when all four metrics do",
            verdict_over_seeds(self.overall),
        )
        for (row, metric), vs in self.random_verdicts.items():
            sc.add(
                f"control: {row} heatmap beats a random map",
                f"{metric} AUC difference (> 0 = heatmap better)",
                "-",
                self.random[(row, metric)][None],
                f"{base}, paired; margin {self.margin}; randomised-model control",
                verdict_over_seeds(vs),
            )
        for row, e in self.rank_corr.items():
            sc.add(
                f"control: {row} vs its randomised copy",
                "Spearman of the two heatmaps",
                "-",
                e,
                f"{base}; 1 = the heatmap ignores the weights",
                "observed",
            )


def table1_report(
    frame: pd.DataFrame,
    rows: Iterable[str],
    seeds: Sequence[int],
    *,
    margin: float = 0.01,
    paper_tol: float = 0.05,
    paper: dict[str, tuple[float, ...]] | None = None,
    better: Sequence[str] = CLAIM_BETTER,
    worse: Sequence[str] = CLAIM_WORSE,
) -> Table1Report:
    """Table I, the paper comparison, the claim and the random-map test from ``frame``.

    ``frame``: :func:`invariance_table`'s output with both controls; ``rows``: the models (Table
    I's rows, in order; e.g. the keys of the case's ``models``); ``seeds``: the seeds of the
    frame, in order; ``paper``: row -> the paper's four Table I values (default
    :data:`PAPER_TABLE1`). See :class:`Table1Report` for the verdicts. Deterministic: every
    bootstrap is seeded.
    """
    from ..stats import estimate, verdict_claim, verdict_controlled, verdict_paper

    rows, seeds = tuple(rows), tuple(int(s) for s in seeds)
    paper = PAPER_TABLE1 if paper is None else paper
    n_images = int(frame.image.nunique())
    images_per_row = {
        (row, v): int(
            frame[(frame.model == row) & (frame.weights == w) & (frame.saliency == sal)]
            .image.nunique()
        )
        for row in rows
        for v, (w, sal) in TABLE1_VARIANTS.items()
    }
    # the views of one photo are one unit: per_image then averages them with the seeds
    frame = frame.assign(image=frame.image.map(photo_of))
    all_seeds: tuple[int | None, ...] = (None, *seeds)
    est: dict[EstimateKey, Estimate] = {}
    for row in rows:
        for variant, (weights, saliency) in TABLE1_VARIANTS.items():
            for metric, (col, _) in TABLE1_METRICS.items():
                for s in all_seeds:
                    vals = per_image(frame, row, col, weights, saliency, seed=s)
                    n = len(seeds) if s is None else 1
                    est[(row, variant, metric, s)] = estimate(vals.to_numpy(), seeds=n)
    paper_verdicts = {
        (row, metric): [
            verdict_paper(est[(row, "heatmap", metric, s)], paper[row][k], paper_tol) for s in seeds
        ]
        for row in rows
        for k, metric in enumerate(TABLE1_METRICS)
    }

    def controlled(trained: PerSeed, randomised: PerSeed) -> list[str]:
        return [
            verdict_controlled(
                verdict_claim(trained[s], margin=margin),
                verdict_claim(randomised[s], margin=margin),
            )
            for s in seeds
        ]

    claim, control, claim_verdicts = {}, {}, {}
    for metric in TABLE1_METRICS:
        claim[metric] = {
            s: claim_difference(frame, better, worse, metric, seed=s) for s in all_seeds
        }
        control[metric] = {
            s: claim_difference(frame, better, worse, metric, weights="randomised", seed=s)
            for s in all_seeds
        }
        claim_verdicts[metric] = controlled(claim[metric], control[metric])
    overall = [v[0] if len(set(v)) == 1 else "inconclusive" for v in zip(*claim_verdicts.values())]

    random, random_control, random_verdicts = {}, {}, {}
    for row in rows:
        for metric in RANDOM_MAP_METRICS:
            key = (row, metric)
            random[key] = {
                s: claim_difference(frame, row, None, metric, seed=s, against="random map")
                for s in all_seeds
            }
            random_control[key] = {
                s: claim_difference(
                    frame, row, None, metric, weights="randomised", seed=s, against="random map"
                )
                for s in all_seeds
            }
            random_verdicts[key] = controlled(random[key], random_control[key])

    rank_corr = {}
    for row in rows:
        sel = frame[
            (frame.model == row) & (frame.weights == "trained") & (frame.saliency == "heatmap")
        ]
        per_photo = sel.groupby("image", sort=False).rank_corr.mean().to_numpy()
        rank_corr[row] = estimate(per_photo, seeds=len(seeds))
    return Table1Report(
        rows=rows,
        seeds=seeds,
        margin=margin,
        paper_tol=paper_tol,
        paper=dict(paper),
        estimates=est,
        paper_verdicts=paper_verdicts,
        claim=claim,
        control=control,
        claim_verdicts=claim_verdicts,
        overall=overall,
        random=random,
        random_control=random_control,
        random_verdicts=random_verdicts,
        rank_corr=rank_corr,
        n_photos=int(frame.image.nunique()),
        n_images=n_images,
        images_per_row=images_per_row,
    )


def mean_curve(
    frame: pd.DataFrame,
    model: str,
    curve: str,
    saliency: str = "heatmap",
    weights: str = "trained",
) -> np.ndarray:
    """The mean over photos and seeds of ``curve`` (``"insertion_curve"``, ``"deletion_curve"``) of
    one model's rows of :func:`invariance_table`'s frame."""
    sel = frame[(frame.model == model) & (frame.weights == weights) & (frame.saliency == saliency)]
    if sel.empty:
        raise ValueError(f"no rows for model={model}, weights={weights}, saliency={saliency}")
    return np.stack(sel[curve].to_list()).mean(0)


# ------------------------------------------------------------------------------------------------
# notebook 01 / Pixel Invariance: the case (models and photos of a profile) and the run
# ------------------------------------------------------------------------------------------------

#: notebook 01's profiles (configuration only). offline: the EfficientNet-Lite ImageNet
#: backbones continued with each of the four objectives (the 2x row on Lite2, the widest Lite:
#: visxai.models.ssl_lite), the 17 offline photos as original / flipped / 70 % crop (51
#: images) at 64 px, both controls, and the supervised EfficientNet-Lite0/1/2 (Fig. 2 only); a
#: smaller B than the paper's 1000 to fit 3 seeds x 4 models x 51 images into the CPU budget
#: (:func:`augment_check` compares it with B = 1000 in the notebook). paper: the authors'
#: ResNet-50 checkpoints on the paper's 100 ImageNet validation images (the first 100 of the
#: committed subset list, ``VISXAI_IMAGENET_VAL``) at 224x224, a 64x64 surrogate (authors'
#: notebook), the control on every image and the notebook's B. ``augments=None``: the
#: notebook's B. ``photos``: "offline" (:func:`visxai.data.list_photos`) or "imagenet-val"
#: (``n_photos`` of them, the first ``FIG2_IMAGES`` shown in Fig. 2).
#: ``ssl_models``: Table I's rows -> :func:`visxai.models.load_model` names.
INVARIANCE_PROFILES: dict[str, dict[str, object]] = {
    "offline": dict(
        ssl_models={
            "SimCLRv2 (1x)": "ssl-lite-simclrv2-1x",
            "SimCLRv2 (2x)": "ssl-lite-simclrv2-2x",
            "Barlow Twins": "ssl-lite-barlowtwins",
            "SimSiam": "ssl-lite-simsiam",
        },
        photos="offline",
        n_photos=None,
        ssl_size=64,
        surrogate_size=None,
        augments=256,
        variants=("original", "flipped", "crop"),
        eval_steps=16,
        randomised="originals",
        erase_value=(0.5, 0.5, 0.5),
        classifiers={
            "EfficientNet-Lite0 (supervised)": "efficientnet-lite0",
            "EfficientNet-Lite1 (supervised)": "efficientnet-lite1",
            "EfficientNet-Lite2 (supervised)": "efficientnet-lite2",
        },
        classifier_size=64,
        classifier_photos=6,
        classifier_augments=256,
        description="EfficientNet-Lite ImageNet backbones continued with each objective",
    ),
    "paper": dict(
        ssl_models={
            "SimCLRv2 (1x)": "simclrv2-r50-1x",
            "SimCLRv2 (2x)": "simclrv2-r50-2x",
            "Barlow Twins": "barlowtwins-r50",
            "SimSiam": "simsiam-r50",
        },
        photos="imagenet-val",
        n_photos=100,
        ssl_size=224,
        surrogate_size=64,
        augments=None,
        variants=("original",),
        eval_steps=None,
        randomised=None,
        erase_value=None,
        classifiers={},
        classifier_size=224,
        classifier_photos=0,
        classifier_augments=None,
        description="authors' ResNet-50 checkpoint",
    ),
}

#: the photo variants of :func:`photo_variants` -> the suffix of their names
VARIANT_SUFFIX = {"original": "", "flipped": ", flipped", "crop": ", 70% crop"}


def photo_variants(
    name: str, size: int, variants: Sequence[str] = ("original", "flipped", "crop")
) -> dict[str, torch.Tensor]:
    """The offline photo ``name`` as [3, size, size] images in [0, 1]: ``original`` (short side
    resized, centre crop), ``flipped`` (its mirror image) and ``crop`` (the central 70 % of the
    original, resized back to ``size``), named ``name``, ``name, flipped``, ``name, 70% crop``.
    Three views of one scene are not independent: the CIs resample photos, not views."""
    import torch.nn.functional as F

    from ..models import ssl_miniatures

    unknown = [v for v in variants if v not in VARIANT_SUFFIX]
    if unknown:
        raise ValueError(f"unknown photo variant(s) {unknown}; known: {list(VARIANT_SUFFIX)}")
    big = ssl_miniatures.photo_tensor(name, int(round(size / 0.7)))
    out = {}
    for v in variants:
        if v == "original":
            img = ssl_miniatures.photo_tensor(name, size)
        elif v == "flipped":
            img = ssl_miniatures.photo_tensor(name, size).flip(-1)
        else:
            h = big.shape[-1]
            c = int(round(h * 0.7))
            o = (h - c) // 2
            img = F.interpolate(
                big[None, :, o : o + c, o : o + c], size=(size, size), mode="bilinear",
                antialias=True, align_corners=False,
            )[0].clamp(0, 1)  # fmt: skip
        out[name + VARIANT_SUFFIX[v]] = img.contiguous()
    return out


def photo_of(image: str) -> str:
    """The photo an image of :func:`photo_variants` was made from (its name without suffix)."""
    for suffix in VARIANT_SUFFIX.values():
        if suffix and image.endswith(suffix):
            return image[: -len(suffix)]
    return image


@dataclass
class InvarianceCase:
    """The models and photos of notebook 01 for one profile (see :func:`invariance_case`).

    ``models``: Table I's rows -> (projection-head model, mean, std); ``images``: every image
    -> [3, size, size] in [0, 1] (the Fig. 2 photos, ``shown``, first; offline each photo with
    its flipped and cropped variants, :func:`photo_variants`); ``classifier``: the supervised
    models of Fig. 2's last rows (penultimate features, :func:`without_head`) with their own
    ``classifier_images`` and ``classifier_augments`` (empty in the paper profile).
    ``eval_step``: pixels per Insertion / Deletion step (None: RISE's, about 224 steps);
    ``randomised_images``: the images of the model-randomisation control (None: all);
    ``erase_value``: the colour of random erasing (None: the models' normalisation mean).
    """

    profile: str
    models: dict[str, ModelEntry]
    images: dict[str, torch.Tensor]
    shown: tuple[str, ...]
    size: int
    surrogate_size: int | None
    n_augments: int
    description: str
    classifier: dict[str, ModelEntry] = field(default_factory=dict)
    classifier_images: dict[str, torch.Tensor] = field(default_factory=dict)
    classifier_size: int = 0
    classifier_augments: int = 0
    eval_step: int | None = None
    randomised_images: tuple[str, ...] | None = None
    erase_value: tuple[float, ...] | None = None
    prepared: dict[str, Any] = field(default_factory=dict, repr=False)  # the slider panel's cache

    @property
    def originals(self) -> tuple[str, ...]:
        """The images that are photos as they are (not a flipped or cropped view)."""
        return tuple(n for n in self.images if photo_of(n) == n)

    @property
    def n_photos(self) -> int:
        """The number of distinct photos behind the images."""
        return len({photo_of(n) for n in self.images})

    def summary(self, seeds: Sequence[int]) -> str:
        """What the run evaluates: models, size, images, B, seeds (and the Fig. 2 classifiers)."""
        ctrl = (
            "all images"
            if self.randomised_images is None
            else f"{len(self.randomised_images)} images"
        )
        steps = "RISE's steps" if self.eval_step is None else f"{self.eval_step} px per step"
        out = [
            f"{len(self.models)} SSL models at {self.size}x{self.size}, {len(self.images)} images "
            f"of {self.n_photos} photos, B={self.n_augments}, seeds {tuple(seeds)}; "
            f"randomised-model control on {ctrl}; Insertion / Deletion at {steps}"
        ]
        out += [
            f"{row}: {self.classifier_size}x{self.classifier_size}, "
            f"{len(self.classifier_images)} photos, B={self.classifier_augments}, "
            f"seed {seeds[0]} (Fig. 2 only)"
            for row in self.classifier
        ]
        return "\n".join(out)

    def setting(self, seeds: Sequence[int]) -> str:
        """The scorecard's setting column for a run over ``seeds``."""
        return (
            f"{self.profile}: {self.description}, {self.size}px, {len(self.images)} images of "
            f"{self.n_photos} photos, B={self.n_augments}, seeds {tuple(seeds)}; "
            "95% CI: bootstrap over images"
        )


#: the number of images of Fig. 2 where the profile's photos are ImageNet validation images
FIG2_IMAGES = 6


def invariance_photos(
    source: str, size: int, n: int | None = None
) -> tuple[tuple[str, ...], dict[str, torch.Tensor]]:
    """``(shown, images)``: the original images of notebook 01, each [3, size, size] in [0, 1]
    (antialiased resize of the short side, centre crop: ``ssl_miniatures.ssl_preprocess``).

    ``source="offline"``: the 17 offline photos, the 6 held out of the SSL training
    (``ssl_miniatures.EVAL_PHOTOS``, shown in Fig. 2) first. ``source="imagenet-val"``: the
    first ``n`` images of the committed ImageNet validation subset (named by file stem), the
    first :data:`FIG2_IMAGES` shown; a missing folder or file raises ``ArtefactMissing``
    naming ``VISXAI_IMAGENET_VAL`` and ``python -m visxai fetch imagenet-val``.
    """
    from ..models import ssl_miniatures

    if source == "offline":
        from ..data import list_photos

        shown = tuple(ssl_miniatures.EVAL_PHOTOS)
        names = list(shown) + [n for n in list_photos() if n not in shown]
        return shown, {name: ssl_miniatures.photo_tensor(name, size) for name in names}
    if source == "imagenet-val":
        from PIL import Image

        from ..data.imagenet import imagenet_val_items

        pre = ssl_miniatures.ssl_preprocess(size)
        images = {}
        for path, _ in imagenet_val_items(n):
            with Image.open(path) as im:
                images[path.stem] = pre(im.convert("RGB"))
        return tuple(list(images)[:FIG2_IMAGES]), images
    raise ValueError(f"photos must be 'offline' or 'imagenet-val', got {source!r}")


def invariance_case(
    profile: str = "offline", n_augments: int = 1000, device: str | torch.device = "cpu"
) -> InvarianceCase:
    """Notebook 01's models and images for ``profile`` (:data:`INVARIANCE_PROFILES`).

    The profile's images (:func:`invariance_photos`): offline all 17 photos, the 6 held out of
    the SSL training (``EVAL_PHOTOS``, shown in Fig. 2) first, then the 11 whose crops were
    trained on, each with its variants (the profile's ``variants``, :func:`photo_variants`);
    paper the first 100 ImageNet validation images of the committed subset. ``n_augments``: B
    where the profile does not fix it (paper). A missing paper checkpoint or image raises
    ``ArtefactMissing`` naming ``python -m visxai fetch ...``.
    """
    from ..models import load_model, ssl_miniatures

    if profile not in INVARIANCE_PROFILES:
        raise ValueError(f"profile must be one of {list(INVARIANCE_PROFILES)}, got {profile!r}")
    cfg = INVARIANCE_PROFILES[profile]
    dev = pick_device(device)
    models: dict[str, ModelEntry] = {}
    for row, name in cfg["ssl_models"].items():  # type: ignore[attr-defined]
        lm = load_model(name, profile=profile, device=dev, progress=False)
        models[row] = (lm.model, tuple(lm.mean), tuple(lm.std))
    size = int(cfg["ssl_size"])  # type: ignore[call-overload]
    variants = tuple(cfg["variants"])  # type: ignore[call-overload]
    n_photos = cfg["n_photos"]
    shown, images = invariance_photos(
        str(cfg["photos"]), size, None if n_photos is None else int(n_photos)  # type: ignore[call-overload]
    )
    photos = list(images)  # the originals first (Fig. 2 and the control), then the variants
    for name in photos:
        images.update(photo_variants(name, size, [v for v in variants if v != "original"]))
    steps = cfg["eval_steps"]
    erase = cfg["erase_value"]
    case = InvarianceCase(
        profile=profile,
        models=models,
        images=images,
        shown=shown,
        size=size,
        surrogate_size=cfg["surrogate_size"],  # type: ignore[arg-type]
        n_augments=int(cfg["augments"] or n_augments),  # type: ignore[call-overload]
        description=str(cfg["description"]),
        eval_step=None if steps is None else size * size // int(steps),  # type: ignore[call-overload]
        randomised_images=tuple(photos) if cfg["randomised"] == "originals" else None,
        erase_value=None if erase is None else tuple(erase),  # type: ignore[call-overload]
    )
    for row, name in dict(cfg["classifiers"]).items():  # type: ignore[call-overload]
        lm = load_model(str(name), profile=profile, device=dev)
        net = without_head(lm.model, "_fc").to(dev)
        case.classifier[row] = (net, tuple(lm.mean), tuple(lm.std))
    if case.classifier:
        case.classifier_size = int(cfg["classifier_size"])  # type: ignore[call-overload]
        case.classifier_images = {
            n: ssl_miniatures.photo_tensor(n, case.classifier_size)
            for n in shown[: int(cfg["classifier_photos"])]  # type: ignore[call-overload]
        }
        case.classifier_augments = int(cfg["classifier_augments"])  # type: ignore[call-overload]
    return case


def run_table1(
    explainer: PixelInvariance,
    case: InvarianceCase,
    seeds: Sequence[int],
    n_transforms: int = 10,
    progress: bool = True,
    workers: int = 1,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str, int], InvarianceResult]]:
    """Notebook 01's run: Table I's frame and Fig. 2's heatmaps.

    :func:`invariance_table` over the case's SSL models and images for every seed with both
    controls (the model-randomisation control on ``case.randomised_images``), Insertion /
    Deletion at ``case.eval_step``, keeping the heatmaps of the Fig. 2 photos (also those of
    :func:`augment_check`) at the first seed;
    then, where the case has them, the supervised classifiers on their own photos with their own
    B, first seed only, without controls: their heatmaps join the dict (Fig. 2's last rows),
    their rows are not in the frame. ``workers``: CPU processes (the same results).
    """
    seeds = tuple(int(s) for s in seeds)
    frame, heatmaps = invariance_table(
        explainer,
        case.models,
        case.images,
        seeds=seeds,
        n_transforms=n_transforms,
        keep_images=case.shown,
        keep_seeds=seeds[:1],
        progress=progress,
        step=case.eval_step,
        randomised_images=case.randomised_images,
        workers=workers,
    )
    if case.classifier:
        _, cls_maps = invariance_table(
            explainer.replace(n_augments=case.classifier_augments),
            case.classifier,
            case.classifier_images,
            seeds=seeds[:1],
            n_transforms=n_transforms,
            controls=False,
            progress=progress,
            step=case.eval_step,
            workers=workers,
        )
        heatmaps.update(cls_maps)
    return frame, heatmaps


# ------------------------------------------------------------------------------------------------
# A smaller B offline: the same heatmaps and verdicts as B = 1000 on a subset
# ------------------------------------------------------------------------------------------------


@dataclass
class AugmentCheck:
    """The offline B against the paper's B on a subset (see :func:`augment_check`).

    ``pearson``: (model, image) -> Pearson r of the raw heatmaps at ``b_small`` and ``b_full``;
    ``verdicts``: claim -> (verdict at ``b_small``, verdict at ``b_full``) for the paper's claim
    per metric and "the heatmap beats a random map" per model and metric, on the subset's images
    and one seed (no model-randomisation control: the question is whether B moves the verdict).
    """

    b_small: int
    b_full: int
    images: tuple[str, ...]
    seed: int
    pearson: dict[tuple[str, str], float]
    verdicts: dict[str, tuple[str, str]]

    @property
    def reversed(self) -> list[str]:
        """The verdicts that reverse between the two B (holds at one, fails at the other)."""
        return [k for k, (a, b) in self.verdicts.items() if {a, b} == {"holds", "fails"}]

    def text(self) -> str:
        """The Pearson r of the heatmaps (median and minimum, per model) and every verdict at both
        B (not checked by nbval: the second decimal moves with float rounding, and a CI on the
        edge of the margin can move a verdict between ``inconclusive`` and ``holds``)."""
        r = np.array(list(self.pearson.values()))
        lines = [
            f"B={self.b_small} against B={self.b_full}, {len(self.images)} photos, seed "
            f"{self.seed}: Pearson r of the heatmaps, median {np.median(r):.2f}, "
            f"minimum {r.min():.2f}"
        ]
        for row in dict.fromkeys(m for m, _ in self.pearson):
            v = np.array([x for (m, _), x in self.pearson.items() if m == row])
            lines.append(f"  {row:<14} median {np.median(v):.2f} (min {v.min():.2f})")
        width = max(len(k) for k in self.verdicts)
        lines.append(f"verdicts at B={self.b_small} | B={self.b_full}:")
        lines += [f"  {k:<{width}}  {a:<12} | {b}" for k, (a, b) in self.verdicts.items()]
        same = sum(a == b for a, b in self.verdicts.values())
        lines.append(f"identical: {same} of {len(self.verdicts)}")
        return "\n".join(lines)

    def robust_text(self) -> str:
        """What holds on any CPU: how many verdicts reverse (holds <-> fails) between the two B."""
        return (
            f"verdicts that reverse between B={self.b_small} and B={self.b_full} "
            f"(holds <-> fails): {len(self.reversed)} of {len(self.verdicts)}"
        )


def augment_check(
    explainer: PixelInvariance,
    case: InvarianceCase,
    frame: pd.DataFrame,
    heatmaps: dict[tuple[str, str, str, int], InvarianceResult],
    seed: int,
    b_full: int = 1000,
    n_transforms: int = 10,
    margin: float = 0.01,
    workers: int = 1,
    progress: bool = True,
) -> AugmentCheck:
    """Does the offline B (``case.n_augments``) give the heatmaps and verdicts of ``b_full``?

    On the Fig. 2 photos (``case.shown``: the 6 held out of the SSL training) and ``seed``, every
    SSL model is explained again with
    ``b_full`` augments (the first ``case.n_augments`` of them are the offline run's: the
    augments are drawn in sequence from the seed) and scored with the same transformations and
    random maps; the offline values are read from ``frame`` / ``heatmaps`` (:func:`run_table1`,
    which keeps the Fig. 2 photos' heatmaps at the first seed). Returns an :class:`AugmentCheck`.

    Measured on a 2-core Xeon (6 photos, B = 1000 about 40 s wall on 2 workers), seeds 0 / 1 / 2:
    B = 256 gives median Pearson r 0.93 / 0.91 / 0.95 (minimum 0.86-0.87) and 11 / 11 / 12 of 12
    verdicts identical, the paper's claim identical on every seed, the two others a random-map
    row moving between ``inconclusive`` and ``holds``; B = 128 gave median r 0.81-0.87 (minimum
    0.70) and changed a claim verdict on seeds 1 and 2 (``holds`` <-> ``inconclusive``). No
    verdict reversed (``holds`` <-> ``fails``) at either B. Hence the offline B = 256.
    """
    images = {n: case.images[n] for n in case.shown}
    full, full_maps = invariance_table(
        explainer.replace(n_augments=b_full),
        case.models,
        images,
        seeds=(seed,),
        n_transforms=n_transforms,
        keep_seeds=(seed,),
        progress=progress,
        step=case.eval_step,
        randomised_images=(),
        workers=workers,
    )
    return compare_augments(
        frame, heatmaps, full, full_maps, list(case.models), list(images), seed,
        case.n_augments, b_full, margin,
    )  # fmt: skip


def compare_augments(
    small: pd.DataFrame,
    small_maps: dict[tuple[str, str, str, int], InvarianceResult],
    full: pd.DataFrame,
    full_maps: dict[tuple[str, str, str, int], InvarianceResult],
    models: Sequence[str],
    images: Sequence[str],
    seed: int,
    b_small: int,
    b_full: int,
    margin: float = 0.01,
) -> AugmentCheck:
    """Two runs that differ only in B, compared on ``images`` and ``seed`` (:func:`augment_check`;
    ``benchmarks/augment_check_seeds.py`` repeats it over seeds).

    ``small`` / ``full``: :func:`invariance_table` frames at ``b_small`` / ``b_full`` augments
    (only their trained rows of ``images`` are read); ``small_maps`` / ``full_maps``: their kept
    heatmaps, keyed (model, "trained", image, seed). Per (model, image) the Pearson r of the two
    raw heatmaps; per metric the verdict of the paper's claim (:data:`CLAIM_BETTER` minus
    :data:`CLAIM_WORSE`) and per model and metric of "the heatmap beats a random map", each at
    both B (:func:`visxai.stats.verdict_claim` with ``margin``).
    """
    from ..stats import verdict_claim

    def trained(f: pd.DataFrame) -> pd.DataFrame:
        return f[f.image.isin(list(images)) & (f.weights == "trained")]

    frames = (trained(small), trained(full))
    pearson = {}
    for row in models:
        for n in images:
            a = small_maps[(row, "trained", n, seed)].heatmap.reshape(-1).numpy()
            b = full_maps[(row, "trained", n, seed)].heatmap.reshape(-1).numpy()
            pearson[(row, n)] = float(np.corrcoef(a, b)[0, 1])
    verdicts = {}
    for metric in TABLE1_METRICS:
        v = [
            verdict_claim(claim_difference(f, CLAIM_BETTER, CLAIM_WORSE, metric, seed=seed),
                          margin=margin)
            for f in frames
        ]  # fmt: skip
        verdicts[f"claim on {metric}"] = (v[0], v[1])
    for row in models:
        for metric in RANDOM_MAP_METRICS:
            v = [
                verdict_claim(
                    claim_difference(f, row, None, metric, seed=seed, against="random map"),
                    margin=margin,
                )
                for f in frames
            ]
            verdicts[f"{row} heatmap beats random map on {metric}"] = (v[0], v[1])
    return AugmentCheck(int(b_small), int(b_full), tuple(images), int(seed), pearson, verdicts)


# ------------------------------------------------------------------------------------------------
# The surrogate's fit: the convergent schedule against the paper's
# ------------------------------------------------------------------------------------------------


@dataclass
class ScheduleComparison:
    """Both fits of Eq. 2 on one photo's data (see :func:`schedule_comparison`).

    ``photo``: the photo; ``converge`` / ``paper``: the
    :class:`~visxai.methods.pixel_invariance.InvarianceResult` of
    ``schedule="converge"`` and ``schedule="paper"``; ``pearson``: Pearson r of their (raw)
    heatmaps.
    """

    model: str
    image: str
    photo: torch.Tensor  # [3,H,W] in [0,1]
    converge: InvarianceResult
    paper: InvarianceResult
    pearson: float

    def summary(self) -> dict[str, object]:
        """The fit facts: per schedule its first and final loss, iterations and ``converged``."""
        out: dict[str, object] = {"model": self.model, "image": self.image}
        for name, res in (("converge", self.converge), ("paper", self.paper)):
            fit = res.fit
            assert fit is not None
            out[name] = {
                "first loss": fit.history[0]["total"] if fit.history else float("nan"),
                "final loss": fit.loss,
                "iterations": fit.iterations,
                "converged": fit.converged,
                "monotone": bool(np.all(np.diff([h["total"] for h in fit.history]) <= 0)),
            }
        out["pearson"] = self.pearson
        return out

    def text(self) -> str:
        """Robust lines for the notebook: loss up or down, converged yes / no, r to 1 decimal."""
        s = self.summary()
        c, p = s["converge"], s["paper"]
        assert isinstance(c, dict) and isinstance(p, dict)

        def way(d: dict) -> str:
            return "decreases" if d["final loss"] < d["first loss"] else "increases"

        return "\n".join(
            [
                f"{self.model}, {self.image}:",
                f"  convergent fit: loss {way(c)} at every iteration: "
                f"{'yes' if c['monotone'] else 'no'}; converged within {c['iterations']} "
                f"iterations: {'yes' if c['converged'] else 'no'}",
                f"  paper's schedule: loss {way(p)} over its {p['iterations']} epochs "
                f"(by a factor > 10: {'yes' if p['final loss'] > 10 * p['first loss'] else 'no'})",
                f"  Pearson r of the two heatmaps: {self.pearson:.1f}",
            ]
        )

    def plot(self) -> Figure:
        """The photo, both displayed heatmaps (titles: schedule, final loss), both loss curves."""
        import matplotlib.pyplot as plt

        from ..plotting import show_heatmap

        fig, axes = plt.subplots(1, 4, figsize=(10, 2.6))
        img = self.photo
        axes[0].imshow(img.permute(1, 2, 0).numpy())
        axes[0].axis("off")
        axes[0].set_title(f"{self.model}\n{self.image}", fontsize=8)
        for ax, (name, res) in zip(
            axes[1:3], (("convergent fit", self.converge), ("paper's schedule", self.paper))
        ):
            assert res.fit is not None
            show_heatmap(ax, res.display, img, title=f"{name}\nfinal loss {res.fit.loss:.3g}")
        for name, res in (("convergent fit", self.converge), ("paper's schedule", self.paper)):
            axes[3].plot([h["total"] for h in res.history], label=name)
        axes[3].set_yscale("log")
        axes[3].set(xlabel="iteration / epoch", ylabel="loss of Eq. 2")
        axes[3].legend(fontsize=7)
        fig.suptitle(f"Pearson r of the heatmaps: {self.pearson:.2f}", fontsize=9)
        fig.tight_layout()
        return fig


def schedule_comparison(
    pi: PixelInvariance,
    case: InvarianceCase,
    model: str | None = None,
    image: str | None = None,
) -> ScheduleComparison:
    """The surrogate of Eq. 2 fitted with ``schedule="converge"`` and ``schedule="paper"`` on the
    same data (augments, similarities, NMF target) of one photo (notebook 01).

    ``model``: a row of ``case.models`` (default: the first); ``image``: a photo of the case
    (default: the first shown). ``pi`` gives every other parameter (its model is replaced by the
    row's). Returns a :class:`ScheduleComparison` (its ``text()`` and ``plot()``).
    """
    model = next(iter(case.models)) if model is None else model
    image = case.shown[0] if image is None else image
    if model not in case.models:
        raise ValueError(f"schedule_comparison: unknown model {model!r}; rows: {list(case.models)}")
    if image not in case.images:
        raise ValueError(
            f"schedule_comparison: unknown photo {image!r}; the case has {list(case.images)}"
        )
    net, mean, std = case.models[model]
    base = pi.replace(model=net, mean=mean, std=std)
    data = base.prepare(case.images[image])
    conv = base.replace(schedule="converge").fit(data)
    paper = base.replace(schedule="paper").fit(data)
    r = float(
        np.corrcoef(conv.heatmap.reshape(-1).numpy(), paper.heatmap.reshape(-1).numpy())[0, 1]
    )
    return ScheduleComparison(
        model=model, image=image, converge=conv, paper=paper, pearson=r, photo=data.image
    )


# ------------------------------------------------------------------------------------------------
# The slider panel: alpha, lambda and V refit the surrogate of one photo
# ------------------------------------------------------------------------------------------------

#: the sliders' values; the paper's (Sec. IV-A: alpha = 2, lambda = 0.2, V = 1) among them
PANEL_ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
PANEL_LAMBDAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
PANEL_VS = tuple(range(1, 11))


def refit_figure(
    pi: PixelInvariance, case: InvarianceCase, image: str, alpha: float, lam: float, V: int
) -> Figure:
    """The photo ``image`` of ``case``, the raw heatmap and the displayed heatmap of ``pi``
    refitted with ``alpha``, ``lam`` (lambda) and ``V`` NMF components (Eq. 2); the title names
    the values. The photo's augments, similarities and features (``pi.prepare``) are computed
    once per photo and kept on ``case`` (``case.prepared``)."""
    import matplotlib.pyplot as plt

    from ..plotting import describe_values, show_heatmap

    if image not in case.images:
        raise ValueError(f"refit_figure: unknown photo {image!r}; the case has {list(case.images)}")
    if image not in case.prepared:
        case.prepared[image] = pi.prepare(case.images[image])
    data = case.prepared[image]
    res = pi.replace(alpha=alpha, lam=lam, n_components=V).fit(data)
    fig, axes = plt.subplots(1, 3, figsize=(7, 2.6))
    axes[0].imshow(data.image.permute(1, 2, 0).numpy())
    axes[0].axis("off")
    axes[0].set_title(image, fontsize=8)
    show_heatmap(axes[1], res.heatmap, data.image, title="raw heatmap")
    show_heatmap(axes[2], res.display, data.image, title="displayed heatmap")
    fig.suptitle(describe_values({"α": alpha, "λ": lam, "V": V}), fontsize=10)
    fig.tight_layout()
    return fig


def refit_panel(
    pi: PixelInvariance, case: InvarianceCase, alpha: float = 2.0, lam: float = 0.2, V: int = 1
) -> Any:
    """Notebook 01's slider panel: "photo" (``case.shown``), "α", "λ" and "V" (the values of
    :data:`PANEL_ALPHAS`, :data:`PANEL_LAMBDAS`, :data:`PANEL_VS`, starting at ``alpha``,
    ``lam``, ``V``); each move shows :func:`refit_figure`, with the busy state of
    :func:`visxai.plotting.busy_panel`. Returns the panel widget."""
    import ipywidgets as widgets

    from ..plotting import busy_panel

    for name, v, allowed in (("alpha", alpha, PANEL_ALPHAS), ("lam", lam, PANEL_LAMBDAS)):
        if v not in allowed:
            raise ValueError(f"refit_panel: {name}={v!r} is not a slider value {list(allowed)}")
    if V not in PANEL_VS:
        raise ValueError(f"refit_panel: V={V!r} must be one of {list(PANEL_VS)}")
    controls = {
        "image": widgets.Dropdown(options=list(case.shown), description="photo"),
        "alpha": widgets.SelectionSlider(options=PANEL_ALPHAS, value=alpha, description="α"),
        "lam": widgets.SelectionSlider(options=PANEL_LAMBDAS, value=lam, description="λ"),
        "V": widgets.SelectionSlider(options=PANEL_VS, value=V, description="V"),
    }
    return busy_panel(lambda **v: refit_figure(pi, case, **v), controls)
