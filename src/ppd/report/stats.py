"""A metric's estimate at one point with its 95% interval, and paired comparisons of two points.

Two ways to an interval:
- bootstrap (ppd.report.bootstrap): from the rows, resampling conversations (and runs); the
  estimate keeps its replicates, so two modes on the same schedule compare pairwise.
- Student t across runs, for result sets whose rows are not at hand: each run gives one value of
  the metric, and mean ± t(0.975, k-1) · s / √k with s the sample standard deviation. One run gives
  a value and no interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ppd.report.bootstrap import CONFIDENCE, FloatArray, percentile_interval

# Two-sided 95% critical values t(0.975, df) for df = 1..30 (standard tables, 4 decimals).
_T_975_SMALL_DF = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
# Beyond 30, t is very nearly linear in 1/df; these anchors bound the interpolation error < 0.001.
_T_975_LARGE_DF = ((30, 2.0423), (40, 2.0211), (60, 2.0003), (120, 1.9799))
_Z_975 = 1.9600


METHOD_BOOTSTRAP = "bootstrap"  # percentile interval of the conversation (and run) bootstrap
METHOD_T = "t"  # Student t across runs (no rows at hand)


@dataclass(frozen=True, eq=False)
class Estimate:
    """A metric's value at one point, with its 95% interval when one could be computed.

    `mean` is the point's value: with rows, the statistic over all its runs' rows pooled (a mean,
    a P99, a rate); without, the mean over runs of each run's value.
    """

    mean: float
    std: float | None  # across-run sample std (t) or the bootstrap standard error; None for one run
    num_runs: int
    ci_low: float | None
    ci_high: float | None
    method: str = METHOD_T
    replicates: FloatArray | None = None  # bootstrap replicates, resample b of plan_key in row b
    plan_key: tuple[object, ...] | None = None  # estimates with the same plan compare pairwise
    num_conversations: int | None = None

    @property
    def half_width(self) -> float | None:
        """Half the CI's width (same unit as the metric); None for one run."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_high - self.ci_low) / 2

    def to_json(self) -> dict[str, float | int | str | None]:
        """The JSON form written into the merged results."""
        return {
            "mean": self.mean,
            "ci95_low": self.ci_low,
            "ci95_high": self.ci_high,
            "ci95_half_width": self.half_width,
            "ci95_method": self.method if self.ci_low is not None else None,
            "std": self.std,
            "num_runs": self.num_runs,
            "num_conversations": self.num_conversations,
        }


def bootstrap_estimate(
    value: float, replicates: FloatArray, plan_key: tuple[object, ...], num_runs: int, num_conversations: int
) -> Estimate:
    """An estimate with the percentile interval of its bootstrap replicates (none if undefined)."""
    interval = percentile_interval(replicates)
    if interval is None:
        return Estimate(
            value, None, num_runs, None, None, METHOD_BOOTSTRAP, None, plan_key, num_conversations
        )
    return Estimate(
        value, interval.standard_error, num_runs, interval.low, interval.high,
        METHOD_BOOTSTRAP, replicates, plan_key, num_conversations,
    )  # fmt: skip


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


@dataclass(frozen=True)
class Comparison:
    """a − b and a / b at one point (lower-is-better or not: just the numbers), with 95% intervals."""

    difference: float
    difference_low: float | None
    difference_high: float | None
    ratio: float | None  # None when b is not positive
    ratio_low: float | None
    ratio_high: float | None
    paired: bool  # both from one resample plan: the same conversations in both modes
    method: str | None  # METHOD_BOOTSTRAP, METHOD_T, or None without an interval
    difference_replicates: FloatArray | None = None

    @property
    def direction(self) -> int | None:
        """-1: a is lower (interval of a − b below 0); +1: b is lower; 0: a tie; None: no interval."""
        if self.difference_low is None or self.difference_high is None:
            return None
        if self.difference_high < 0:
            return -1
        if self.difference_low > 0:
            return 1
        return 0


def compare(a: Estimate, b: Estimate) -> Comparison:
    """a − b and a / b with intervals: paired bootstrap when both share a plan, else as independent."""
    ratio = a.mean / b.mean if b.mean > 0 else None
    if a.replicates is not None and b.replicates is not None:
        return _bootstrap_comparison(a, b, a.replicates, b.replicates, ratio)
    if a.half_width is not None and b.half_width is not None:
        return _normal_comparison(a, b, ratio)
    return Comparison(a.mean - b.mean, None, None, ratio, None, None, False, None)


def _bootstrap_comparison(
    a: Estimate, b: Estimate, a_replicates: FloatArray, b_replicates: FloatArray, ratio: float | None
) -> Comparison:
    paired = a.plan_key is not None and a.plan_key == b.plan_key
    # Unpaired estimates were resampled independently: a − b over their replicates is then the
    # bootstrap of the difference of independent estimates, still valid, only wider.
    differences = a_replicates - b_replicates
    difference = percentile_interval(differences, CONFIDENCE)
    ratio_interval = None
    if ratio is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(b_replicates > 0, a_replicates / b_replicates, np.nan)
        ratio_interval = percentile_interval(ratios, CONFIDENCE)
    return Comparison(
        a.mean - b.mean,
        None if difference is None else difference.low,
        None if difference is None else difference.high,
        ratio,
        None if ratio_interval is None else ratio_interval.low,
        None if ratio_interval is None else ratio_interval.high,
        paired,
        METHOD_BOOTSTRAP,
        differences if difference is not None else None,
    )


def _normal_comparison(a: Estimate, b: Estimate, ratio: float | None) -> Comparison:
    """Independent intervals combined in quadrature; the ratio's on the log scale, so it stays > 0."""
    half_width = math.hypot(a.half_width or 0.0, b.half_width or 0.0)
    difference = a.mean - b.mean
    ratio_low = ratio_high = None
    if ratio is not None and a.mean > 0:
        log_half_width = math.hypot((a.half_width or 0.0) / a.mean, (b.half_width or 0.0) / b.mean)
        ratio_low, ratio_high = ratio * math.exp(-log_half_width), ratio * math.exp(log_half_width)
    return Comparison(
        difference,
        difference - half_width,
        difference + half_width,
        ratio,
        ratio_low,
        ratio_high,
        False,
        METHOD_T,
    )
