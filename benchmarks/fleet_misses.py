"""Which of the fleet's figures outside the agreement goal are the model's? Per figure, the fleet's
relative error against each of several HTTP runs of the same grid (each a `fleet_vs_sim.py --out
DIR --fleet-only` folder: its http-* result sets and the fleet-* ones made against them), side by
side, with the HTTP runs' own spread of that figure.

A miss that one run has and the others do not is the reference's noise (the HTTP side repeats
itself only at 192-205 of 212 figures on the H200 host); a miss with the same sign in most runs,
where the HTTP runs agree among themselves, is the model's. Prints every figure outside the goal
in at least one run, then one line per run and the line

    fleet_misses runs=R figures=N within_goal=K1,K2,.. consistent=C consistent_figures=...

where a figure is consistent when it is outside the goal in at least half the runs and its error has
one sign in all but at most one of them.

    python benchmarks/fleet_misses.py NAME=DIR [NAME=DIR ...] [--topologies 1p1d,2p2d]
        [--workloads W1,W2,W3,W4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from fleet_vs_sim import GOALS
from sim_vs_real import Comparison, compare, summary_values

FigureKey = tuple[str, str, float, str, str, str]  # topology, workload, qps, mode, figure, percentile


@dataclass(frozen=True)
class Figure:
    """One figure of the grid across the HTTP runs: the HTTP value and the fleet's error in each."""

    key: FigureKey
    http_ms: tuple[float | None, ...]
    errors: tuple[float | None, ...]

    @property
    def goal(self) -> float:
        return GOALS[self.key[5]]

    def outside(self) -> list[bool]:
        return [e is not None and abs(e) > self.goal for e in self.errors]

    @property
    def http_spread(self) -> float:
        """max / min - 1 over the HTTP runs' values of the figure."""
        values = [v for v in self.http_ms if v is not None]
        return max(values) / min(values) - 1.0 if values else float("nan")

    @property
    def consistent(self) -> bool:
        """Outside the goal in at least half the runs, one sign in all runs but at most one."""
        errors = [e for e in self.errors if e is not None]
        if not errors or 2 * sum(self.outside()) < len(errors):
            return False
        high, low = sum(e > 0 for e in errors), sum(e < 0 for e in errors)
        return max(high, low) >= len(errors) - 1


def run_comparisons(folder: Path, topologies: list[str], workloads: list[str]) -> dict[FigureKey, Comparison]:
    """The fleet against the HTTP side in one judged folder, by figure. A workload without both sets
    in the folder (a grid cut short) has no figures there; neither do points without a whole run."""
    found: dict[FigureKey, Comparison] = {}
    for topology in topologies:
        names = [f"{topology}-{w}.json" for w in workloads]
        names = [n for n in names if (folder / f"http-{n}").exists() and (folder / f"fleet-{n}").exists()]
        http, fleet = [folder / f"http-{n}" for n in names], [folder / f"fleet-{n}" for n in names]
        if not names:
            continue
        for c in compare(summary_values(http), summary_values(fleet)):
            found[(topology, *c.point, c.figure, c.percentile)] = c
    return found


def figures(runs: list[dict[FigureKey, Comparison]]) -> list[Figure]:
    """Every figure any run has, in the grid's order."""
    keys = list(dict.fromkeys(key for run in runs for key in run))
    return [
        Figure(
            key,
            tuple(run[key].real_ms if key in run else None for run in runs),
            tuple(run[key].rel_err if key in run else None for run in runs),
        )
        for key in keys
    ]


def miss_table(found: list[Figure], names: list[str]) -> str:
    """The figures outside the goal in any run: per run the fleet's error (* outside), the HTTP
    runs' spread and mean, and whether the miss is consistent."""
    head = f"{'topo':<5} {'wl':<3} {'qps':>5} {'mode':<12} {'figure':<9} {'pct':<4}"
    lines = [
        "== fleet figures outside the goal in any run: the fleet's error per HTTP run (* outside the goal),"
        " the HTTP runs' spread (max/min - 1) and mean",
        head + "".join(f" {name:>9}" for name in names) + f" {'http spr':>8} {'http ms':>8}  verdict",
    ]
    for figure in found:
        outside = figure.outside()
        if not any(outside):
            continue
        topology, workload, qps, mode, name, percentile = figure.key
        cells = "".join(
            f" {'-':>9}" if e is None else f" {e:+8.1%}{'*' if out else ' '}"
            for e, out in zip(figure.errors, outside, strict=True)
        )
        http = statistics.fmean(v for v in figure.http_ms if v is not None)
        verdict = "consistent" if figure.consistent else f"{sum(outside)} of {len(outside)}"
        lines.append(
            f"{topology:<5} {workload:<3} {qps:>5g} {mode:<12} {name:<9} {percentile:<4}{cells} "
            f"{figure.http_spread:8.1%} {http:8.1f}  {verdict}"
        )
    return "\n".join(lines)


def summary_line(found: list[Figure], names: list[str]) -> str:
    within = [sum(not f.outside()[i] and f.errors[i] is not None for f in found) for i in range(len(names))]
    consistent = [f for f in found if f.consistent]
    labels = ";".join(f"{k[0]}-{k[1]}-{k[2]:g}-{k[3]}-{k[4]}-{k[5]}" for k in (f.key for f in consistent))
    return (
        f"fleet_misses runs={len(names)} figures={len(found)} within_goal={','.join(map(str, within))} "
        f"consistent={len(consistent)} consistent_figures={labels}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("runs", nargs="+", help="NAME=DIR: a fleet_vs_sim --out folder judged by the fleet")
    parser.add_argument("--topologies", default="1p1d,2p2d")
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    args = parser.parse_args(argv)
    names, folders = zip(*(spec.split("=", 1) for spec in args.runs), strict=True)
    topologies, workloads = args.topologies.split(","), args.workloads.split(",")
    runs = [run_comparisons(Path(folder), topologies, workloads) for folder in folders]
    found = figures(runs)
    print(miss_table(found, list(names)))
    for i, name in enumerate(names):
        errors = [f.errors[i] for f in found if f.errors[i] is not None]
        outside = sum(f.outside()[i] for f in found)
        print(f"{name}: {len(errors) - outside}/{len(errors)} within the goal ({folders[i]})")
    print(summary_line(found, list(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
