"""`ppd fleet` against real GPUs: the committed 2x H100 result sets (vLLM 0.25.1, Llama-3.1-8B, 1P1D,
results/h100x2-vllm0.25.1-nixl/) re-run in virtual time with the same bench configuration (workload,
QPS, duration, seed, modes, drain), figure for figure as benchmarks/sim_vs_real.py compares the
real-time sim: TTFT of turn 1 and of turns 2+, TPOT of all turns, p50 and p99.

The engines are the h100-llama3.1-8b profile with the dummy-weight special-token rate (0.002) and
max_model_len 32768, as the GPU sweep and its sim comparison ran. HTTP hops: the proxy's own
(client <-> proxy and its per-token parsing, from src/ppd/fleet/hops.json); the engine hops of this
machine's `ppd sim` are left out, the profile's API time being vLLM's own.

Also: whether the fleet picks the GPU's best mode (lowest p50) at each (workload, QPS, figure).
Ends with

    fleet_vs_real points=N ttft_p50_median_rel_err=E within_goal=K/N same_winner=A/B

(points: compared figures; goal as sim_vs_real: p50 within 10%, p99 within 20%).

    python benchmarks/fleet_vs_real.py [--real results/h100x2-vllm0.25.1-nixl] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from _sims import SRC
from sim_vs_real import Comparison, compare, result_files, summary_values, table

sys.path.insert(0, str(SRC))

from ppd.bench.workloads import builtin_workload
from ppd.fleet import EngineOptions, FleetConfig, HopCosts, fleet_topology, measured_hops, simulate
from ppd.fleet.run import write_result_set

ENGINE = EngineOptions(special_token_rate=0.002, max_model_len=32768)


def proxy_hops() -> HopCosts:
    """The measured hops of the proxy alone (see the module docstring)."""
    measured = measured_hops()
    return replace(
        HopCosts(),
        client_to_proxy_ms=measured.client_to_proxy_ms,
        proxy_to_client_ms=measured.proxy_to_client_ms,
        proxy_us_per_prompt_token=measured.proxy_us_per_prompt_token,
        source=f"proxy hops of: {measured.source}",
    )


def fleet_twin(real_json: Path, out: Path) -> Path:
    """The real result set's points through ppd fleet; the fleet result set."""
    config = json.loads(real_json.read_text())["config"]
    spec = config["workloads"][0]
    workload = builtin_workload(spec["name"], len(spec["turns"]))
    runs = [
        simulate(
            FleetConfig(
                fleet_topology("1p1d"),
                mode,
                workload,
                qps=qps,
                duration_s=config["duration_s"],
                seed=config["seed"],
                think_time_s=config["think_time_s"],
                warmup_s=config["warmup_s"],
                drain_timeout_s=config["drain_timeout_s"],
                engine=ENGINE,
                hops=proxy_hops(),
            )
        )
        for qps in config["qps"]
        for mode in config["modes"]
    ]
    return write_result_set(runs, out, f"fleet-{real_json.stem}")


def same_winner(comparisons: list[Comparison]) -> tuple[int, int]:
    """At each (workload, QPS, figure) p50: does the fleet's lowest mode match the GPU's?"""
    by_key: dict[tuple[str, float, str], list[Comparison]] = defaultdict(list)
    for c in comparisons:
        if c.percentile == "p50":
            by_key[(c.point[0], c.point[1], c.figure)].append(c)
    agree = total = 0
    for cells in by_key.values():
        if len(cells) < 2:
            continue
        total += 1
        real_best = min(cells, key=lambda c: c.real_ms).point[2]
        fleet_best = min(cells, key=lambda c: c.sim_ms).point[2]
        agree += real_best == fleet_best
    return agree, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--real", type=Path, default=Path("results/h100x2-vllm0.25.1-nixl"))
    parser.add_argument("--out", type=Path, default=None, help="keep the fleet result sets here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fleet-vs-real-"))
    real_files = result_files(args.real)
    fleet_files = [fleet_twin(path, out) for path in real_files]
    comparisons = compare(summary_values(real_files), summary_values(fleet_files))
    print(f"real: {', '.join(p.name for p in real_files)}; fleet result sets in {out}")
    print("TTFT turn 1 and turns 2+, TPOT over all turns; err = (fleet - real) / real")
    print(table(comparisons).replace("real / sim", "real / fleet"))
    ttft_p50 = [abs(c.rel_err) for c in comparisons if c.percentile == "p50" and c.figure.startswith("ttft")]
    within = [c for c in comparisons if abs(c.rel_err) <= (0.10 if c.percentile == "p50" else 0.20)]
    agree, total = same_winner(comparisons)
    for percentile in ("p50", "p99"):
        errors = [abs(c.rel_err) for c in comparisons if c.percentile == percentile]
        median, worst = statistics.median(errors), max(errors)
        print(f"{percentile}: median |err| {median:.3f}, max {worst:.3f} over {len(errors)} figures")
    print(
        f"fleet_vs_real points={len(comparisons)} ttft_p50_median_rel_err={statistics.median(ttft_p50):.4f} "
        f"within_goal={len(within)}/{len(comparisons)} same_winner={agree}/{total}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
