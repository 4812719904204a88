"""Notebook 02 / AGF: the loops behind its tables, "AGF first" claims and seeds bookkeeping.

The notebook configures (its parameters and settings cells), calls these functions, plots and
explains. What lives here is the bookkeeping that used to fill notebook cells:

* :class:`AGFRun`: the method parameters, the sampling seeds (SmoothGrad, Gradient SHAP and the
  random-saliency baseline are run with seeds 0, 1, 2; every other method is deterministic on a
  fixed model and runs once), the timings and the claims of the closing stability table, and the
  paired comparisons behind every "AGF beats X" (:meth:`AGFRun.first_place`,
  :meth:`AGFRun.seg_first`);
* the runs and tables of Table 2 / Fig. 3 (:func:`negative_perturbation_runs`,
  :func:`table2_tables`, :func:`background_fill_table`), Table 3 (:func:`segmentation_runs`,
  :func:`segmentation_tables`), Fig. 4a (:func:`ssl_segmentation_runs`), Fig. 2c over many images
  (:func:`class_specificity`) and the rows of the scorecard (:func:`add_first_claim`).

Method facts (label, signed) come from :mod:`visxai.methods.registry`. Written by hand: loops over
the library's methods, metrics and :mod:`visxai.stats`; the computations are the notebook's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import stats as st
from ..controls import random_saliency, randomized_model
from ..metrics.negative_perturbation import negative_perturbation, removed_background_share
from ..metrics.segmentation import SegmentationScores, multilabel_scores, segmentation_scores
from .protocols import (
    Comparison,
    combine_claims,
    compare_paired,
    explain_batched,
    method_fn,
    multilabel_segmentation_eval,
    negative_perturbation_both,
    paired_pooled_difference,
    pooled_estimate,
    predict,
    segmentation_eval,
)

__all__ = [
    "SEEDS",
    "SAMPLED",
    "SEG_METRICS",
    "EXTRA_ROWS",
    "AGFRun",
    "map_corr",
    "narrowest",
    "seg_estimate",
    "seg_difference",
    "class_specificity",
    "negative_perturbation_runs",
    "table2_tables",
    "background_fill_table",
    "segmentation_runs",
    "random_segmentation",
    "blank_segmentation",
    "blank_comparison",
    "segmentation_tables",
    "formatted",
    "ssl_explainer",
    "ssl_segmentation_runs",
    "claim_summary",
    "add_first_claim",
]

#: the sampling seeds of notebook 02's claims
SEEDS = (0, 1, 2)
#: the methods that sample noise (their claims are checked with every seed)
SAMPLED = ("smoothgrad", "gradient_shap")
#: Table 3 / Fig. 4a metrics
SEG_METRICS = ("pixel accuracy", "mAP")
#: methods shown as extra, named rows but left out of every "AGF first" claim: Captum's IG (the
#: paper's Tables 2-3 "IG" is the authors' variant, ``integrated_gradients_authors``)
EXTRA_ROWS = ("integrated_gradients",)


def _label(m: str) -> str:
    from ..methods.registry import METHODS

    return {"random": "random saliency"}.get(m, METHODS[m].label if m in METHODS else m)


def _signed(m: str) -> bool:
    from ..methods.registry import get_method

    return get_method(m).signed


@dataclass
class AGFRun:
    """The state shared by notebook 02's tables: parameters, seeds, timings, claims.

    ``params``: method -> keyword parameters (the settings cell's, e.g. IG's steps); ``seeds``:
    the sampling seeds; ``batch``: images per explanation chunk; ``claims``: claim -> verdict
    (deterministic) or per-seed verdicts, for :func:`visxai.scorecard.stability_table`;
    ``timings``: (table, model, method) -> seconds per image; ``extra``: methods compared with
    AGF in the tables but not part of the "AGF first" verdicts (:data:`EXTRA_ROWS`).
    """

    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = SEEDS
    sampled: tuple[str, ...] = SAMPLED
    batch: int = 50
    device: Any = None
    timings: dict[tuple, float] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    comparisons: dict[tuple, Comparison] = field(default_factory=dict, repr=False)
    extra: tuple[str, ...] = EXTRA_ROWS

    @staticmethod
    def label(m: str) -> str:
        """The registry's display label of ``m`` (``"random"``: random saliency)."""
        return _label(m)

    def seeds_of(self, m: str) -> tuple[int, ...]:
        """Sampling seeds a method is run with (random saliency is sampled too)."""
        return self.seeds if m in self.sampled or m == "random" else self.seeds[:1]

    def method_params(self, m: str, seed: int = 0) -> dict[str, Any]:
        """``params[m]``, with the sampling ``seed`` for the methods that sample."""
        kw = dict(self.params.get(m, {}))
        if m in self.sampled:
            kw["seed"] = seed
        return kw

    def fn(self, m: str, seed: int = 0) -> Callable:
        """explain function of method ``m``; ``seed`` is the sampling seed of SmoothGrad / SHAP."""
        return method_fn(m, **self.method_params(m, seed))

    def _pick(self, m: str, s: int) -> int:
        return s if s in self.seeds_of(m) else self.seeds[0]

    def first_place(
        self,
        values: Callable[[str, int], np.ndarray],
        methods: Iterable[str],
        s: int = 0,
        ref: str = "agf",
        greater: bool = True,
        table: Any = None,
    ) -> tuple[str, dict[str, Comparison]]:
        """ "``ref`` beats every method": paired bootstraps of ``ref - method`` on the same images.

        ``values(m, seed)`` -> per-image array, or a mapping ``{(m, seed): array}`` (deterministic
        methods under the first seed only); a method run on fewer images is paired with
        ``ref``'s first n). A deterministic method's comparison is the same for every seed: with
        ``table`` given it is computed once. Returns ``(verdict, comparisons)``; the verdict
        leaves out the methods of ``extra`` (their comparisons are returned too).
        """
        if isinstance(values, Mapping):
            values = _getter(values)
        comps = {}
        for m in methods:
            if m == ref:
                continue
            key = (table, m, self._pick(m, s))
            if table is None or key not in self.comparisons:
                self.comparisons[key] = compare_paired(
                    values(ref, self._pick(ref, s)),
                    {m: values(m, self._pick(m, s))},
                    greater=greater,
                )[m]
            comps[m] = self.comparisons[key]
        return self.claim_verdict(comps), comps

    def claim_verdict(self, comps: Mapping[str, Comparison]) -> str:
        """ "AGF first" over the comparisons of the methods not in ``extra``."""
        return combine_claims(c.verdict for m, c in comps.items() if m not in self.extra)

    def claim_comparisons(self, comps: Mapping[str, Comparison]) -> dict[str, Comparison]:
        """The comparisons that decide "AGF first" (``extra`` left out)."""
        return {m: c for m, c in comps.items() if m not in self.extra}

    def seg_first(
        self,
        scores: Callable[[str, int], Any],
        metric: str,
        methods: Iterable[str],
        s: int = 0,
        table: Any = None,
    ) -> tuple[str, dict[str, Comparison]]:
        """ "AGF first" on a segmentation metric ("pixel accuracy": pooled, paired bootstrap of
        pooled differences; "mAP": paired bootstrap of per-image AP) -> (verdict, comparisons)."""
        a = scores("agf", self._pick("agf", s))
        comps = {}
        for m in methods:
            if m == "agf":
                continue
            key = (table, metric, m, self._pick(m, s))
            if table is not None and key in self.comparisons:
                comps[m] = self.comparisons[key]
                continue
            diff = seg_difference(a, scores(m, self._pick(m, s)), metric)
            comps[m] = self.comparisons[key] = Comparison(m, diff, st.verdict_claim(diff))
        return self.claim_verdict(comps), comps

    def over_seeds(self, per_seed: Mapping[int, tuple[str, dict]], m: str) -> str:
        """The verdict on "AGF beats ``m``" kept only if every seed agrees."""
        return st.verdict_over_seeds([per_seed[s][1][m].verdict for s in self.seeds])

    def with_seeds(self, e: st.Estimate) -> st.Estimate:
        """``e`` marked as decided over all the run's seeds."""
        return st.Estimate(e.value, e.lo, e.hi, e.n, seeds=len(self.seeds), unit=e.unit)

    def timed(self, key: tuple, t0: float, n: int) -> None:
        """Record the seconds per image since ``t0`` under ``key``."""
        self.timings[key] = (time.perf_counter() - t0) / n


