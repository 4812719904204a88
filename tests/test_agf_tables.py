"""Properties of visxai.evaluation.agf_tables (notebook 02's claims and seeds bookkeeping)."""

import numpy as np
import pytest
import torch

from visxai.evaluation import agf_tables as at
from visxai.metrics.segmentation import SegmentationScores


def test_seeds_of_runs_only_the_sampling_methods_with_every_seed():
    run = at.AGFRun()
    assert run.seeds_of("smoothgrad") == run.seeds == (0, 1, 2)
    assert run.seeds_of("random") == run.seeds
    assert run.seeds_of("agf") == (0,)
    assert run.method_params("smoothgrad", 2) == {"seed": 2}
    assert run.method_params("agf", 2) == {}
    assert at.AGFRun.label("random") == "random saliency"
    assert at.AGFRun.label("agf") != "agf"  # the registry's display label


def test_first_place_holds_fails_and_reuses_deterministic_comparisons():
    rng = np.random.default_rng(0)
    ref = rng.normal(50, 5, size=120)
    vals = {
        ("agf", 0): ref,
        ("lrp", 0): ref - 3 + rng.normal(0, 0.5, size=120),
        ("smoothgrad", 0): ref - 2 + rng.normal(0, 0.5, size=120),
        ("smoothgrad", 1): ref - 2 + rng.normal(0, 0.5, size=120),
        ("smoothgrad", 2): ref + 2 + rng.normal(0, 0.5, size=120),
    }
    run = at.AGFRun()
    per_seed = {
        s: run.first_place(vals, ["agf", "lrp", "smoothgrad"], s, table="t") for s in run.seeds
    }
    assert per_seed[0][0] == "holds" and per_seed[1][0] == "holds"
    assert per_seed[2][0] == "fails"  # smoothgrad's seed-2 sample beats AGF
    assert per_seed[0][1]["lrp"] is per_seed[2][1]["lrp"]  # deterministic: computed once
    assert run.over_seeds(per_seed, "lrp") == "holds"
    assert run.over_seeds(per_seed, "smoothgrad") != "holds"  # the seeds disagree
    # a callable gives the same comparisons as the mapping
    again = at.AGFRun().first_place(lambda m, s: vals[(m, s)], ["lrp"], 0)
    assert again[1]["lrp"].diff.value == pytest.approx(per_seed[0][1]["lrp"].diff.value)


def test_extra_rows_are_compared_but_do_not_decide_the_claim():
    """Captum's IG (an extra row, issue 15) beats AGF here: its comparison is returned and
    fails, but "AGF first" is decided by the paper's methods only (the authors' IG, LRP)."""
    rng = np.random.default_rng(1)
    ref = rng.normal(50, 5, size=100)
    vals = {
        ("agf", 0): ref,
        ("lrp", 0): ref - 3 + rng.normal(0, 0.5, size=100),
        ("integrated_gradients_authors", 0): ref - 4 + rng.normal(0, 0.5, size=100),
        ("integrated_gradients", 0): ref + 5 + rng.normal(0, 0.5, size=100),
    }
    methods = ["integrated_gradients", "integrated_gradients_authors", "lrp", "agf"]
    run = at.AGFRun()
    assert run.extra == at.EXTRA_ROWS == ("integrated_gradients",)
    verdict, comps = run.first_place(vals, methods, 0)
    assert comps["integrated_gradients"].verdict == "fails"
    assert verdict == "holds"
    assert set(run.claim_comparisons(comps)) == {"integrated_gradients_authors", "lrp"}
    # with no extra rows, the same comparisons make the claim fail
    assert at.AGFRun(extra=()).first_place(vals, methods, 0)[0] == "fails"


def test_seg_first_pools_pixel_accuracy_and_pairs_per_image_ap():
    n = 30
    labeled = np.full(n, 100)
    a = SegmentationScores(np.full(n, 80), labeled, np.full(n, 0.7))
    b = SegmentationScores(np.full(n, 60), labeled, np.full(n, 0.5))
    scores = {("agf", 0): a, ("lrp", 0): b}
    run = at.AGFRun()
    v, comps = run.seg_first(lambda m, s: scores[(m, s)], "pixel accuracy", ["agf", "lrp"])
    assert v == "holds" and comps["lrp"].diff.value == pytest.approx(20.0)
    v, comps = run.seg_first(lambda m, s: scores[(m, s)], "mAP", ["agf", "lrp"])
    assert v == "holds" and comps["lrp"].diff.value == pytest.approx(20.0)
    assert at.seg_estimate(a, "pixel accuracy").value == pytest.approx(80.0)
    assert at.seg_estimate(a, "mAP").value == pytest.approx(70.0)


