"""The figures results/azure-sim/README.md quotes, from the result sets beside this script.

    python results/azure-sim/analyze.py results/azure-sim/fleet-*.json

Per result set and rate, for each mode: the prefix-cache hit rate of all turns (cached over prompt
tokens where prefilled: P's own on P -> D turns), TTFT p50 / p99, TPOT p50, E2E mean, goodput (SLOs
TTFT 2 s, TPOT 100 ms), and the routes taken (auto: which route it chose).
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter
from pathlib import Path

from ppd.bench.metrics import cache_hit_rate, distribution
from ppd.results import load_result


def fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def main(paths: list[str]) -> int:
    for path in paths:
        meta, rows = load_result(Path(path))
        print(f"\n### {Path(path).stem}\n")
        print(
            "| rate req/s | mode | cache hit | TTFT p50 / p99 ms | TPOT p50 ms | E2E mean ms "
            "| goodput req/s | ok / sent | routes |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for qps in sorted({row.qps for row in rows}):
            for mode in ("pd", "ppd", "replication", "auto"):
                at = [r for r in rows if r.qps == qps and r.mode == mode and not r.in_warmup]
                if not at:
                    continue
                ok = [r for r in at if r.ok]
                ttft = distribution(r.ttft_ms for r in ok if r.ttft_ms is not None)
                tpot = distribution(r.tpot_ms for r in ok if r.tpot_ms is not None)
                e2e = statistics.fmean(r.e2e_ms for r in ok if r.e2e_ms is not None)
                hit = cache_hit_rate(ok)
                summary = next(
                    s
                    for s in meta["summaries"]
                    if (s["mode"], s["qps"], s["turn_group"]) == (mode, qps, "all")
                )
                routes = ", ".join(f"{k} {n}" for k, n in Counter(r.route for r in ok).most_common())
                print(
                    f"| {qps:g} | {mode} | {fmt(hit and hit * 100, 2)}% "
                    f"| {fmt(ttft['p50'])} / {fmt(ttft['p99'])} "
                    f"| {fmt(tpot['p50'], 1)} | {fmt(e2e)} | {fmt(summary.get('goodput_rps'), 2)} "
                    f"| {len(ok)} / {sum(r.sent for r in at)} | {routes} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