def _getter(values: Mapping[tuple, Any]) -> Callable[[str, int], Any]:
    def get(m: str, s: int) -> Any:
        return values[(m, s)]

    return get


def narrowest(items: Mapping[Any, Any]) -> Any:
    """The key whose value is smallest (first in order on ties): values are Estimates,
    Comparisons (their ``diff``) or tuples whose first element is one of those."""

    def value(v: Any) -> float:
        v = v[0] if isinstance(v, tuple) else v
        return float(v.diff.value if isinstance(v, Comparison) else v.value)

    return min(items, key=lambda k: value(items[k]))


def map_corr(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-image Pearson correlation of two map stacks [N,H,W] (NaN where a map is constant)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    nan = torch.full_like(den, float("nan"))
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), nan).numpy()


def seg_difference(a: Any, b: Any, metric: str) -> st.Estimate:
    """Table 3's ``a - b`` on the same images: pooled pixel accuracy (paired bootstrap of pooled
    differences) or mean AP (%, paired bootstrap of per-image AP)."""
    if metric == "pixel accuracy":
        return paired_pooled_difference(a.correct, a.labeled, b.correct, b.labeled)
    return st.paired_difference(100 * a.ap, 100 * b.ap)


def seg_estimate(scores: Any, metric: str) -> st.Estimate:
    """Table 3's value of one method: pooled pixel accuracy or mean AP (%), with its CI."""
    if metric == "pixel accuracy":
        return pooled_estimate(scores.correct, scores.labeled)
    return st.estimate(100 * scores.ap)


