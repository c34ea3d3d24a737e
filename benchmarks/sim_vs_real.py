"""How far the sim is from real GPUs: per workload x QPS x mode, the sim's TTFT (turn 1, turns 2+)
and TPOT (all turns) at p50 and p99 against the same bench configuration on real vLLM.

    .venv/bin/python benchmarks/sim_vs_real.py \
        --real results/h100x2-vllm0.25.1-nixl --sim results/h100x2-vllm0.25.1-nixl/sim-comparison

Both sides are `ppd bench` result JSONs (their per-run summaries; one run per point in the committed
sets, several runs are averaged). Relative error = (sim - real) / real. P99 only where both sides
had >= 100 samples (the bench writes null otherwise). Ends with
`sim_vs_real ttft_p50_max_rel_err=<f> tpot_p50_max_rel_err=<f> ttft_p99_max_rel_err=<f>
tpot_p99_max_rel_err=<f> ...`. Goals: <= 0.10 at p50, <= 0.20 at p99.

With `--real-again PATH` (repeatable: other real runs of some of the same points, e.g. a later
session's repeats), the figures measured more than once are also held to the real engine's own
run-to-run spread, and a last line follows:
`sim_vs_real_spread figures=N real_runs_agree=A/N sim_within_goal_of_a_run=K/N sim_in_envelope=E/N`:
of the N figures with >= 2 real runs, A whose runs are within the goal of each other (max / min - 1),
K where the sim is within the goal of at least one run, and E where it lies inside the runs' envelope
widened by the goal, [min x (1 - goal), max x (1 + goal)]. The main comparison stays on --real.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (label, turn group, metric) of every compared figure
FIGURES = (
    ("ttft_t1", "1", "ttft_ms"),
    ("ttft_t2+", "2+", "ttft_ms"),
    ("tpot", "all", "tpot_ms"),
)
PERCENTILES = ("p50", "p99")
Point = tuple[str, float, str]  # workload, qps, mode
MODE_ORDER = {"pd": 0, "ppd": 1, "replication": 2}


@dataclass(frozen=True)
class Comparison:
    point: Point
    figure: str
    percentile: str
    real_ms: float
    sim_ms: float

    @property
    def rel_err(self) -> float:
        return (self.sim_ms - self.real_ms) / self.real_ms


def result_files(path: Path) -> list[Path]:
    """Result JSONs (schema ppd.result/*) in a directory (not recursive), or the file itself."""
    candidates = sorted(path.glob("*.json")) if path.is_dir() else [path]
    return [
        p for p in candidates if str(json.loads(p.read_text()).get("schema", "")).startswith("ppd.result/")
    ]


Key = tuple[Point, str, str, str]  # point, turn group, metric, percentile
RunValues = dict[Key, list[float]]


def run_values(paths: list[Path], mode_map: dict[str, str] | None = None) -> RunValues:
    """Every run's value of each (point, turn group, metric, percentile), one entry per run of each
    file. A figure that any run has null is left out whole, in both tables: its value is unknown (a p99
    with < 100 samples in one run makes the point's p99 unknown, as in ppd report), and the other runs
    alone would make it a different figure, measured fewer times.
    mode_map renames modes (a one-replica fleet's "replication" is a run straight at the engine, "")."""
    runs: dict[Key, list[float | None]] = defaultdict(list)
    for path in paths:
        for summary in json.loads(path.read_text())["summaries"]:
            mode = (mode_map or {}).get(summary["mode"], summary["mode"])
            point = (summary["workload"], float(summary["qps"]), mode)
            for _, group, metric in FIGURES:
                if summary["turn_group"] != group:
                    continue
                for percentile in PERCENTILES:
                    runs[(point, group, metric, percentile)].append(summary[metric][percentile])
    return {key: [v for v in values if v is not None] for key, values in runs.items()
            if values and None not in values}  # fmt: skip


def summary_values(paths: list[Path], mode_map: dict[str, str] | None = None) -> dict[Key, float]:
    """Mean over runs of each (point, turn group, metric, percentile) that run_values keeps."""
    return {key: statistics.fmean(values) for key, values in run_values(paths, mode_map).items()}


def goal_of(percentile: str) -> float:
    return 0.10 if percentile == "p50" else 0.20


@dataclass(frozen=True)
class Spread:
    """One figure measured on the real engine more than once, beside the sim's value."""

    point: Point
    figure: str
    percentile: str
    real_ms: tuple[float, ...]
    sim_ms: float

    @property
    def runs_agree(self) -> bool:
        return max(self.real_ms) / min(self.real_ms) - 1.0 <= goal_of(self.percentile)

    @property
    def sim_within_goal_of_a_run(self) -> bool:
        return any(abs(self.sim_ms - r) / r <= goal_of(self.percentile) for r in self.real_ms)

    @property
    def sim_in_envelope(self) -> bool:
        goal = goal_of(self.percentile)
        return min(self.real_ms) * (1 - goal) <= self.sim_ms <= max(self.real_ms) * (1 + goal)


def spreads(real: RunValues, sim: dict[Key, float]) -> list[Spread]:
    """The figures with >= 2 real runs and a sim value, in table order."""
    found = []
    for (point, group, metric, percentile), values in real.items():
        sim_ms = sim.get((point, group, metric, percentile))
        if sim_ms is None or len(values) < 2 or min(values) <= 0:
            continue
        label = next(name for name, g, m in FIGURES if (g, m) == (group, metric))
        found.append(Spread(point, label, percentile, tuple(values), sim_ms))
    figure_order = [name for name, _, _ in FIGURES]
    return sorted(
        found,
        key=lambda x: (*x.point, figure_order.index(x.figure), x.percentile),
    )


def spread_table(found: list[Spread]) -> str:
    lines = [f"{'workload':<8} {'qps':>5} {'mode':<11} {'figure':<12} {'real runs ms':<36} {'sim ms':>8}  "
             "runs agree / sim near a run / sim in envelope"]  # fmt: skip
    for x in found:
        runs = ", ".join(f"{r:.1f}" for r in x.real_ms)
        flags = " / ".join("yes" if f else "no" for f in
                           (x.runs_agree, x.sim_within_goal_of_a_run, x.sim_in_envelope))  # fmt: skip
        lines.append(f"{x.point[0]:<8} {x.point[1]:>5g} {x.point[2]:<11} {x.figure + ' ' + x.percentile:<12} "
                     f"{runs:<36} {x.sim_ms:>8.1f}  {flags}")  # fmt: skip
    return "\n".join(lines)


def spread_line(found: list[Spread]) -> str:
    n = len(found)
    return (
        f"sim_vs_real_spread figures={n} real_runs_agree={sum(x.runs_agree for x in found)}/{n} "
        f"sim_within_goal_of_a_run={sum(x.sim_within_goal_of_a_run for x in found)}/{n} "
        f"sim_in_envelope={sum(x.sim_in_envelope for x in found)}/{n}"
    )


def compare(real: dict[Key, float],
            sim: dict[Key, float]) -> list[Comparison]:  # fmt: skip
    found = []
    for (point, group, metric, percentile), real_ms in real.items():
        sim_ms = sim.get((point, group, metric, percentile))
        if sim_ms is None or real_ms <= 0:
            continue
        label = next(name for name, g, m in FIGURES if (g, m) == (group, metric))
        found.append(Comparison(point, label, percentile, real_ms, sim_ms))
    figure_order = [name for name, _, _ in FIGURES]

    def order(c: Comparison) -> tuple[Any, ...]:
        workload, qps, mode = c.point
        return workload, qps, MODE_ORDER.get(mode, 9), mode, figure_order.index(c.figure), c.percentile

    return sorted(found, key=order)


def table(comparisons: list[Comparison]) -> str:
    """One line per workload x QPS x mode: real / sim / relative error of every figure."""
    columns = [(figure, percentile) for figure, _, _ in FIGURES for percentile in PERCENTILES]
    header = f"{'workload':<8} {'qps':>5} {'mode':<11} " + " ".join(
        f"{figure + ' ' + percentile:>24}" for figure, percentile in columns
    )
    lines = [
        header,
        f"{'':<26} " + " ".join(f"{'real / sim ms (err)':>24}" for _ in columns),
        "-" * len(header),
    ]
    by_point: dict[Point, dict[tuple[str, str], Comparison]] = defaultdict(dict)
    for c in comparisons:
        by_point[c.point][(c.figure, c.percentile)] = c
    for point, cells in by_point.items():
        texts = []
        for column in columns:
            c = cells.get(column)
            texts.append(
                f"{'-':>24}" if c is None else f"{c.real_ms:7.1f} /{c.sim_ms:7.1f} ({c.rel_err:+6.1%})"
            )
        lines.append(f"{point[0]:<8} {point[1]:>5g} {point[2]:<11} " + " ".join(texts))
    return "\n".join(lines)


def markdown_table(comparisons: list[Comparison]) -> str:
    """The same figures as a Markdown table (err only at p99, to keep it narrow)."""
    columns = [(figure, percentile) for percentile in PERCENTILES for figure, _, _ in FIGURES]
    names = {"ttft_t1": "TTFT t1", "ttft_t2+": "TTFT t2+", "tpot": "TPOT"}
    lines = [
        "| workload | QPS | mode | " + " | ".join(f"{names[f]} {p}" for f, p in columns) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    by_point: dict[Point, dict[tuple[str, str], Comparison]] = defaultdict(dict)
    for c in comparisons:
        by_point[c.point][(c.figure, c.percentile)] = c
    for (workload, qps, mode), cells in by_point.items():
        texts = []
        for column in columns:
            c = cells.get(column)
            texts.append("–" if c is None else f"{c.real_ms:.1f} / {c.sim_ms:.1f} ({c.rel_err:+.0%})")
        lines.append(f"| {workload} | {qps:g} | {mode} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def summary_line(comparisons: list[Comparison]) -> str:
    """Max and median |relative error| of TTFT (turn 1 and 2+ together) and TPOT at each percentile."""
    parts = []
    for percentile in PERCENTILES:
        for name, figures in (("ttft", ("ttft_t1", "ttft_t2+")), ("tpot", ("tpot",))):
            errors = [
                abs(c.rel_err) for c in comparisons if c.percentile == percentile and c.figure in figures
            ]
            worst = max(errors) if errors else float("nan")
            median = statistics.median(errors) if errors else float("nan")
            parts.append(f"{name}_{percentile}_max_rel_err={worst:.4f}")
            parts.append(f"{name}_{percentile}_median_rel_err={median:.4f}")
    within = [c for c in comparisons if abs(c.rel_err) <= (0.10 if c.percentile == "p50" else 0.20)]
    return f"sim_vs_real {' '.join(parts)} within_goal={len(within)}/{len(comparisons)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--real", type=Path, default=Path("results/h100x2-vllm0.25.1-nixl"))
    parser.add_argument("--sim", type=Path, default=Path("results/h100x2-vllm0.25.1-nixl/sim-comparison"))
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--mode-map",
        action="append",
        default=[],
        metavar="SIM=REAL",
        help="compare the sim's mode SIM with the real mode REAL (repeat; REAL may be empty: straight "
        "at the engine), e.g. --mode-map replication= for a one-replica fleet",
    )
    parser.add_argument(
        "--real-again",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="more real runs (a result JSON or a directory of them) of some of --real's points: adds the "
        "run-to-run spread table and its line (repeat)",
    )
    args = parser.parse_args(argv)
    mode_map = dict(item.partition("=")[::2] for item in args.mode_map)
    real_files, sim_files = result_files(args.real), result_files(args.sim)
    if not real_files or not sim_files:
        print(f"no result files in {args.real if not real_files else args.sim}", file=sys.stderr)
        return 2
    named = list(dict.fromkeys(f for path in args.real_again for f in result_files(path)))
    if args.real_again and not named:
        print(f"no result files in {', '.join(map(str, args.real_again))}", file=sys.stderr)
        return 2
    # a file named twice, or also under --real, would count as another run that agrees with itself
    again_files = [f for f in named if f.resolve() not in {r.resolve() for r in real_files}]
    if named and not again_files:
        print("--real-again names only --real's own result files: no other runs", file=sys.stderr)
        return 2
    comparisons = compare(summary_values(real_files), summary_values(sim_files, mode_map))
    print(f"real: {', '.join(p.name for p in real_files)}")
    print(f"sim:  {', '.join(p.name for p in sim_files)}")
    print("TTFT turn 1 and turns 2+, TPOT over all turns; err = (sim - real) / real; "
          "p99 only where both sides had >= 100 samples")  # fmt: skip
    print(markdown_table(comparisons) if args.markdown else table(comparisons))
    for percentile, goal in (("p50", 0.10), ("p99", 0.20)):
        off = [c for c in comparisons if c.percentile == percentile and abs(c.rel_err) > goal]
        print(f"{percentile}: {len(off)} of {sum(c.percentile == percentile for c in comparisons)} figures "
              f"off by more than {goal:.0%}")  # fmt: skip
    print(summary_line(comparisons))
    if again_files:
        found = spreads(run_values(real_files + again_files), summary_values(sim_files, mode_map))
        print(f"\nreal again: {', '.join(str(p) for p in again_files)}")
        print("figures measured on the real engine more than once (first runs first), the sim beside them")
        print(spread_table(found))
        print(spread_line(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
