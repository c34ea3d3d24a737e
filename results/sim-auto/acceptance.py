"""Issue 8's acceptance check on a `ppd report` merged_results.json: auto vs the best static mode.

    python results/sim-auto/acceptance.py results/sim-auto/report/merged_results.json

For every (workload, QPS) and both metrics (turn-2+ TTFT p50, E2E mean over all turns) it prints the
best of pd / ppd / replication, auto, and auto / best - 1 (negative = auto better), with 95% CIs when
the points have several runs, then the summary line
`auto_acceptance points=<n> within_5pct=<n> better_10pct=<n> worst=<+f%> best=<f%>`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STATIC_MODES = ("pd", "ppd", "replication")
METRICS = (("2+", "ttft_ms.p50", "turn-2+ TTFT p50"), ("all", "e2e_ms.mean", "E2E mean (all turns)"))


def estimates(points: list[dict[str, Any]], group: str, metric: str) -> dict[tuple[str, float, str], Any]:
    """(workload, qps, mode) -> the metric's merged estimate, for one turn group."""
    return {
        (p["workload"], p["qps"], p["mode"]): p["metrics"][metric]
        for p in points
        if p["turn_group"] == group and metric in p["metrics"] and p["metrics"][metric]["mean"] is not None
    }


def rows(points: list[dict[str, Any]]) -> list[tuple[str, float, str, str, Any, Any]]:
    """One row per workload, QPS and metric: (workload, qps, metric label, best mode, best, auto)."""
    out = []
    for group, metric, label in METRICS:
        found = estimates(points, group, metric)
        for workload, qps in sorted({(w, q) for w, q, m in found if m == "auto"}):
            static = [(found[(workload, qps, m)], m) for m in STATIC_MODES if (workload, qps, m) in found]
            if not static:
                continue
            best, best_mode = min(static, key=lambda pair: pair[0]["mean"])
            out.append((workload, qps, label, best_mode, best, found[(workload, qps, "auto")]))
    return out


def main(path: str) -> int:
    points = json.loads(Path(path).read_text())["points"]
    table = rows(points)
    print("| workload | QPS | metric | best static | best static value | auto | auto vs best |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ratios = []
    for workload, qps, label, best_mode, best, auto in sorted(table, key=lambda r: (r[0], r[2], r[1])):
        ratio = auto["mean"] / best["mean"] - 1.0
        ratios.append(ratio)
        cells = (workload, f"{qps:g}", label, best_mode, _value(best), _value(auto), f"{ratio:+.1%}")
        print("| " + " | ".join(cells) + " |")
    within = sum(ratio <= 0.05 for ratio in ratios)
    better = sum(ratio <= -0.10 for ratio in ratios)
    print(
        f"\nauto_acceptance points={len(ratios)} within_5pct={within} better_10pct={better} "
        f"worst={max(ratios):+.1%} best={min(ratios):+.1%}"
    )
    return 0


def _value(estimate: dict[str, Any]) -> str:
    half = estimate.get("ci95_half_width")
    return f"{estimate['mean']:.1f} ± {half:.1f}" if half else f"{estimate['mean']:.1f}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
