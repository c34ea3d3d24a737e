"""Empirical coverage of the report's nominal 95% paired intervals, by number of runs and drift.

Synthetic paired data with a known difference: two modes on the same conversations (a skewed
per-conversation level both share, per-turn noise, 2–4 turns each), mode b `--difference-ms`
slower on average; each run shifts each mode's level by an independent N(0, drift²) (machine load,
a fresh deployment). For every cell, many data sets are drawn and the share of 95% intervals of the
difference (the report's two-stage bootstrap: runs, then conversations; paired) that contain the
true difference is printed, with the median interval width. No timing involved; not load-sensitive.

    python benchmarks/bootstrap_coverage.py [--sets 300] [--conversations 60] [--resamples 500]

Ends with one line per cell:

    bootstrap_coverage runs=<k> drift_ms=<sd> coverage=<fraction> median_width_ms=<w>
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ppd.report.bootstrap import (
    BootstrapConfig,
    ResamplePlan,
    make_plan,
    per_conversation_sums,
    percentile_interval,
    ratio_of_sums,
)

RUNS = (1, 2, 3, 5)
DRIFTS_MS = (0.0, 1.5, 3.0, 6.0)


def paired_run(
    rng: np.random.Generator, num_conversations: int, difference_ms: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(conversation of each turn, mode a's TTFT, mode b's TTFT) of one run, in ms."""
    turns = rng.integers(2, 5, num_conversations)
    columns = np.repeat(np.arange(num_conversations), turns)
    level = rng.lognormal(np.log(80.0), 0.6, num_conversations)[columns]
    a = level + rng.exponential(20.0, columns.size)
    b = level + difference_ms + rng.exponential(26.0, columns.size) - 6.0  # same mean noise: 20 ms
    return columns, a, b


def mean_replicates(plan: ResamplePlan, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of the mean per turn."""
    total = plan.run_offsets[-1]
    sums = per_conversation_sums(columns, values, total)
    counts = per_conversation_sums(columns, np.ones_like(values), total)
    return ratio_of_sums(plan, sums, counts)


def coverage(num_runs: int, drift_ms: float, args: argparse.Namespace) -> tuple[float, float]:
    """(share of intervals holding the true difference, median width in ms) over args.sets data sets."""
    covered, widths = 0, []
    for data_set in range(args.sets):
        rng = np.random.default_rng(10_000 * num_runs + data_set)
        parts = []
        for run in range(num_runs):
            columns, a, b = paired_run(rng, args.conversations, args.difference_ms)
            shift_a, shift_b = rng.normal(0.0, drift_ms, 2)
            parts.append((columns + run * args.conversations, a + shift_a, b + shift_b))
        columns, a, b = (np.concatenate(x) for x in zip(*parts, strict=True))
        config = BootstrapConfig(num_resamples=args.resamples, seed=data_set)
        plan = make_plan(("coverage", num_runs, data_set), [args.conversations] * num_runs, config)
        interval = percentile_interval(mean_replicates(plan, columns, b) - mean_replicates(plan, columns, a))
        if interval is None:
            raise RuntimeError("undefined interval on synthetic data")
        covered += interval.low <= args.difference_ms <= interval.high
        widths.append(interval.high - interval.low)
    return covered / args.sets, float(np.median(widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=300, help="data sets per cell (default 300)")
    parser.add_argument("--conversations", type=int, default=60, help="conversations per run (default 60)")
    parser.add_argument("--difference-ms", type=float, default=10.0, help="true difference (default 10)")
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples (default 500)")
    args = parser.parse_args()
    print("| runs | drift sd 0 ms | 1.5 ms | 3 ms | 6 ms |")
    print("| --- | --- | --- | --- | --- |")
    lines = []
    for num_runs in RUNS:
        cells = []
        for drift_ms in DRIFTS_MS:
            share, width = coverage(num_runs, drift_ms, args)
            cells.append(f"{share:.0%} (±{width / 2:.1f})")
            lines.append(
                f"bootstrap_coverage runs={num_runs} drift_ms={drift_ms:g} coverage={share:.3f} "
                f"median_width_ms={width:.2f}"
            )
        print(f"| {num_runs} | " + " | ".join(cells) + " |")
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