def _paper_2c(m: str) -> str:
    from ..methods.registry import get_method

    if m in ("gradient_shap", "meaningful_perturbation"):
        return "-"
    return "specific" if get_method(m).class_specific else "agnostic"


def class_specificity(
    run: AGFRun,
    model: nn.Module,
    x: torch.Tensor,
    cls_a: torch.Tensor,
    cls_b: torch.Tensor,
    methods: Sequence[str],
    threshold: float,
    params: Mapping[str, Mapping[str, Any]],
    progress: bool = True,
) -> tuple[dict[tuple[str, int], np.ndarray], dict[str, dict], pd.DataFrame]:
    """Fig. 2c over many two-object images: per method, the correlation of the maps for class A
    and class B; "class specific" (paper, Table 1) holds if its CI lies below ``threshold``,
    "class agnostic" if above. Records the claims in ``run.claims``.

    ``params``: method keywords for this model (e.g. IG in one internal batch on a small model).
    Returns ``(corr[(method, seed)], rows[method] = {est, per_seed, verdict, paper}, table)``.
    """
    from tqdm.auto import tqdm

    corr = {}
    for m in tqdm(methods, desc="Fig. 2c, two-object images", leave=False, disable=not progress):
        for s in run.seeds_of(m):
            kw = dict(params.get(m, {}))
            if m in run.sampled:
                kw["seed"] = s
            f = method_fn(m, **kw)
            corr[(m, s)] = map_corr(
                explain_batched(model, x, cls_a, f, batch_size=60),
                explain_batched(model, x, cls_b, f, batch_size=60),
            )
    rows = {}
    for m in methods:
        ests = {s: st.estimate(corr[(m, s)]) for s in run.seeds_of(m)}
        paper = _paper_2c(m)
        if paper == "-":
            per_seed = ["observed"] * len(ests)
        else:
            per_seed = [
                st.verdict_claim(e, greater=paper == "agnostic", margin=threshold)
                for e in ests.values()
            ]
        e0 = ests[run.seeds[0]]
        if m in run.sampled:
            e0 = run.with_seeds(e0)
        rows[m] = dict(est=e0, per_seed=per_seed, verdict=st.verdict_over_seeds(per_seed))
        rows[m]["paper"] = paper
        if paper != "-":
            claim = f"Fig. 2c: {_label(m)} class {paper}"
            run.claims[claim] = per_seed if m in run.sampled else per_seed[0]
    table = pd.DataFrame(
        {
            "method": [_label(m) for m in methods],
            "n images": [rows[m]["est"].n for m in methods],
            "mean corr [95% CI]": [rows[m]["est"].fmt() for m in methods],
            "paper (Table 1)": [rows[m]["paper"] for m in methods],
            "verdict": [rows[m]["verdict"] for m in methods],
        }
    )
    return corr, rows, table


