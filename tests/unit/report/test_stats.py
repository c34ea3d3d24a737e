"""Student t critical values and across-run CIs against textbook values."""

from __future__ import annotations

import math

import pytest

from ppd.report.stats import (
    Estimate,
    difference_half_width,
    estimate,
    estimate_all_or_none,
    ratio_half_width,
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


def test_difference_and_ratio_half_widths_add_in_quadrature() -> None:
    a = Estimate(mean=100.0, std=1.0, num_runs=3, ci_low=97.0, ci_high=103.0)  # half-width 3
    b = Estimate(mean=50.0, std=1.0, num_runs=3, ci_low=46.0, ci_high=54.0)  # half-width 4
    assert difference_half_width(a, b) == pytest.approx(5.0)
    assert ratio_half_width(a, b) == pytest.approx(2.0 * math.hypot(0.03, 0.08))
    single = estimate([1.0])
    assert difference_half_width(a, single) is None
    assert ratio_half_width(single, b) is None