def test_map_corr_is_the_per_image_pearson_correlation():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 5, 6, generator=g), torch.rand(4, 5, 6, generator=g)
    b[3] = 1.0  # a constant map: no correlation defined
    r = at.map_corr(a, b)
    for i in range(3):
        assert r[i] == pytest.approx(np.corrcoef(a[i].flatten(), b[i].flatten())[0, 1])
    assert np.isnan(r[3])
    assert at.map_corr(a, a) == pytest.approx(np.ones(4))


def test_narrowest_and_claim_summary():
    from visxai.evaluation import Comparison
    from visxai.stats import Estimate

    e = {k: Estimate(v, v - 1, v + 1, 10) for k, v in {"x": 3.0, "y": 1.0, "z": 1.0}.items()}
    assert at.narrowest(e) == "y"  # first of the ties
    assert at.narrowest({k: (v, "holds") for k, v in e.items()}) == "y"
    comps = {"lrp": Comparison("lrp", e["x"], "holds"), "rap": Comparison("rap", e["y"], "fails")}
    assert at.narrowest(comps) == "rap"
    assert at.claim_summary(comps, name=str) == (
        "ahead (CI) of 1/2; behind (CI): rap; undecided: none"
    )


def test_segmentation_tables_keys_rows_and_missing_control():
    n = 20
    rng = np.random.default_rng(1)
    lab = np.full(n, 50)

    def scores(acc):
        return SegmentationScores(np.full(n, acc), lab, rng.uniform(0.2, 0.9, n))

    by = {("agf", 0): scores(45), ("lrp", 0): scores(30)}
    by.update({("random", s): scores(25) for s in (0, 1, 2)})
    res = {"case": {"desc": "the case", "scores": by, "control": None}}
    run = at.AGFRun()
    verdicts, control, long = at.segmentation_tables(
        run, res, ["agf", "lrp", "random"], control_values=False
    )
    assert set(verdicts) == {("case", "pixel accuracy"), ("case", "mAP")} and control == {}
    assert verdicts[("case", "pixel accuracy")][0][0] == "holds"
    assert len(long) == 2 * 3 and set(long["data"]) == {"the case"}
    assert (long.dropna(subset=["AGF beats it"])["randomised: AGF beats it"] == "not run").all()


def test_background_fill_table_equals_the_metric_called_directly():
    """Notebook 02's Fashion-MNIST Table 2 diagnostic: the background share and both fills are
    those of the metric on the same maps (predicted class, first n images)."""
    from tiny_models import tiny_cnn

    from visxai.methods.explain import explain
    from visxai.metrics.negative_perturbation import (
        negative_perturbation,
        removed_background_share,
    )

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 24, 24, generator=g)
    x[:, :, :, :12] = 0.0  # a black left half: background
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    model = tiny_cnn().eval()
    run = at.AGFRun(batch=4)
    t = run.label
    bg = at.background_fill_table(run, model, None, x, y, ["gradient", "random"], n=4)
    assert bg["method"].tolist() == [t("gradient"), t("random")] and bg["n"].tolist() == [4, 4]
    fill = float(x[:4].mean())
    with torch.no_grad():
        pred = model(x[:4]).argmax(1)
    maps = explain(model, x[:4], pred, method="gradient")
    row = bg.iloc[0]
    share = removed_background_share(x[:4], maps)
    assert row["removed pixels that are background (%)"].value == pytest.approx(100 * share.mean())
    c0 = negative_perturbation(model, x[:4], maps, y[:4])
    cm = negative_perturbation(model, x[:4], maps, y[:4], fill=fill)
    assert row["AUC, fill 0 (paper)"].value == pytest.approx(c0.auc)
    assert row[f"AUC, fill {fill:.3f} (mean; sensitivity check)"].value == pytest.approx(cm.auc)
    with pytest.raises(ValueError, match="n must be in 1..6"):
        at.background_fill_table(run, model, None, x, y, ["gradient"], n=7)
