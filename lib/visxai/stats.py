"""Confidence intervals and the verdict rules of the scorecard.

Every reproduced number carries a 95% confidence interval from :func:`scipy.stats.bootstrap`
over its real unit of variation (images, pairs, curves or seeds), and a verdict is given only
when that interval decides it; otherwise it is ``inconclusive``.

Verdict vocabulary (:data:`VERDICTS`):

* ``agrees`` / ``differs``: a reproduced number against the paper's value. With a tolerance band
  ``[paper - tol, paper + tol]``: ``agrees`` when the whole CI lies inside the band, ``differs``
  when the CI and the band do not overlap, ``inconclusive`` otherwise (:func:`verdict_paper`).
* ``holds`` / ``fails``: a claim "A > B" (or "A < B"). A paired bootstrap of the per-unit
  difference (:func:`paired_difference`): ``holds`` when the CI lies entirely on the claimed side
  of the margin, ``fails`` when it lies entirely on the other side, ``inconclusive`` when it
  straddles it (:func:`verdict_claim`).
* ``uninformative``: the model-randomisation control (Adebayo et al., 2018) gives the same
  holds/fails verdict as the trained model, so the protocol cannot tell them apart
  (:func:`verdict_controlled`).
* ``not run``, ``no paper value``, ``observed`` (a number shown without a claim or paper value).

Claims that depend on randomness (sampling, training, optimisation) rest on at least three
seeds: :func:`verdict_over_seeds` keeps a verdict only when every seed gives it.

Written by hand: the verdict rules and the CI-aware formatting (a few lines each); the
resampling itself is scipy's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sps

__all__ = [
    "VERDICTS",
    "Estimate",
    "estimate",
    "paired_difference",
    "over_seeds",
    "verdict_paper",
    "verdict_claim",
    "verdict_controlled",
    "verdict_over_seeds",
    "sig_round",
    "ci_decimals",
    "fmt_ci",
]

VERDICTS = (
    "agrees",
    "differs",
    "holds",
    "fails",
    "inconclusive",
    "uninformative",
    "not run",
    "no paper value",
    "observed",
)

CONFIDENCE = 0.95
N_RESAMPLES = 4999


@dataclass(frozen=True)
class Estimate:
    """A statistic with its 95% bootstrap CI over ``n`` units (``unit``), from ``seeds`` seeds."""

    value: float
    lo: float
    hi: float
    n: int
    seeds: int = 1
    unit: str = "images"

    @property
    def ci95(self) -> str:
        """The CI written ``[lo, hi]`` at the precision the interval supports."""
        d = ci_decimals(self.lo, self.hi)
        return f"[{_dec(self.lo, d)}, {_dec(self.hi, d)}]"

    def fmt(self) -> str:
        """``value [lo, hi]`` at the precision the interval supports."""
        return fmt_ci(self.value, self.lo, self.hi)

    def __str__(self) -> str:
        return self.fmt()

    def excludes(self, x: float) -> bool:
        """True if ``x`` lies outside the CI."""
        return not (self.lo <= x <= self.hi)


def _clean(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    arr = arr.reshape(-1)
    return arr[np.isfinite(arr)]


def _bootstrap(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., float],
    seed: int,
    paired: bool,
) -> tuple[float, float]:
    if len(data[0]) < 2 or all(np.all(d == d[0]) for d in data):
        v = float(statistic(*data))  # no spread to resample: the CI is the point
        return v, v
    res = _sps.bootstrap(
        data,
        statistic,
        paired=paired,
        vectorized=False,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return lo, hi


def estimate(
    values: Iterable[float],
    *,
    statistic: str | Callable[[np.ndarray], float] = "mean",
    unit: str = "images",
    seeds: int = 1,
    seed: int = 0,
) -> Estimate:
    """The ``statistic`` (``"mean"``, ``"median"`` or a callable) of ``values`` with its 95% CI.

    Non-finite values are dropped (``n`` counts the rest). The resampling is seeded: the same
    values give the same interval on every machine.
    """
    arr = _clean(values)
    if arr.size == 0:
        raise ValueError("estimate() got no finite values: nothing to average")
    fn = {"mean": np.mean, "median": np.median}.get(statistic, statistic)  # type: ignore[arg-type]
    if not callable(fn):
        raise ValueError(f"statistic must be 'mean', 'median' or a callable, got {statistic!r}")
    value = float(fn(arr))
    lo, hi = _bootstrap((arr,), lambda x: float(fn(x)), seed, paired=False)
    return Estimate(value, min(lo, value), max(hi, value), int(arr.size), seeds, unit)


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    unit: str = "images",
    seeds: int = 1,
    seed: int = 0,
) -> Estimate:
    """Mean of ``a - b`` over paired units (the same images for both), with a paired bootstrap CI.

    Pairs where either value is non-finite are dropped.
    """
    a = np.asarray(a, dtype=float).reshape(-1)
    b = np.asarray(b, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(
            f"paired_difference needs one value per unit in both, got {a.shape} and {b.shape}"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    if not keep.any():
        raise ValueError("paired_difference got no pair with two finite values")
    d = a[keep] - b[keep]
    value = float(d.mean())
    lo, hi = _bootstrap((d,), lambda x: float(np.mean(x)), seed, paired=False)
    return Estimate(value, min(lo, value), max(hi, value), int(d.size), seeds, unit)


def over_seeds(per_seed: Sequence[float], *, seed: int = 0) -> Estimate:
    """Mean over seeds with a bootstrap CI over the seeds (the unit of variation is the seed)."""
    arr = _clean(per_seed)
    est = estimate(arr, unit="seeds", seeds=int(arr.size), seed=seed)
    return est


def verdict_paper(est: Estimate | None, paper: float | None, tol: float) -> str:
    """``agrees`` if the CI lies inside ``paper ± tol``, ``differs`` if it misses the band.

    ``inconclusive`` when they partly overlap; ``not run`` without an estimate and
    ``no paper value`` without a paper value.
    """
    if est is None:
        return "not run"
    if paper is None:
        return "no paper value"
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    lo_band, hi_band = float(paper) - tol, float(paper) + tol
    if lo_band <= est.lo and est.hi <= hi_band:
        return "agrees"
    if est.hi < lo_band or est.lo > hi_band:
        return "differs"
    return "inconclusive"


def verdict_claim(diff: Estimate | None, *, greater: bool = True, margin: float = 0.0) -> str:
    """Verdict on "the difference is > margin" (``greater``) or "< margin" from its CI.

    ``holds`` when the whole CI is on the claimed side, ``fails`` when the whole CI is on the
    other side (touching the margin counts as neither), ``inconclusive`` when it straddles.
    """
    if diff is None:
        return "not run"
    lo, hi = (diff.lo, diff.hi) if greater else (-diff.hi, -diff.lo)
    m = margin if greater else -margin
    if lo > m:
        return "holds"
    if hi < m:
        return "fails"
    return "inconclusive"


def verdict_controlled(verdict: str, control: str) -> str:
    """``uninformative`` when the randomised-model control gives the same holds/fails verdict."""
    if verdict in ("holds", "fails") and control == verdict:
        return "uninformative"
    return verdict


def verdict_over_seeds(verdicts: Sequence[str]) -> str:
    """One verdict from per-seed verdicts: kept when every seed agrees, else ``inconclusive``."""
    verdicts = list(verdicts)
    if not verdicts:
        return "not run"
    if all(v == verdicts[0] for v in verdicts):
        return verdicts[0]
    return "inconclusive"


def sig_round(x: float, digits: int = 2) -> str:
    """``x`` rounded to ``digits`` significant digits, as text (no exponent for common ranges)."""
    if x is None or not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(digits - 1 - mag, 0)
    r = round(x, decimals)
    if decimals == 0:
        return f"{int(round(r))}"
    return f"{r:.{decimals}f}"


def ci_decimals(lo: float, hi: float) -> int:
    """Decimals that show the CI's half-width to one significant digit (0 for wide intervals)."""
    width = abs(hi - lo)
    if width == 0 or not math.isfinite(width):
        scale = max(abs(lo), abs(hi))
        return (
            3
            if scale == 0 or not math.isfinite(scale)
            else max(0, 2 - math.floor(math.log10(scale)))
        )
    return max(0, -math.floor(math.log10(width / 2)))


def _dec(x: float, decimals: int) -> str:
    if x is None or not math.isfinite(x):
        return str(x)
    text = f"{x:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def fmt_ci(value: float, lo: float, hi: float) -> str:
    """``value [lo, hi]`` at the precision the CI supports (half-width to one significant digit)."""
    d = ci_decimals(lo, hi)
    return f"{_dec(value, d)} [{_dec(lo, d)}, {_dec(hi, d)}]"
