"""TTFT figures a light point's turn phase does not flip, beside fleet_vs_sim's p50 verdicts.

At a light short-prompt point a later turn either joins the engine's next step or waits one step
more, decided by sub-millisecond phase (docs/fleet.md, Agreement): its TTFT has two modes ~7 ms
apart, and the median of the 9-31 such turns a point has flips between them. So beside the p50
verdict (the issue's acceptance figure, unchanged) fleet_vs_sim prints, per TTFT figure, the
conversation bootstrap's 95% intervals of the HTTP side's p50 and mean (ppd.report.resampled, as
`ppd report` computes them) and whether the fleet's p50 and mean lie inside them. A fleet p50 outside
the 5% goal but inside the HTTP p50's interval is one this measurement cannot tell from the HTTP's.
The same for a second HTTP run in the fleet's place (--against) says how often a repeat of the
measurement lands inside them. Ends with

    http_repeat_intervals ttft_figures=N p50_in_http_ci=K mean_in_http_ci=M mean_within_5pct=J
    fleet_intervals ttft_figures=N p50_in_http_ci=K mean_in_http_ci=M mean_within_5pct=J
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from _sims import SRC

sys.path.insert(0, str(SRC))

from ppd.report.bootstrap import BootstrapConfig
from ppd.report.inputs import read_result_file
from ppd.report.merge import normalize_qps
from ppd.report.resampled import row_estimates
from ppd.report.stats import Estimate

GROUPS = {"1": "ttft_t1", "2+": "ttft_t2+"}


@dataclass(frozen=True)
class IntervalCheck:
    """One TTFT figure of one point: the HTTP side's p50 and mean with their 95% intervals, and the
    fleet's p50 and mean (ms)."""

    topology: str
    point: tuple[str, float, str]  # workload, qps, mode
    figure: str
    http_p50: Estimate
    http_mean: Estimate
    fleet_p50: float
    fleet_mean: float

    @property
    def p50_err(self) -> float:
        return (self.fleet_p50 - self.http_p50.mean) / self.http_p50.mean

    @property
    def mean_err(self) -> float:
        return (self.fleet_mean - self.http_mean.mean) / self.http_mean.mean

    @property
    def p50_in_ci(self) -> bool:
        return _inside(self.fleet_p50, self.http_p50)

    @property
    def mean_in_ci(self) -> bool:
        return _inside(self.fleet_mean, self.http_mean)


def _inside(value: float, estimate: Estimate) -> bool:
    if estimate.ci_low is None or estimate.ci_high is None:
        return False
    return estimate.ci_low <= value <= estimate.ci_high


def interval_checks(
    out: Path, topologies: list[str], workloads: list[str], other: Path | None = None
) -> list[IntervalCheck]:
    """Every TTFT figure (turn 1, turns 2+) whose both sides have a p50 and a mean: out's HTTP side
    against out's fleet, or against another HTTP run (`other`, an earlier --out) in the fleet's place."""
    checks = []
    for topology in topologies:
        for workload in workloads:
            name = f"{topology}-{workload}.json"
            http_path = out / f"http-{name}"
            fleet_path = other / f"http-{name}" if other is not None else out / f"fleet-{name}"
            if not (_has_rows(http_path) and _has_rows(fleet_path)):
                continue  # a result set kept without its rows (an older committed run)
            http, fleet = _estimates(http_path), _estimates(fleet_path)
            for key, (_, groups) in sorted(http.items()):
                if key in fleet:
                    checks += _point_checks(topology, key, groups, fleet[key][1])
    return checks


Groups = dict[str, dict[str, Estimate | None]]  # turn group -> metric -> estimate


def _has_rows(path: Path) -> bool:
    return path.exists() and (path.parent / read_result_file(path).meta.get("rows_file", "")).is_file()


def _estimates(path: Path) -> dict[tuple[str, str, float], tuple[set[str], Groups]]:
    return row_estimates([read_result_file(path)], BootstrapConfig(), normalize_qps)


def _point_checks(
    topology: str, key: tuple[str, str, float], http: Groups, fleet: Groups
) -> list[IntervalCheck]:
    workload, mode, qps = key
    found = []
    for group, figure in GROUPS.items():
        http_p50, http_mean = http[group]["ttft_ms.p50"], http[group]["ttft_ms.mean"]
        fleet_p50, fleet_mean = fleet[group]["ttft_ms.p50"], fleet[group]["ttft_ms.mean"]
        if http_p50 is None or http_mean is None or fleet_p50 is None or fleet_mean is None:
            continue
        found.append(
            IntervalCheck(
                topology, (workload, qps, mode), figure, http_p50, http_mean, fleet_p50.mean, fleet_mean.mean
            )
        )
    return found


def interval_table(checks: list[IntervalCheck]) -> str:
    """The TTFT p50 figures outside the 5% goal: the HTTP's p50 and mean intervals and the fleet's."""
    lines = [
        "== TTFT p50 figures outside the goal, against the HTTP side's 95% bootstrap intervals"
        " (conversations resampled)",
        f"{'topo':<5} {'wl':<3} {'qps':>5} {'mode':<12} {'figure':<9} {'http p50 [95% CI]':>24} {'fleet':>7} "
        f"{'in':>3}  {'http mean [95% CI]':>24} {'fleet':>7} {'err':>7} {'in':>3}",
    ]
    for c in checks:
        if abs(c.p50_err) <= 0.05:
            continue
        workload, qps, mode = c.point
        lines.append(
            f"{c.topology:<5} {workload:<3} {qps:>5g} {mode:<12} {c.figure:<9} {_with_ci(c.http_p50):>24} "
            f"{c.fleet_p50:7.1f} {_yes(c.p50_in_ci):>3}  {_with_ci(c.http_mean):>24} {c.fleet_mean:7.1f} "
            f"{c.mean_err:+7.1%} {_yes(c.mean_in_ci):>3}"
        )
    return "\n".join(lines)


def _with_ci(estimate: Estimate) -> str:
    if estimate.ci_low is None or estimate.ci_high is None:
        return f"{estimate.mean:.1f} [-]"
    return f"{estimate.mean:.1f} [{estimate.ci_low:.1f}, {estimate.ci_high:.1f}]"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def interval_line(checks: list[IntervalCheck], label: str = "fleet_intervals") -> str:
    """Over every TTFT figure: the fleet's p50 and mean inside the HTTP's intervals; mean within 5%."""
    return (
        f"{label} ttft_figures={len(checks)} p50_in_http_ci={sum(c.p50_in_ci for c in checks)} "
        f"mean_in_http_ci={sum(c.mean_in_ci for c in checks)} "
        f"mean_within_5pct={sum(abs(c.mean_err) <= 0.05 for c in checks)}"
    )
