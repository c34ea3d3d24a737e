"""Mean and 95% confidence interval of one metric across repeated runs (Student t, no scipy).

Each run of a (mode, workload, QPS) point gives one value of a metric (its mean TTFT, its P99
E2E, ...). Runs are independent repetitions, so the across-run mean has a Student t interval with
k - 1 degrees of freedom: mean ± t(0.975, k-1) · s / √k, where s is the sample standard deviation.
One run gives a mean and no interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% critical values t(0.975, df) for df = 1..30 (standard tables, 4 decimals).
_T_975_SMALL_DF = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
# Beyond 30, t is very nearly linear in 1/df; these anchors bound the interpolation error < 0.001.
_T_975_LARGE_DF = ((30, 2.0423), (40, 2.0211), (60, 2.0003), (120, 1.9799))
_Z_975 = 1.9600


@dataclass(frozen=True)
class Estimate:
    """A metric's across-run mean, with its 95% CI when there are at least two runs."""

    mean: float
    std: float | None  # sample standard deviation (ddof=1); None for one run
    num_runs: int
    ci_low: float | None
    ci_high: float | None

    @property
    def half_width(self) -> float | None:
        """Half the CI's width (same unit as the metric); None for one run."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2

    def to_json(self) -> dict[str, float | int | None]:
        """The JSON form written into the merged results."""
        return {
            "mean": self.mean,
            "ci95_low": self.ci_low,
            "ci95_high": self.ci_high,
            "ci95_half_width": self.half_width,
            "std": self.std,
            "num_runs": self.num_runs,
        }


def t_critical_95(df: int) -> float:
    """The two-sided 95% Student t critical value t(0.975, df) for df ≥ 1."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be ≥ 1, got {df}")
    if df <= len(_T_975_SMALL_DF):
        return _T_975_SMALL_DF[df - 1]
    anchors = [*_T_975_LARGE_DF, (math.inf, _Z_975)]
    for (df_lo, t_lo), (df_hi, t_hi) in itertools.pairwise(anchors):
        if df <= df_hi:
            return _interpolate_in_inverse_df(df, df_lo, t_lo, df_hi, t_hi)
    return _Z_975


def _interpolate_in_inverse_df(df: int, df_lo: float, t_lo: float, df_hi: float, t_hi: float) -> float:
    inv_hi = 0.0 if math.isinf(df_hi) else 1 / df_hi
    fraction = (1 / df_lo - 1 / df) / (1 / df_lo - inv_hi)
    return t_lo + fraction * (t_hi - t_lo)


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and 95% Student t CI of per-run values (at least one value)."""
    if not values:
        raise ValueError("estimate() needs at least one value")
    num_runs = len(values)
    mean = math.fsum(values) / num_runs
    if num_runs == 1:
        return Estimate(mean=mean, std=None, num_runs=1, ci_low=None, ci_high=None)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (num_runs - 1))
    half_width = t_critical_95(num_runs - 1) * std / math.sqrt(num_runs)
    return Estimate(mean, std, num_runs, mean - half_width, mean + half_width)


def estimate_all_or_none(values: Sequence[float | None]) -> Estimate | None:
    """Like estimate(), but None when any value is null: a partial set of runs is not the point."""
    present = [v for v in values if v is not None]
    return estimate(present) if present and len(present) == len(values) else None


def difference_half_width(a: Estimate, b: Estimate) -> float | None:
    """95% half-width of a.mean − b.mean, combining independent CIs in quadrature; None without CIs."""
    if a.half_width is None or b.half_width is None:
        return None
    return math.hypot(a.half_width, b.half_width)


def ratio_half_width(a: Estimate, b: Estimate) -> float | None:
    """Approximate 95% half-width of a.mean / b.mean (relative errors in quadrature); None if unknown."""
    if a.half_width is None or b.half_width is None or a.mean == 0 or b.mean == 0:
        return None
    ratio = a.mean / b.mean
    return abs(ratio) * math.hypot(a.half_width / a.mean, b.half_width / b.mean)
