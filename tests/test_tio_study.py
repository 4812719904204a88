"""Properties of notebook 03's study helpers in visxai.evaluation.tio that stand on replicate
runs: the Fig. 3(c) / Fig. 4 statistics (per-run rho, leave-one-out argmax range, the rise) and
the 224 px resolution check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from tiny_models import tio_cnn

from visxai.evaluation import tio
from visxai.methods.tio import TIOResult, TransformationInvariantOptimizer, pixel_to_input

CLS = {"soccer ball": 0, "Persian cat": 1}


def _fake_result(images: torch.Tensor) -> TIOResult:
    n = len(images)
    zeros = torch.zeros(n, dtype=torch.long)
    return TIOResult(images, zeros, torch.ones(n), zeros, zeros, zeros)


def _sweep_jobs(levels, replicates: int) -> tio.ReplicateJobs:
    return tio.ReplicateJobs.build(
        {"soccer ball": 0}, levels, levels, replicates, replicates, fig2_classes=()
    )


def test_per_run_rho_and_leave_one_out_range_match_their_definitions() -> None:
    levels = [0, 10, 30, 60, 120, 250]
    jobs = _sweep_jobs(levels, 4)
    g = torch.Generator().manual_seed(1)
    images = torch.rand((len(jobs), 3, 24, 24), generator=g) * 255
    st = tio.entropy_study(jobs, _fake_result(images), window=5, smooth=3)
    lv = np.array(levels)
    runs = [spearmanr(lv, st.entropy[r]).statistic for r in range(4)]
    assert st.rho_per_run.value == pytest.approx(np.mean(runs))
    assert st.rho_per_run.lo <= st.rho_per_run.value <= st.rho_per_run.hi
    loo = [
        tio.smoothed_argmax(levels, np.delete(st.second_order, r, 0).mean(0), window=3)
        for r in range(4)
    ]
    assert st.argmax_loo == (min(loo), max(loo))
    assert st.smooth == 3 and "leave-one-replicate-out range" in st.summary_peak()


def test_rise_is_level_0_minus_level_10_wherever_they_sit_and_needs_both() -> None:
    jobs = _sweep_jobs([0, 5, 10, 60, 120], 3)
    g = torch.Generator().manual_seed(2)
    images = torch.rand((len(jobs), 3, 16, 16), generator=g) * 255
    st = tio.entropy_study(jobs, _fake_result(images), window=5, rise_margin=0.0)
    so = st.second_order
    assert st.rise.value == pytest.approx((so[:, 0] - so[:, 2]).mean())
    # margin 0: the verdict is the plain CI verdict of the rise
    expect = "holds" if st.rise.lo > 0 else "fails" if st.rise.hi < 0 else "inconclusive"
    assert st.v_rise == expect
    with pytest.raises(ValueError, match="must include 0 and 10"):
        tio.entropy_study(_sweep_jobs([0, 30, 60], 2), _fake_result(images[:6]))


def test_the_planted_second_order_peak_is_found_with_its_leave_one_out_range(monkeypatch) -> None:
    # the entropy measures themselves are tested in test_entropy.py: plant the second-order sums
    levels = list(tio.CHECK_LEVELS)
    jobs = _sweep_jobs(levels, 3)
    so = torch.tensor([[5.0 if g == 60 else 1.0 + r for g in levels] for r in range(3)])
    so[2, levels.index(90)] = 9.0  # one replicate peaks elsewhere: leaving it out moves nothing
    fake = {
        "entropy_map_mean": torch.arange(len(jobs), dtype=torch.float32),
        "second_order_sum": so.flatten(),
        "entropy_2d": torch.zeros(len(jobs)),
    }
    monkeypatch.setattr(tio, "entropy_analysis", lambda images, window: fake)
    st = tio.entropy_study(jobs, _fake_result(torch.zeros(len(jobs), 3, 8, 8)), smooth=1)
    # mean curve: 60 -> (5 + 5 + 5) / 3 = 5, 90 -> (1 + 2 + 9) / 3 = 4: the argmax is 60
    assert st.argmax.value == 60.0
    # without replicate 0 or 1: 60 -> 5 vs 90 -> (2 + 9) / 2 = 5.5 or (1 + 9) / 2 = 5: ties go low
    assert st.argmax_loo == (60.0, 90.0)
    assert st.rho.value == pytest.approx(1.0)  # the planted entropy rises with the level
    assert st.v_rho == "fails"


def test_resolution_check_runs_the_sweep_class_only_and_reports_both_sizes() -> None:
    from types import SimpleNamespace

    lm = SimpleNamespace(model=tio_cnn(), mean=(0.5,) * 3, std=(0.5,) * 3)
    opt = TransformationInvariantOptimizer(
        lm.model, pixel_to_input(lm.mean, lm.std), 0.4, 10.0, 2, 6.0, 5, batch_size=4
    )
    chk = tio.resolution_check(opt, lm, CLS, seeds=[0, 1], size=24, replicates=2, main_size=12)
    assert len(chk.jobs) == 2 * len(tio.CHECK_LEVELS)
    assert {c for c, _, _ in chk.jobs.jobs} == {"soccer ball"}
    assert chk.result.images.shape[-2:] == (24, 24)
    assert chk.study.rise_margin == pytest.approx(tio.RISE_MARGIN * 4)
    main = tio.entropy_study(chk.jobs, chk.result, window=5)
    lines = chk.report().splitlines()
    assert lines[0].startswith("24 px check: 18 runs (9 levels x 2 replicates, soccer ball)")
    assert lines[0].endswith("[0, 255]: True") and "not verdicts" in lines[1]
    table = chk.table(main, 12)
    assert list(table.index) == [
        "12 px (9 levels x 2 replicates)",
        "24 px (9 levels x 2 replicates)",
    ]
    # the main run's verdicts are printed beside its numbers, the check's are not
    assert table.iloc[0, 0].endswith(main.v_rho) and table.iloc[1, 0] == chk.study.rho.fmt() + " "
    from visxai.scorecard import Scorecard

    sc = Scorecard("03_transformation_invariant_optimization")
    chk.study.score(sc, "test", ", 24 px check", observe=True)
    assert {r.verdict for r in sc.rows} == {"observed"} and len(sc.rows) == 5
    assert all(r.item.endswith(", 24 px check") for r in sc.rows)


def test_trend_margin_is_the_critical_rho_and_decides_the_decrease() -> None:
    # tabulated two-sided 5% critical values of Spearman's rho (large-sample t approximation)
    assert tio.trend_margin(26) == pytest.approx(0.388, abs=2e-3)
    assert tio.trend_margin(10) == pytest.approx(0.632, abs=2e-3)
    with pytest.raises(ValueError, match="at least 4 levels"):
        tio.trend_margin(3)
    from visxai.stats import Estimate, verdict_claim

    m = tio.trend_margin(26)

    def verdict(lo: float, hi: float) -> str:
        return verdict_claim(Estimate((lo + hi) / 2, lo, hi, 5), greater=False, margin=-m)

    # a decrease one curve can show: holds below -m, fails above it, else inconclusive
    assert verdict(-0.8, -0.5) == "holds"
    assert verdict(-0.5, -0.1) == "inconclusive"
    assert verdict(0.0, 0.3) == verdict(-0.3, 0.7) == "fails"


def test_compare_transforms_starts_from_the_rotation_runs_and_makes_a_full_revolution() -> None:
    model = tio_cnn()
    opt = TransformationInvariantOptimizer(
        model, pixel_to_input((0.5,) * 3, (0.5,) * 3), 0.4, 10.0, 2, 6.0, 5, batch_size=4
    )
    jobs = tio.ReplicateJobs.build(CLS, [0, 10], None, 2, 2, fig2_classes=())
    starts = jobs.starts(16, [0, 1], 0.5)
    res = opt.optimize(starts, jobs.targets)
    cmp = tio.compare_transforms(opt, jobs, starts, res, ("soccer ball", "Persian cat"))
    idx = jobs.black_starts(("soccer ball", "Persian cat"))
    assert torch.equal(cmp.rotation_images, res.images[idx])
    assert cmp.combined.rounds.tolist() == [3 * 2] * 4  # three transforms x 2 rotations
    assert cmp.combined.images.min() >= 0 and cmp.combined.images.max() <= 255
    both = int(((cmp.table.hf_rotation > 0) & (cmp.table.hf_combined > 0)).sum())
    assert cmp.diff.n == both and cmp.report().endswith("6 rounds per combined run")
    assert list(cmp.table.cls) == ["soccer ball", "Persian cat"] * 2


def test_score_runs_reports_q_both_ways_and_the_capped_fraction() -> None:
    from visxai.scorecard import Scorecard

    n = 4
    zeros = torch.zeros(n, dtype=torch.long)
    res = TIOResult(
        torch.zeros(n, 3, 8, 8),
        zeros,
        torch.tensor([0.95, 0.95, 0.95, 0.5]),
        zeros,
        zeros,
        torch.tensor([0, 0, 1, 3]),
        torch.tensor([0.95, 0.2, 0.2, 0.2]),
    )
    sc = Scorecard("03_transformation_invariant_optimization")
    tio.score_runs(sc, res, "test", 1, 0.9, 3, 25, final_optimize=True)
    got = [float(r.reproduced) for r in sc.rows]
    assert got == pytest.approx([0.75, 0.25, (0 + 0 + 1 + 3) / 4 / 4], abs=1e-3)
    assert [r.metric.split(" q_target ")[-1] for r in sc.rows[:2]] == [
        "of the output (the run ends with an optimisation)",
        "right after the last transformation",
    ]
    assert "4 rounds per run" in sc.rows[2].setting
