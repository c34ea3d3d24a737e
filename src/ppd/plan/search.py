"""The highest conversation rate a deployment sustains within its SLOs: bracketing, then bisection.

A rate *passes* when at least `target_attainment` (0.9) of the turns sent in the measured window
met both SLOs (TTFT and TPOT; `ppd.bench.metrics.meets_slo`), failed turns counting as misses.

    1. bracket   evaluate start_qps; while it passes, double the rate (up to max_qps); while it
                 fails, halve it (down to min_qps). The result is a passing rate lo and a failing
                 rate hi = 2 lo (or a cap: every rate up to max_qps passed, or none down to min_qps).
    2. bisect    evaluate the geometric midpoint of [lo, hi] and keep the half that still brackets
                 the boundary, until hi - lo <= tolerance * lo.

The answer is lo, the highest rate measured to pass: the true boundary lies in [lo, hi), so lo is
at most `tolerance` (relative) below it. A search can stop at a coarse tolerance and be `refine`d
later to a finer one from where it stopped (runner.py refines only the deployments that can still
win). Every evaluation is seeded and deterministic; attainment is measured, not modelled, and near
the boundary it is noisy: where it is not monotonic in the rate, bisection finds one of the
crossings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Point:
    """One evaluated rate: SLO attainment and goodput of the measured window."""

    qps: float  # offered conversation arrival rate, conversations/s
    slo_attainment: float | None  # share of sent turns that met both SLOs (None: none sent)
    goodput_rps: float | None  # turns/s that met both SLOs
    num_turns: int  # turns sent in the measured window
    metrics: dict[str, Any] = field(default_factory=dict)  # p50/p99 TTFT and TPOT etc., for the report
    wall_s: float = 0.0  # how long the evaluation took to compute

    def passes(self, target_attainment: float) -> bool:
        """Whether at least `target_attainment` of its turns met the SLOs (a run stopped early failed:
        its attainment is only an upper bound, evaluate.py)."""
        if self.metrics.get("stopped_early"):
            return False
        return self.slo_attainment is not None and self.slo_attainment >= target_attainment


@dataclass(frozen=True)
class SearchConfig:
    """How to search one deployment's highest passing rate (conversations/s)."""

    start_qps: float
    target_attainment: float = 0.9
    tolerance: float = 0.05  # stop when (hi - lo) <= tolerance * lo
    min_qps: float = 0.05
    max_qps: float = 1000.0

    def __post_init__(self) -> None:
        if not 0.0 < self.target_attainment <= 1.0:
            raise ValueError(f"target attainment must be in (0, 1], got {self.target_attainment}")
        if not 0.0 < self.tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if not 0.0 < self.min_qps <= self.start_qps <= self.max_qps:
            raise ValueError(
                f"need 0 < min_qps <= start_qps <= max_qps, got {self.min_qps}, {self.start_qps}, "
                f"{self.max_qps}"
            )


@dataclass
class SearchResult:
    """The highest rate that passed, the lowest that failed, and every point measured."""

    max_qps: float  # 0.0 when no rate down to min_qps passed
    fail_qps: float | None  # None when every rate up to max_qps passed
    points: list[Point]  # in the order evaluated

    @property
    def at_max(self) -> Point | None:
        """The point measured at max_qps (None when nothing passed)."""
        return next((p for p in self.points if p.qps == self.max_qps), None)

    @property
    def capped(self) -> bool:
        """Every rate tried passed, up to the search's max_qps: the true maximum may be higher."""
        return self.fail_qps is None


def search_max_rate(
    evaluate: Callable[[float], Point],
    config: SearchConfig,
    on_point: Callable[[Point], None] | None = None,
) -> SearchResult:
    """Bracket, then bisect, the highest rate whose SLO attainment meets the target (module docstring)."""
    points: list[Point] = []

    def passes(qps: float) -> bool:
        point = evaluate(qps)
        points.append(point)
        if on_point is not None:
            on_point(point)
        return point.passes(config.target_attainment)

    lo, hi = _bracket(passes, config)
    if lo is None or hi is None:
        return SearchResult(lo or 0.0, hi, points)
    return SearchResult(*_bisect(passes, lo, hi, config.tolerance), points)


def refine(
    evaluate: Callable[[float], Point],
    result: SearchResult,
    tolerance: float,
    target_attainment: float,
    on_point: Callable[[Point], None] | None = None,
) -> SearchResult:
    """Continue a search's bisection until its bracket is narrower than `tolerance` (relative)."""
    if result.fail_qps is None or result.max_qps <= 0.0:
        return result
    points = list(result.points)

    def passes(qps: float) -> bool:
        point = evaluate(qps)
        points.append(point)
        if on_point is not None:
            on_point(point)
        return point.passes(target_attainment)

    return SearchResult(*_bisect(passes, result.max_qps, result.fail_qps, tolerance), points)


def _bisect(passes: Callable[[float], bool], lo: float, hi: float, tolerance: float) -> tuple[float, float]:
    while hi - lo > tolerance * lo:
        mid = math.sqrt(lo * hi)
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _bracket(passes: Callable[[float], bool], config: SearchConfig) -> tuple[float | None, float | None]:
    """(passing rate, failing rate) a factor of 2 apart, or a None where the search hit a bound."""
    qps = config.start_qps
    if passes(qps):
        while True:
            higher = min(2.0 * qps, config.max_qps)
            if higher <= qps:
                return qps, None  # passed at max_qps
            if not passes(higher):
                return qps, higher
            qps = higher
    while True:
        lower = max(qps / 2.0, config.min_qps)
        if lower >= qps:
            return None, qps  # failed even at min_qps
        if passes(lower):
            return lower, qps
        qps = lower
