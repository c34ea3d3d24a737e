"""How modes, QPS values and estimates are written for people (plots and summary.md alike)."""

from __future__ import annotations

import math

from ppd.report.crossover import Crossing
from ppd.report.stats import Estimate

_MODE_LABELS = {"pd": "PD", "ppd": "PPD", "replication": "Replication", "auto": "Auto", "": "(no mode)"}


def mode_label(mode: str) -> str:
    """PD, PPD, Replication, Auto; other modes as written."""
    return _MODE_LABELS.get(mode, mode)


def qps_label(qps: float) -> str:
    """A QPS value without float noise: 0.5, 2, 16."""
    return f"{qps:g}"


def decimals_for(value: float) -> int:
    """Decimals that show about three significant digits of value (0 from 100 up)."""
    magnitude = abs(value)
    if magnitude >= 100 or magnitude == 0:
        return 0
    return min(6, 2 - math.floor(math.log10(magnitude)))


def number(value: float, decimals: int | None = None) -> str:
    """A value with about three significant digits (or the decimals given), never an exponent."""
    return f"{value:.{decimals_for(value) if decimals is None else decimals}f}"


def estimate_label(estimate: Estimate | None) -> str:
    """The estimate as "value (low–high)" with its 95% interval, "value (no CI)", or "—" with no value."""
    if estimate is None:
        return "—"
    decimals = decimals_for(estimate.mean)
    if estimate.ci_low is None or estimate.ci_high is None:
        return f"{number(estimate.mean, decimals)} (no CI)"
    return (
        f"{number(estimate.mean, decimals)} ({interval_label(estimate.ci_low, estimate.ci_high, decimals)})"
    )


def interval_label(low: float, high: float, decimals: int | None = None) -> str:
    """ "low–high" with the same decimals at both ends; "low to high" when an end is negative."""
    if decimals is None:
        decimals = decimals_for(max(abs(low), abs(high)))
    separator = " to " if low < 0 or high < 0 else "–"
    return f"{number(low, decimals)}{separator}{number(high, decimals)}"


def percent(value: float) -> str:
    """A percentage with one decimal: 70.6%."""
    return f"{value:.1f}%"


def crossing_label(crossing: Crossing) -> str:
    """'W→V at 3.2 (95%: 2.1–4.8; between 2 and 8)': the interpolated QPS, its interval (≤ / ≥ where
    it reaches the measured range's end) and the measured points it lies between."""
    text = (
        f"{mode_label(crossing.winner_below)}→{mode_label(crossing.winner_above)} at {number(crossing.qps)}"
    )
    between = f"between {qps_label(crossing.bracket_qps[0])} and {qps_label(crossing.bracket_qps[1])}"
    if crossing.qps_low is None or crossing.qps_high is None:
        return f"{text} (no interval; {between})"
    low = ("≤" if crossing.low_open else "") + number(crossing.qps_low)
    high = ("≥" if crossing.high_open else "") + number(crossing.qps_high)
    return f"{text} (95%: {low}–{high}; {between})"
