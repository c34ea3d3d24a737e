"""Student t critical values and across-run CIs against textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppd.report.stats import (
    METHOD_BOOTSTRAP,
    METHOD_T,
    Estimate,
    bootstrap_estimate,
    compare,
    estimate,
    estimate_all_or_none,
    t_critical_95,
)


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (1, 12.706),
        (2, 4.303),
        (4, 2.776),
        (9, 2.262),
        (30, 2.042),
        (35, 2.030),  # between table anchors: interpolated in 1/df
        (50, 2.009),
        (100, 1.984),
        (1000, 1.962),
        (10**9, 1.960),
    ],
)
def test_t_critical_matches_published_tables(df: int, expected: float) -> None:
    assert t_critical_95(df) == pytest.approx(expected, abs=0.0015)


def test_t_critical_rejects_zero_degrees_of_freedom() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_critical_95(0)


def test_estimate_of_three_runs_uses_t_with_two_degrees_of_freedom() -> None:
    result = estimate([1.0, 2.0, 3.0])
    # mean 2, s = 1, se = 1/√3, t(0.975, 2) = 4.3027
    assert result.mean == 2.0
    assert result.std == pytest.approx(1.0)
    assert result.half_width == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    assert result.ci_low == pytest.approx(2.0 - 2.4841, abs=1e-3)
    assert result.ci_high == pytest.approx(2.0 + 2.4841, abs=1e-3)
    assert result.num_runs == 3


def test_estimate_of_one_run_has_no_interval() -> None:
    result = estimate([7.5])
    assert (result.mean, result.std, result.ci_low, result.ci_high, result.half_width) == (
        7.5, None, None, None, None,
    )  # fmt: skip
    assert result.to_json()["ci95_half_width"] is None


def test_estimate_of_identical_runs_has_zero_width() -> None:
    assert estimate([5.0, 5.0, 5.0, 5.0]).half_width == 0.0


def test_estimate_needs_a_value() -> None:
    with pytest.raises(ValueError):
        estimate([])


def test_any_null_run_makes_the_point_null() -> None:
    assert estimate_all_or_none([None, None]) is None
    assert estimate_all_or_none([1.0, None, 3.0]) is None
    result = estimate_all_or_none([1.0, 3.0])
    assert result is not None and result.mean == 2.0


def test_without_rows_differences_add_in_quadrature_and_ratios_on_the_log_scale() -> None:
    a = Estimate(mean=100.0, std=1.0, num_runs=3, ci_low=97.0, ci_high=103.0)  # half-width 3
    b = Estimate(mean=50.0, std=1.0, num_runs=3, ci_low=46.0, ci_high=54.0)  # half-width 4
    result = compare(a, b)
    assert result.method == METHOD_T and not result.paired
    assert (result.difference_low, result.difference_high) == pytest.approx((45.0, 55.0))
    log_half_width = math.hypot(0.03, 0.08)
    assert result.ratio == 2.0
    assert result.ratio_low == pytest.approx(2.0 * math.exp(-log_half_width))
    assert result.ratio_high == pytest.approx(2.0 * math.exp(log_half_width))
    assert result.direction == 1  # b is significantly lower


def test_a_ratio_interval_without_rows_stays_positive_even_when_wide() -> None:
    wide = Estimate(mean=10.0, std=1.0, num_runs=2, ci_low=-50.0, ci_high=70.0)  # t with 2 runs
    result = compare(wide, Estimate(mean=5.0, std=1.0, num_runs=2, ci_low=-20.0, ci_high=30.0))
    assert result.ratio_low is not None and result.ratio_low > 0
    assert result.direction == 0  # a tie


def test_one_run_without_rows_has_no_interval_and_no_direction() -> None:
    result = compare(estimate([1.0]), estimate([2.0]))
    assert (result.difference, result.difference_low, result.ratio_low, result.direction) == (
        -1.0,
        None,
        None,
        None,
    )


def test_bootstrap_estimates_compare_pairwise_on_their_replicates() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(100.0, 10.0, 2000)  # both modes move together across resamples
    a = bootstrap_estimate(100.0, shared, ("plan",), num_runs=1, num_conversations=50)
    b = bootstrap_estimate(98.0, shared - 2.0 + rng.normal(0.0, 0.5, 2000), ("plan",), 1, 50)
    assert a.method == METHOD_BOOTSTRAP and a.ci_low is not None and a.ci_low < 90.0
    result = compare(a, b)
    assert result.paired
    assert result.difference == 2.0
    assert result.difference_low is not None and 0.5 < result.difference_low < 2.0  # paired: narrow
    assert result.direction == 1
    unpaired = compare(a, bootstrap_estimate(98.0, rng.normal(98.0, 10.0, 2000), ("other",), 1, 50))
    assert not unpaired.paired and unpaired.direction == 0  # independent: the spread swamps 2 ms


def test_bootstrap_estimate_without_enough_defined_replicates_has_no_interval() -> None:
    replicates = np.full(1000, np.nan)
    result = bootstrap_estimate(3.0, replicates, ("plan",), 1, 10)
    assert (result.mean, result.ci_low, result.replicates) == (3.0, None, None)