def negative_perturbation_runs(
    run: AGFRun,
    name: str,
    model: nn.Module,
    normalize: Callable | None,
    x: torch.Tensor,
    y: torch.Tensor,
    methods: Sequence[str],
    n_per_method: Mapping[str, int],
    control_n: int,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[tuple, Any], dict[tuple, Any]]:
    """Table 2 for one model: every method on its first ``n_per_method[m]`` images (both the
    predicted and the target class, every sampling seed), random saliency (seeds), and the same
    protocol on a randomised copy of the model (first ``control_n`` images, seed 0).

    Returns ``(curves, control)``: ``curves[(name, class, method, seed)]`` and
    ``control[(name, class, method)]`` (method ``"random"`` = random saliency).
    """
    from tqdm.auto import tqdm

    t2, ctrl, b = {}, {}, run.batch
    for m in tqdm(methods, desc=f"Table 2 {name}", leave=False, disable=not progress):
        n = n_per_method[m]
        for s in run.seeds_of(m):
            t0 = time.perf_counter()
            t2[(name, "predicted", m, s)], t2[(name, "target", m, s)] = negative_perturbation_both(
                model, x[:n], y[:n], run.fn(m, s), normalize, batch_size=b
            )
            if s == run.seeds[0]:
                run.timed(("Table 2", name, m), t0, n)
    for s in run.seeds:  # random saliency: the same maps for both classes
        rs = random_saliency((len(x), *x.shape[2:]), seed=s)
        t2[(name, "predicted", "random", s)] = t2[(name, "target", "random", s)] = (
            negative_perturbation(model, x, rs, y, normalize=normalize, batch_size=b)
        )
    # model randomisation (Adebayo et al. 2018): the same protocol on a re-initialised copy
    rm, nc = randomized_model(model, seed=seed), control_n
    desc = f"Table 2 {name}, randomised model"
    for m in tqdm(methods, desc=desc, leave=False, disable=not progress):
        ctrl[(name, "predicted", m)], ctrl[(name, "target", m)] = negative_perturbation_both(
            rm, x[:nc], y[:nc], run.fn(m), normalize, batch_size=b
        )
    rs = random_saliency((nc, *x.shape[2:]), seed=run.seeds[0])
    ctrl[(name, "predicted", "random")] = ctrl[(name, "target", "random")] = negative_perturbation(
        rm, x[:nc], rs, y[:nc], normalize=normalize, batch_size=b
    )
    return t2, ctrl


