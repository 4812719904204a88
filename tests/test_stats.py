"""visxai.stats: bootstrap CIs cover at their nominal rate, and the verdict rules follow the CI."""

import numpy as np
import pytest
from scipy import stats as sps

from visxai.stats import (
    Estimate,
    estimate,
    fmt_ci,
    over_seeds,
    paired_difference,
    verdict_claim,
    verdict_controlled,
    verdict_over_seeds,
    verdict_paper,
)


def test_bootstrap_ci_of_the_mean_covers_about_95_percent():
    # known distribution (exponential, skewed, mean 1), n=40: a percentile bootstrap CI of the
    # mean covers the true mean in about 93-95% of samples; 300 trials give +-2.5% binomial noise
    rng = np.random.default_rng(1)
    hits = sum(
        estimate(rng.exponential(1.0, 40), seed=t).excludes(1.0) is False for t in range(300)
    )
    assert 0.88 <= hits / 300 <= 0.98


def test_bootstrap_ci_width_matches_the_normal_theory_interval():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, 400)
    e = estimate(x)
    half = sps.norm.ppf(0.975) * x.std(ddof=1) / np.sqrt(x.size)
    assert e.value == pytest.approx(x.mean())
    assert (e.hi - e.lo) / 2 == pytest.approx(half, rel=0.1)
    assert e.n == 400 and e.seeds == 1


def test_estimate_is_seeded_drops_non_finite_and_rejects_empty():
    x = [0.1, 0.5, np.nan, 0.9, 0.3, np.inf]
    assert estimate(x) == estimate(x)
    assert estimate(x).n == 4
    with pytest.raises(ValueError, match="no finite values"):
        estimate([np.nan])
    const = estimate([2.0, 2.0, 2.0])
    assert (const.lo, const.hi) == (2.0, 2.0)


def test_paired_difference_removes_the_shared_image_effect():
    rng = np.random.default_rng(3)
    image_effect = rng.normal(0, 5, 60)  # large, shared by both methods
    a = image_effect + 0.5 + rng.normal(0, 0.1, 60)
    b = image_effect + rng.normal(0, 0.1, 60)
    d = paired_difference(a, b)
    assert d.lo > 0.4 and d.hi < 0.6
    assert verdict_claim(d) == "holds" and verdict_claim(d, greater=False) == "fails"
    with pytest.raises(ValueError, match="one value per unit"):
        paired_difference([1, 2], [1, 2, 3])


def test_claim_verdicts_straddling_the_margin_are_inconclusive():
    assert verdict_claim(Estimate(0.1, -0.05, 0.2, 10)) == "inconclusive"
    assert verdict_claim(Estimate(0.1, 0.0, 0.2, 10)) == "inconclusive"  # touching is not deciding
    assert verdict_claim(Estimate(0.1, 0.02, 0.2, 10)) == "holds"
    assert verdict_claim(Estimate(-0.1, -0.2, -0.02, 10)) == "fails"
    assert verdict_claim(Estimate(0.3, 0.2, 0.4, 10), margin=0.25) == "inconclusive"
    assert verdict_claim(None) == "not run"


def test_paper_verdicts_use_a_tolerance_band():
    e = Estimate(0.50, 0.46, 0.54, 100)
    assert verdict_paper(e, 0.50, 0.05) == "agrees"
    assert verdict_paper(e, 0.70, 0.05) == "differs"
    assert verdict_paper(e, 0.57, 0.05) == "inconclusive"  # band [0.52, 0.62] overlaps the CI
    assert verdict_paper(e, None, 0.05) == "no paper value"
    assert verdict_paper(None, 0.5, 0.05) == "not run"
    with pytest.raises(ValueError):
        verdict_paper(e, 0.5, -1)


def test_controls_and_seeds():
    assert verdict_controlled("holds", "holds") == "uninformative"
    assert verdict_controlled("holds", "inconclusive") == "holds"
    assert verdict_controlled("inconclusive", "inconclusive") == "inconclusive"
    assert verdict_over_seeds(["holds"] * 3) == "holds"
    assert verdict_over_seeds(["holds", "holds", "inconclusive"]) == "inconclusive"
    s = over_seeds([1.0, 1.2, 1.1])
    assert s.seeds == 3 and s.unit == "seeds" and s.lo >= 1.0 and s.hi <= 1.2


def test_formatting_follows_the_ci_width():
    assert fmt_ci(0.5131, 0.49, 0.54) == "0.51 [0.49, 0.54]"
    assert fmt_ci(193.3, 170, 230) == "193 [170, 230]"
    assert fmt_ci(1.23, 0.8, 1.7) == "1.2 [0.8, 1.7]"
    assert Estimate(0.5131, 0.49, 0.54, 5).ci95 == "[0.49, 0.54]"
