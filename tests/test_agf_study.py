"""Properties of notebook 02's settings, runs, scorecard rows and figures
(visxai.evaluation.agf_study, visxai.evaluation.agf_figures)."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from visxai.evaluation import agf_figures as af
from visxai.evaluation import agf_study as study
from visxai.evaluation import agf_tables as at
from visxai.methods import method_names
from visxai.metrics.negative_perturbation import PerturbationCurve
from visxai.scorecard import Scorecard
from visxai.stats import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
PARAMS = dict(ig_steps=100, smoothgrad_samples=50, gshap_samples=20, mp_iterations=300)


def test_profiles_change_only_configuration():
    """Both profiles give the same keys (one code path); the paper's method parameters come from
    the notebook's parameters cell; an unknown profile is refused."""
    off, paper = (study.part1_settings(p, **PARAMS) for p in ("offline", "paper"))
    assert off.keys() == paper.keys()
    assert paper["method_kw"]["integrated_gradients"]["n_steps"] == 100
    assert off["method_kw"]["integrated_gradients"]["n_steps"] < 100
    order = method_names()[1:]
    o2, p2 = (study.part2_settings(p, order, paper["fig2_photos"]) for p in ("offline", "paper"))
    assert o2.keys() == p2.keys()
    assert set(o2["t2_n"]) == set(method_names())  # every registered method has its sample size
    assert p2["t2_photos"] == paper["fig2_photos"]
    with pytest.raises(ValueError, match="offline | paper"):
        study.part1_settings("laptop", **PARAMS)
    with pytest.raises(ValueError, match="offline | paper"):
        study.part2_settings("laptop", order, [])