def table2_tables(
    run: AGFRun,
    t2: Mapping[tuple, Any],
    t2_ctrl: Mapping[tuple, Any],
    model_names: Sequence[str],
    methods: Sequence[str],
) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Table 2's claims and tables from :func:`negative_perturbation_runs`' curves.

    Returns ``(verdicts, control, long, table, show)``: ``verdicts[(model, class)] = {seed:
    (verdict, comparisons)}`` for "AGF first" among ``methods`` (random saliency included),
    ``control[(model, class)] = (verdict, comparisons)`` on the randomised model, the long table
    (one row per model, class and method, with Estimates), the AUC pivot and the long table
    formatted for display.
    """
    verdicts, control, rows = {}, {}, []
    for mname in model_names:
        for cls in ("predicted", "target"):

            def vals(m, s, mname=mname, cls=cls):
                return t2[(mname, cls, m, s)].image_auc

            def cvals(m, s, mname=mname, cls=cls):
                return t2_ctrl[(mname, cls, m)].image_auc

            key = (mname, cls)
            verdicts[key] = {
                s: run.first_place(vals, methods, s, table=("t2", mname, cls)) for s in run.seeds
            }
            control[key] = run.first_place(cvals, methods)
            for m in methods:
                c = t2[(mname, cls, m, run.seeds[0])]
                rec = dict(
                    model=mname,
                    explained=cls,
                    method=_label(m),
                    n=len(c),
                    AUC=st.estimate(c.image_auc),
                )
                if m != "agf":
                    comp = verdicts[key][run.seeds[0]][1][m]
                    rec.update(
                        {
                            "AGF - method": comp.diff,
                            "AGF beats it": run.over_seeds(verdicts[key], m),
                        }
                    )
                    cc = control[key][1][m]
                    rec.update(
                        {
                            "randomised: AGF - method": cc.diff,
                            "randomised: AGF beats it": cc.verdict,
                        }
                    )
                rec["randomised: AUC"] = st.estimate(t2_ctrl[(mname, cls, m)].image_auc)
                rows.append(rec)
    long = pd.DataFrame(rows)
    table = long.assign(AUC=[e.value for e in long.AUC]).pivot_table(
        index=["model", "explained"], columns="method", values="AUC", sort=False
    )[[_label(m) for m in methods]]
    show = formatted(long, ["AUC", "AGF - method", "randomised: AGF - method", "randomised: AUC"])
    return verdicts, control, long, table, show


def background_fill_table(
    run: AGFRun,
    model: nn.Module,
    normalize: Callable | None,
    x: torch.Tensor,
    y: torch.Tensor,
    methods: Sequence[str],
    n: int,
    fill: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Table 2 on black-background data (notebook 02's Fashion-MNIST), predicted class, first
    ``n`` images: per method (``"random"``: random saliency, seed 0) the share (%) of the removed
    pixels that are background (exactly 0 in the raw image, mean over the steps:
    :func:`~visxai.metrics.negative_perturbation.removed_background_share`), the AUC with the
    removed pixels set to 0 (the paper's protocol) and set to ``fill`` (default: the mean of the
    ``n`` images; a sensitivity check, NOT the paper's protocol). Values are Estimates with
    bootstrap CIs over images (print with :func:`formatted`)."""
    from tqdm.auto import tqdm

    if not 0 < n <= len(x):
        raise ValueError(f"n must be in 1..{len(x)} (the images given), got {n}")
    x, y = x[:n].to(run.device), torch.as_tensor(y[:n]).long()
    fill = float(x.mean()) if fill is None else float(fill)
    targets = predict(model, x, normalize).argmax(1)
    b, col = run.batch, f"AUC, fill {fill:.3f} (mean; sensitivity check)"
    rows = []
    for m in tqdm(methods, desc="Table 2 background", leave=False, disable=not progress):
        if m == "random":
            maps = random_saliency((n, *x.shape[2:]), seed=run.seeds[0])
        else:
            maps = explain_batched(model, x, targets, run.fn(m), normalize, b)
        share = removed_background_share(x.cpu(), maps)
        auc = {
            f: negative_perturbation(model, x, maps, y, normalize=normalize, fill=f, batch_size=b)
            for f in (0.0, fill)
        }
        rows.append(
            {
                "method": _label(m),
                "n": n,
                "removed pixels that are background (%)": st.estimate(100 * share),
                "AUC, fill 0 (paper)": st.estimate(auc[0.0].image_auc),
                col: st.estimate(auc[fill].image_auc),
            }
        )
    return pd.DataFrame(rows)


