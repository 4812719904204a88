"""Properties of the verdict helpers of visxai.evaluation (paired comparisons, pooled ratios)."""

import numpy as np
import pytest

from visxai import evaluation as ev


def test_pooled_estimate_is_the_pooled_ratio_with_a_ci_around_it():
    num = np.array([10, 20, 30, 40, 50, 60, 70, 80], dtype=float)
    den = np.array([100, 100, 100, 100, 200, 200, 200, 200], dtype=float)
    e = ev.pooled_estimate(num, den)
    assert e.value == pytest.approx(100 * num.sum() / den.sum())
    assert e.lo <= e.value <= e.hi and e.lo < e.hi
    assert e.n == 8
    # not the mean of per-unit ratios when the denominators differ
    assert e.value != pytest.approx(100 * np.mean(num / den))
    # equal denominators: the pooled ratio is the mean ratio
    assert ev.pooled_estimate(num, np.full(8, 100.0)).value == pytest.approx(np.mean(num))


def test_paired_pooled_difference_is_zero_for_identical_and_sees_a_shift():
    rng = np.random.default_rng(0)
    den = rng.integers(50, 100, size=40).astype(float)
    a = np.floor(den * rng.uniform(0.3, 0.9, size=40))
    same = ev.paired_pooled_difference(a, den, a, den)
    assert same.value == 0 and same.lo == 0 and same.hi == 0
    better = np.minimum(a + 5, den)
    d = ev.paired_pooled_difference(better, den, a, den)
    assert d.value == pytest.approx(100 * (better.sum() - a.sum()) / den.sum())
    assert d.lo > 0  # every unit improves: the paired CI excludes 0


def test_compare_paired_verdicts_and_pairing_on_the_first_images():
    rng = np.random.default_rng(1)
    ref = rng.normal(50, 10, size=200)
    others = {
        "worse": ref - 3 + rng.normal(0, 1, size=200),
        "better": ref + 3 + rng.normal(0, 1, size=200),
        "same": ref + rng.normal(0, 1, size=200) * 0.01 * np.sign(rng.normal(size=200)),
        "short": ref[:50] - 2,  # run on the first 50 images only
    }
    comps = ev.compare_paired(ref, others)
    assert comps["worse"].verdict == "holds"
    assert comps["better"].verdict == "fails"
    assert comps["short"].verdict == "holds" and comps["short"].diff.n == 50
    assert comps["short"].diff.value == pytest.approx(2.0)
    assert comps["same"].diff.lo <= 0 <= comps["same"].diff.hi
    lower = ev.compare_paired(ref, {"worse": others["worse"]}, greater=False)
    assert lower["worse"].verdict == "fails"
    with pytest.raises(ValueError):
        ev.compare_paired(ref[:10], {"long": ref})


def test_combine_claims_needs_every_claim_to_hold_and_one_failure_to_fail():
    assert ev.combine_claims(["holds", "holds"]) == "holds"
    assert ev.combine_claims(["holds", "inconclusive"]) == "inconclusive"
    assert ev.combine_claims(["inconclusive", "fails", "holds"]) == "fails"
    assert ev.combine_claims([]) == "not run"
