"""Can `ppd bench` keep its schedule? Open-loop load at 100 / 300 / 500 requests/s against a very fast sim.

A saturated client looks like a slow server, so the bench must send each request when it is due. This
script runs single-turn conversations (16 words in, 4 tokens out) against `ppd sim --time-scale 0.001`
in a subprocess and prints, per rate, the achieved/offered conversation rate and the schedule lag
(send time - due time), for the bench as shipped (uvloop) and, side by side as the baseline, the same
bench on the plain asyncio loop. It ends with

    client_fidelity rps=500 achieved_ratio=<f> lag_p99_ms=<f>

for the shipped configuration. Targets: ratio >= 0.99 and lag p99 <= 2 ms at 500 req/s.

    .venv/bin/python benchmarks/client_fidelity.py [--duration-s 10] [--rates 100,300,500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _sims import running_sim
from ppd.bench.config import BenchConfig
from ppd.bench.metrics import distribution
from ppd.bench.runner import run_bench
from ppd.bench.workloads import parse_workloads
from ppd.results import load_result


@dataclass
class Fidelity:
    offered_rate: float
    achieved_rate: float
    lag_p50_ms: float
    lag_p99_ms: float
    success_rate: float
    num_requests: int

    @property
    def achieved_ratio(self) -> float:
        return self.achieved_rate / self.offered_rate


def measure(url: str, rate: float, duration_s: float, use_uvloop: bool, output_dir: Path) -> Fidelity:
    """One run at `rate` conversations (= requests) per s."""
    config = BenchConfig(
        url=url,
        workloads=parse_workloads("16/4", num_turns=1),
        qps=(rate,),
        duration_s=duration_s,
        drain_timeout_s=30.0,
        output_dir=output_dir,
        name=f"fidelity-{rate:g}-{'uvloop' if use_uvloop else 'asyncio'}",
        quiet=True,
        use_uvloop=use_uvloop,
    )
    meta, rows = load_result(run_bench(config))
    run = meta["runs"][0]
    lag = distribution(row.schedule_lag_ms for row in rows if row.schedule_lag_ms is not None)
    num_ok = sum(row.ok for row in rows)
    return Fidelity(
        run["offered_rate"],
        run["achieved_rate"],
        lag["p50"] or 0.0,
        lag["p99"] or 0.0,
        num_ok / len(rows),
        len(rows),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--rates", default="100,300,500")
    parser.add_argument("--time-scale", type=float, default=0.001)
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    results: dict[tuple[float, bool], Fidelity] = {}
    with running_sim("--time-scale", str(args.time_scale)) as url, tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            for use_uvloop in (True, False):
                results[(rate, use_uvloop)] = measure(url, rate, args.duration_s, use_uvloop, Path(tmp))
    print(
        f"sim --time-scale {args.time_scale:g}, {args.duration_s:g} s per run, "
        "single-turn conversations of 16 words in / 4 tokens out"
    )
    print(
        f"{'req/s':>6} {'loop':>8} {'requests':>9} {'ok':>7} {'offered':>9} {'achieved':>9} {'ratio':>7} "
        f"{'lag p50 ms':>11} {'lag p99 ms':>11}"
    )
    for (rate, use_uvloop), fidelity in results.items():
        print(
            f"{rate:>6g} {'uvloop' if use_uvloop else 'asyncio':>8} {fidelity.num_requests:>9} "
            f"{fidelity.success_rate:>7.1%} {fidelity.offered_rate:>9.1f} {fidelity.achieved_rate:>9.1f} "
            f"{fidelity.achieved_ratio:>7.4f} {fidelity.lag_p50_ms:>11.3f} {fidelity.lag_p99_ms:>11.3f}"
        )
    shipped = results[(rates[-1], True)]
    print(
        f"client_fidelity rps={rates[-1]:g} achieved_ratio={shipped.achieved_ratio:.4f} "
        f"lag_p99_ms={shipped.lag_p99_ms:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