def segmentation_runs(
    run: AGFRun,
    case: Any,
    methods: Sequence[str],
    control_n: int | None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Table 3 for one :class:`~visxai.evaluation.cases.EvalCase`: every method (every sampling
    seed), random saliency (unsigned, seeds) and the randomised-model control on the first
    ``control_n`` images (all if None).

    Table 3a (``imagenet-seg``): one map per image for its top class, the foreground mask
    (:func:`~visxai.evaluation.protocols.segmentation_eval`). Table 3b (``case.multilabel``): a map
    for every predicted label, scored per image as the authors do
    (:func:`~visxai.evaluation.protocols.multilabel_segmentation_eval`); the randomised copy
    explains the trained model's predicted labels, so that only the maps differ.

    Returns ``{"scores": {(method, seed): SegmentationScores}, "maps": {method: maps (seed 0)},
    "control": {method: SegmentationScores}}`` (method ``"random"`` = random saliency; 3b's maps
    are those of the explained (image, class) pairs, ``torch.nonzero(case.targets)`` order).
    """
    from tqdm.auto import tqdm

    x, tg, masks, norm = case.images, case.targets, case.masks, case.normalize
    dev = run.device
    out: dict[str, Any] = {"scores": {}, "maps": {}, "control": {}}
    rmodel = randomized_model(case.model, seed=seed)
    nc = control_n or len(x)  # the randomised-model control runs on the first nc images
    evaluate = multilabel_segmentation_eval if case.multilabel else segmentation_eval

    def score(model: nn.Module, m: str, k: int, s: int | None = None) -> tuple:
        return evaluate(
            model,
            x[:k].to(dev),
            tg[:k],
            masks[:k],
            run.fn(m) if s is None else run.fn(m, s),
            signed=_signed(m),
            normalize=norm,
            batch_size=run.batch,
        )

    for m in tqdm(methods, desc=f"Table 3 {case.name}", leave=False, disable=not progress):
        for s in run.seeds_of(m):
            t0 = time.perf_counter()
            out["scores"][(m, s)], maps = score(case.model, m, len(x), s)
            if s == run.seeds[0]:
                out["maps"][m] = maps
                run.timed(("Table 3", f"{case.name} {case.model_name}", m), t0, len(x))
        out["control"][m], _ = score(rmodel, m, nc)
    for s in run.seeds:  # random saliency, unsigned (mean threshold)
        out["scores"][("random", s)] = random_segmentation(case, len(x), s)
    out["control"]["random"] = random_segmentation(case, nc, run.seeds[0])
    return out


def random_segmentation(case: Any, n: int, seed: int) -> SegmentationScores:
    """Table 3's random-saliency control on the first ``n`` images of ``case``: uniform maps
    (unsigned) in place of each explained map, scored by the case's protocol."""
    return _fixed_maps(case, n, lambda shape: random_saliency(shape, seed=seed), signed=False)


def blank_segmentation(case: Any, n: int | None = None) -> SegmentationScores:
    """Table 3 for blank maps (all 0) on the first ``n`` images (all if None): every pixel is
    called background, so its pixel accuracy is the background share of the labelled pixels,
    the floor that a method's pixel accuracy has to beat."""
    return _fixed_maps(case, n or len(case), torch.zeros, signed=True)


def blank_comparison(case: Any, scores: Any) -> dict[str, Comparison]:
    """``scores`` (a method's Table 3 scores on ``case``, e.g. AGF's) against blank maps on the
    same images, per metric: the paired difference (pooled pixel accuracy: paired bootstrap of
    pooled differences; mAP: of per-image AP) and the verdict on "the method beats calling
    every pixel background". Pixel accuracy rewards background: a method that does not beat
    the blank map on it has not shown that it segments anything."""
    blank = blank_segmentation(case, len(scores.ap))
    out = {}
    for metric in SEG_METRICS:
        diff = seg_difference(scores, blank, metric)
        out[metric] = Comparison("blank", diff, st.verdict_claim(diff))
    return out


def _fixed_maps(case: Any, n: int, make: Callable, signed: bool) -> SegmentationScores:
    masks = case.masks[:n]
    if not case.multilabel:
        return segmentation_scores(make(tuple(masks.shape)), masks, signed)
    present = case.targets[:n]
    p = int(present.sum())
    maps = make((p, *masks.shape[1:])) if p else torch.zeros(0, *masks.shape[1:])
    return multilabel_scores(maps, present, masks, signed=signed)


def segmentation_tables(
    run: AGFRun,
    results: Mapping[str, Mapping[str, Any]],
    methods: Sequence[str],
    prefix: str = "t3",
    row_key: str = "data",
    control_values: bool = True,
) -> tuple[dict, dict, pd.DataFrame]:
    """ "AGF first" on each segmentation metric for each case, and the long table.

    ``results[key] = {"desc": ..., "scores": {(method, seed): SegmentationScores}, "control":
    {method: SegmentationScores} or None}`` (``methods`` include ``"random"``). Returns
    ``(verdicts[(key, metric)] = {seed: (verdict, comparisons)}, control[(key, metric)] =
    (verdict, comparisons), long table)`` with Estimates (one row per case, metric and method;
    ``control_values``: also the randomised model's value); the control is absent where
    ``results[key]["control"]`` is None.
    """
    verdicts, control, rows = {}, {}, []
    for key0, d in results.items():
        scores, ctrl = d["scores"], d.get("control")

        def sc_of(m, s, scores=scores):
            return scores[(m, s)]

        def ctrl_of(m, s, ctrl=ctrl):
            return ctrl[m]

        for metric in SEG_METRICS:
            key = (key0, metric)
            verdicts[key] = {
                s: run.seg_first(sc_of, metric, methods, s, table=(prefix, key0)) for s in run.seeds
            }
            if ctrl is not None:
                control[key] = run.seg_first(ctrl_of, metric, methods)
            for m in methods:
                first = scores[(m, run.seeds[0])]
                rec = {row_key: d["desc"], "metric": metric, "method": _label(m)}
                rec.update(n=len(first.ap), value=seg_estimate(first, metric))
                if m != "agf":
                    rec["AGF - method"] = verdicts[key][run.seeds[0]][1][m].diff
                    rec["AGF beats it"] = run.over_seeds(verdicts[key], m)
                    rec["randomised: AGF beats it"] = (
                        control[key][1][m].verdict if key in control else "not run"
                    )
                if control_values:
                    rec["randomised: value"] = seg_estimate(ctrl[m], metric)
                rows.append(rec)
    return verdicts, control, pd.DataFrame(rows)


def formatted(long: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """``long`` with the Estimates of ``cols`` written as ``value [lo, hi]`` and blanks for NaN."""
    show = long.copy()
    for col in cols:
        show[col] = [e.fmt() if isinstance(e, st.Estimate) else "" for e in show[col]]
    return show.fillna("")


def ssl_explainer(
    method: str, variant: str, bank: torch.Tensor, params: Mapping[str, Any] | None = None
) -> Callable:
    """Algorithm 2 as an explain function (model, normalised images, ignored target) -> maps."""
    from ..methods.agf_selfsupervised import explain_ssl

    def run(model_: nn.Module, xb: torch.Tensor, _t: torch.Tensor) -> torch.Tensor:
        return explain_ssl(model_, xb, bank, variant, method=method, **(params or {}))[0]

    return run


def ssl_segmentation_runs(
    run: AGFRun,
    case: Any,
    methods: Sequence[str],
    control_n: int | None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Fig. 4a for one self-supervised case: Algorithm 2 (Δ) maps of every method scored
    against the foreground masks, random saliency (seeds), and the randomised-model control
    (first ``control_n`` images) with Algorithm 2's reference bank recomputed through the
    copy's own ``phi_F`` (only where the case keeps its bank images; else ``control`` is None).

    Returns ``{"scores": {(method, seed): ...}, "maps": {method: maps}, "control": ...}``.
    """
    from tqdm.auto import tqdm

    from ..methods.agf_selfsupervised import latent_bank, penultimate_split

    dev, x, fg = run.device, case.images, case.masks
    rmodel = randomized_model(case.model, seed=seed)
    emb_r, _ = penultimate_split(rmodel)
    norm_r = case.normalize or (lambda z: z)
    bank_r = None
    if case.bank_images is not None:
        bank_r = latent_bank(lambda z: emb_r(norm_r(z)), case.bank_images, device=dev)
    out: dict[str, Any] = {"scores": {}, "maps": {}, "control": {} if bank_r is not None else None}
    nc = control_n or len(x)  # the randomised-model control runs on the first nc images
    zeros = torch.zeros(len(x), dtype=torch.long)
    for m in tqdm(methods, desc=f"Fig. 4a {case.name}", leave=False, disable=not progress):
        t0 = time.perf_counter()
        f = ssl_explainer(m, "delta", case.bank, run.params.get(m, {}))
        maps = explain_batched(
            case.model, x.to(dev), zeros, f, case.normalize, batch_size=run.batch
        )
        out["scores"][(m, run.seeds[0])] = segmentation_scores(maps, fg, signed=_signed(m))
        out["maps"][m] = maps
        run.timed(("Fig. 4a", case.desc, m), t0, len(x))
        if bank_r is not None:
            f = ssl_explainer(m, "delta", bank_r, run.params.get(m, {}))
            maps_r = explain_batched(
                rmodel, x[:nc].to(dev), zeros[:nc], f, case.normalize, batch_size=run.batch
            )
            out["control"][m] = segmentation_scores(maps_r, fg[:nc], signed=_signed(m))
    for s in run.seeds:
        rs = random_saliency(tuple(fg.shape), seed=s)
        out["scores"][("random", s)] = segmentation_scores(rs, fg, signed=False)
    if bank_r is not None:
        rs = random_saliency(tuple(fg[:nc].shape), seed=run.seeds[0])
        out["control"]["random"] = segmentation_scores(rs, fg[:nc], signed=False)
    return out


def claim_summary(comps: Mapping[str, Comparison], name: Callable[[str], str] = _label) -> str:
    """ "ahead (CI) of k/n; behind (CI): ...; undecided: ..." for a set of comparisons."""
    by: dict[str, list[str]] = {"holds": [], "fails": [], "inconclusive": []}
    for m, c in comps.items():
        by.setdefault(c.verdict, []).append(name(m))
    return (
        f"ahead (CI) of {len(by['holds'])}/{len(comps)}; "
        f"behind (CI): {', '.join(by['fails']) or 'none'}; "
        f"undecided: {', '.join(by['inconclusive']) or 'none'}"
    )


def add_first_claim(
    run: AGFRun,
    sc: Any,
    item: str,
    metric: str,
    paper_value: Any,
    per_seed: Mapping[int, tuple[str, dict]],
    control: tuple[str, dict],
    setting: str,
) -> None:
    """One "AGF first" scorecard row: the narrowest comparison (seed 0), the verdict over
    seeds, controlled by the randomised model (``run.extra`` left out)."""
    seeds = run.seeds
    v0, comps = per_seed[seeds[0]]
    comps = run.claim_comparisons(comps)
    narrow = min(comps.values(), key=lambda c: c.diff.value)
    verdict = st.verdict_controlled(
        st.verdict_over_seeds([per_seed[s][0] for s in seeds]), control[0]
    )
    rnd = f"; AGF - random saliency {comps['random'].diff.fmt()}" if "random" in comps else ""
    note = (
        f"verdict kept only if sampling seeds {'/'.join(map(str, seeds))} "
        "(SmoothGrad, Gradient SHAP, random saliency) agree"
    )
    sc.add(
        item=item,
        metric=f"{metric}: AGF - strongest other ({_label(narrow.other)}), paired bootstrap",
        paper_value=paper_value,
        reproduced=run.with_seeds(narrow.diff),
        setting=f"{setting}; {claim_summary(comps)}{rnd}; randomised model: {control[0]}; {note}",
        verdict=verdict,
    )
