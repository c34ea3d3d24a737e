"""Why 8r replication on W1 at 181 conversations/s met the SLOs on only 92.7% of turns (the fourth
session's plan): the plan's own evaluation of that point (FleetEvaluator.fleet_config: 200
conversations -> the 5 s minimum window, 10% warm-up, 20 s drain, SLOs TTFT 500 / TPOT 25 ms), its
misses by kind and by the second their turn was sent, and TTFT / TPOT percentiles per turn.

    python results/plan-8gpu/why_927.py QPS [zero|measured]   # the proxy's loop off (session 4) or on
"""

import sys
from collections import Counter

from ppd.bench.metrics import Slo
from ppd.bench.workloads import builtin_workload
from ppd.fleet import ProxyCpu, measured_proxy_cpu, simulate
from ppd.plan.deployments import enumerate_deployments
from ppd.plan.evaluate import FleetEvaluator
from ppd.results import TurnRow


def miss_kind(row: TurnRow, slo: Slo) -> str | None:
    """Which SLO a turn missed (None: it met both)."""
    if not row.ok or row.ttft_ms is None:
        return "failed"
    late, slow = row.ttft_ms > (slo.ttft_ms or 0), (row.tpot_ms or 0.0) > (slo.tpot_ms or 0)
    return "ttft+tpot" if late and slow else "ttft" if late else "tpot" if slow else None


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def spread(values: list[float]) -> list[float]:
    """p50, p90, p99 and the maximum."""
    return [quantile(values, 0.5), quantile(values, 0.9), quantile(values, 0.99), max(values)]


def main() -> None:
    qps = float(sys.argv[1])
    proxy_cpu = ProxyCpu() if len(sys.argv) < 3 or sys.argv[2] == "zero" else measured_proxy_cpu()
    evaluator = FleetEvaluator(workload=builtin_workload("W1", 2), slo=Slo(500, 25), proxy_cpu=proxy_cpu)
    deployment = next(d for d in enumerate_deployments(8, ("replication",)) if d.topology == "8r")
    config = evaluator.fleet_config(deployment, qps)
    run = simulate(config)
    rows = [row for row in run.rows if row.sent and row.scheduled_s >= config.warmup_s]
    kinds = Counter(miss_kind(row, config.slo) for row in rows)
    print(
        f"qps={qps} proxy_loop={'off' if proxy_cpu.is_zero else 'on'} window_s={config.duration_s:g} "
        f"turns={len(rows)} attainment={kinds[None] / len(rows):.3f} misses={dict(kinds)} proxy={run.proxy}"
    )
    for turn in (1, 2):
        done = [row for row in rows if row.turn == turn and row.ok]
        ttft = [row.ttft_ms for row in done if row.ttft_ms is not None]
        tpot = [row.tpot_ms for row in done if row.tpot_ms is not None]
        ttft_text = "/".join(f"{value:.0f}" for value in spread(ttft))
        tpot_text = "/".join(f"{value:.1f}" for value in spread(tpot))
        print(f"  turn {turn}: n={len(done)} ttft p50/p90/p99/max {ttft_text} ms, tpot {tpot_text} ms")
    missed = Counter(int(row.scheduled_s) for row in rows if miss_kind(row, config.slo))
    sent = Counter(int(row.scheduled_s) for row in rows)
    print(
        "  missed/sent by the second the turn was sent:", {s: f"{missed[s]}/{sent[s]}" for s in sorted(sent)}
    )


if __name__ == "__main__":
    main()