def test_paper_values_live_only_in_the_library_constants():
    """No number of the paper's Tables 2-5 is typed into notebook 02's code cells."""
    nb = json.loads((ROOT / "notebooks" / "02_attribution_guided_factorization.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    values = [
        *study.PAPER_T2["predicted"].values(),
        *study.PAPER_T2["target"].values(),
        *study.PAPER_T3_VOC.values(),
        *study.PAPER_T3_IMAGENET.values(),
        *study.PAPER_T4.values(),
        *study.PAPER_T5.values(),
    ]
    found = sorted(
        {v for v in values if re.search(rf"(?<![\d.]){re.escape(str(v))}(?![\d])", code)}
    )
    assert not found, f"paper values in the notebook's code: {found}"


def _curve(rng: np.random.Generator, n: int, p: float) -> PerturbationCurve:
    fr = np.linspace(0, 1, 5)
    correct = rng.random((n, len(fr))) < np.linspace(1, p, len(fr))
    return PerturbationCurve(fr, correct, np.zeros((n, len(fr)), dtype=np.int64))


def test_fig3_draws_one_panel_per_model_and_class_with_every_method():
    rng = np.random.default_rng(0)
    order = ["lrp", "agf"]
    curves = {
        (mn, c, m, 0): _curve(rng, 20, 0.3)
        for mn in ("a", "b")
        for c in ("predicted", "target")
        for m in [*order, "random"]
    }
    fig = af.plot_fig3(curves, ["a", "b"], order, 0, at.AGFRun.label)
    assert len(fig.axes) == 4
    assert all(len(ax.lines) == len(order) + 1 for ax in fig.axes)  # + random saliency


def _tiny_classifier(channels: int) -> nn.Module:
    """Conv-ReLU-pool-Linear, 3 classes, seeded: every method of notebook 02 supports it."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 3),
    ).eval()


def test_table5_compares_every_ablation_with_the_full_method():
    """On a tiny classifier: one curve per ablation, a paired comparison for each one but the
    full method, and a table row per ablation."""
    model = _tiny_classifier(3)
    lm = SimpleNamespace(model=model, normalize=None, name="tiny")
    x, y = torch.rand(12, 3, 8, 8), torch.randint(0, 3, (12,))
    res = study.table5_runs(at.AGFRun(), lm, x, y, batch=6, device="cpu")
    assert set(res.curves) == set(study.ABLATIONS)
    assert set(res.comparisons) == set(study.ABLATIONS) - {"ours"}
    assert len(res.table) == len(study.ABLATIONS) and res.n == 12
    assert all(c.verdict in VERDICTS for c in res.comparisons.values())


def test_part1_rows_one_per_method_each_with_a_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_FIGURES", str(tmp_path))
    order = method_names()[1:]
    from visxai.stats import estimate

    rows = {
        m: {
            "est": estimate(np.linspace(0.1, 0.9, 20)),
            "paper": "specific",
            "verdict": "inconclusive",
        }
        for m in order
    }
    sc = Scorecard("test_agf_study")
    corr = {m: 0.5 if m == "agf" else 0.95 for m in order}
    study.add_part1_rows(sc, at.AGFRun(), "offline", rows, order, 0.9, "dog", "m", ["a", "b"], corr)
    # the one-photo illustration has no CI, so it is not a scorecard row (issue 15)
    assert len(sc.rows) == len(order)
    assert all(r.ci95 for r in sc.rows), [r.item for r in sc.rows if not r.ci95]
    assert all(r.verdict in VERDICTS for r in sc.rows)


def test_per_photo_averages_the_views_of_each_photo():
    """Images are stored view-major (all originals, then each further view in the same photo
    order): the per-photo value is the mean over that photo's views."""
    v = np.array([1.0, 2.0, 3.0, 3.0, 4.0, 5.0])  # 3 photos x 2 views
    np.testing.assert_allclose(study._per_photo(v, 3), [2.0, 3.0, 4.0])
    np.testing.assert_allclose(study._per_photo(v[:3], 3), v[:3])


def test_photo_table2_units_are_photos_and_slow_methods_run_on_the_originals(monkeypatch):
    """Table 2 on photos, on a tiny classifier and two offline photos in two views: fast methods
    on every image, slow ones on the originals only, every CI over photos, one table row per
    method and random saliency, verdicts from the closed set."""
    model = _tiny_classifier(3)
    lm = SimpleNamespace(model=model, normalize=None, name="tiny")
    monkeypatch.setattr(study, "load_model", lambda *a, **k: lm)
    p2 = dict(
        t2_photo_model="tiny",
        t2_photo_size=16,
        t2_photo_views=["original", "flipped"],
        t2_photos=["chelsea", "coffee"],
        t2_photo_methods=["agf", "gradcam", "smoothgrad"],
        t2_photo_slow=["smoothgrad"],
        t2_photo_control_n=2,
    )
    run = at.AGFRun(params={"smoothgrad": dict(n_samples=2)})
    res = study.photo_runs(run, p2, "offline", 0, "cpu")
    assert res.names == ["chelsea", "coffee", "chelsea, flipped", "coffee, flipped"]
    assert torch.equal(res.images[2], res.images[0].flip(-1))
    assert len(res.values[("agf", 0)]) == 4 and len(res.values[("smoothgrad", 0)]) == 2
    assert res.n_photos == 2 and set(res.maps) == {"agf", "gradcam", "smoothgrad"}
    assert list(res.table["method"]) == ["AGF (ours)", "Grad-CAM", "SmoothGrad", "random saliency"]
    assert list(res.table["images"]) == ["4 (2 photos x 2 views)", "4 (2 photos x 2 views)",
                                         "2 originals", "4 (2 photos x 2 views)"]  # fmt: skip
    for s in run.seeds:
        verdict, comps = res.verdicts[s]
        assert verdict in VERDICTS and set(comps) == {"gradcam", "smoothgrad", "random"}
        assert all(c.diff.n == 2 for c in comps.values())  # units: the two photos


def test_table4_runs_report_both_controls_and_a_controlled_verdict():
    """Table 4 on a tiny classifier (supervised row only): the three claim comparisons, AGF Δ
    against random saliency, the claim on a randomised copy, and a verdict that is
    ``uninformative`` exactly when the randomised copy gives the same holds / fails verdict."""
    from visxai.stats import verdict_controlled

    model = _tiny_classifier(1)
    lm = SimpleNamespace(model=model, normalize=None, name="tiny")
    x, y = torch.rand(10, 1, 28, 28), torch.randint(0, 3, (10,))
    p2 = dict(t4_supervised="tiny", t2_data="fashion-mnist", t4_images=10, ssl_bank=20,
              t4_ssl=[], batch=5)  # fmt: skip
    res = study.table4_runs(at.AGFRun(), p2, "offline", 0, "cpu", {"tiny": lm}, x, y, {}, {},
                            control_n=6)  # fmt: skip
    row = "Supervised (tiny)"
    assert set(res.claims[row]) == {"AGF Δ - AGF Σ", "AGF Δ - AGF w/o", "AGF Δ - RAP Δ"}
    est, rnd = res.controls[row]["AGF Δ - random saliency"]
    assert est.n == 10 and rnd in VERDICTS
    ctrl = res.controls[row]["randomised model"][1]
    assert ctrl in VERDICTS
    claim = study.combine_claims(v for _, v in res.claims[row].values())
    assert res.verdicts[row] == verdict_controlled(claim, ctrl)
    assert {"claim", "AGF Δ - random saliency"} <= set(res.claims_table.columns)


def test_table5_controls_decide_the_verdict():
    """Table 5's verdict: "every removal hurts", ``uninformative`` when the randomised copy gives
    the same holds / fails verdict; full AGF against random saliency on every image."""
    from visxai.stats import verdict_controlled

    model = _tiny_classifier(1)
    lm = SimpleNamespace(model=model, normalize=None, name="tiny")
    x, y = torch.rand(12, 1, 8, 8), torch.randint(0, 3, (12,))
    res = study.table5_runs(at.AGFRun(), lm, x, y, batch=6, device="cpu", control_n=8)
    assert res.random[0].n == 12 and res.random[1] in VERDICTS
    assert res.control in VERDICTS and res.control_n == 8
    assert res.verdict == verdict_controlled(res.claim, res.control)
