"""Does `ppd fleet` (virtual time) give what the real-time system gives? The same topology, mode,
workload, QPS and seed through HTTP (`ppd up --backend sim` at time scale 1 + `ppd proxy` +
`ppd bench`) and through `ppd fleet`, compared figure by figure.

Grid: 1p1d and 2p2d; modes pd, ppd, replication, auto; W1-W4 (2 turns) at two loads each (the GPU
sweep's loads for 1p1d, doubled for 2p2d). Compared per point, as benchmarks/sim_vs_real.py
compares sim and GPU: TTFT of turn 1 and of turns 2+, TPOT of all turns, at p50 and at p99 (p99
where both sides had >= 100 samples). Relative error = (fleet - http) / http. Ends with

    fleet_agreement points=N ttft_p50_max_rel_err=E1 tpot_p50_max_rel_err=E2 ttft_p99_max_rel_err=E3

Goals: p50 within 5%, p99 within 10%. The HTTP side runs on this 2-core machine in real time: its
engines' drift (real time behind their modeled clock, from /ppd/stats) is printed per workload, and
a loaded machine shows up there first.

    python benchmarks/fleet_vs_sim.py [--duration-s 8] [--drain-timeout-s 10] [--topologies 1p1d,2p2d]
        [--workloads W1,W2,W3,W4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _sims import SRC
from sim_vs_real import Comparison, compare, summary_values, table

sys.path.insert(0, str(SRC))

from ppd.bench.workloads import builtin_workload
from ppd.fleet import EngineOptions, FleetConfig, fleet_topology, simulate, write_result_set

MODES = ("pd", "ppd", "replication", "auto")
LOADS = {"W1": (2.0, 8.0), "W2": (1.0, 4.0), "W3": (2.0, 8.0), "W4": (0.5, 2.0)}  # 1p1d; x2 for 2p2d
MAX_MODEL_LEN = 32768  # W4's turn 2 is 16.5k tokens


def ppd(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "ppd", *args], capture_output=True, text=True, env=env, check=check
    )


def scale(topology: str) -> float:
    """Loads grow with the instance count: 1p1d x1, 2p2d x2."""
    match = re.match(r"(\d+)p(\d+)d", topology)
    return (int(match.group(1)) if match else 1) * 1.0


def run_http(topology: str, workloads: list[str], args: argparse.Namespace, out: Path) -> list[str]:
    """Start the topology, bench every workload in every mode, stop it; returns drift lines."""
    work = Path(tempfile.mkdtemp(prefix="fleet-vs-sim-"))
    state = work / "state.json"
    up = ppd("up", "--backend", "sim", "--topology", topology, "--time-scale", "1", "--port-base", "0",
             "--proxy-port", "0", f"--sim-arg=--max-model-len={MAX_MODEL_LEN}", "--logs", str(work / "logs"),
             "--state", str(state), "--mode", "pd")  # fmt: skip
    proxy_url = re.search(r"proxy\s+(http://\S+)", up.stdout)
    engines = re.findall(r"(?:prefill|decode)\s+(http://\S+)", up.stdout)
    if proxy_url is None:
        raise RuntimeError(f"ppd up did not start:\n{up.stdout}\n{up.stderr}")
    drift_lines = []
    try:
        for workload in workloads:
            for engine in engines:
                urllib.request.urlopen(
                    urllib.request.Request(engine + "/ppd/stats/reset", method="POST"), timeout=10
                )
            qps = ",".join(f"{rate * scale(topology):g}" for rate in LOADS[workload])
            ppd("bench", "--url", proxy_url.group(1), "--workload", workload, "--qps", qps,
                "--duration", str(args.duration_s), "--modes", ",".join(MODES), "--runs", "1", "--seed", "0",
                "--drain-timeout-s", str(args.drain_timeout_s), "--output", str(out),
                "--name", f"http-{topology}-{workload}", "--quiet")  # fmt: skip
            drifts = []
            for engine in engines:
                with urllib.request.urlopen(engine + "/ppd/stats", timeout=10) as answer:
                    stats = json.loads(answer.read())
                drifts.append(f"max {stats['max_drift_ms']:.1f} / mean {stats['mean_drift_ms']:.2f} ms")
            drift_lines.append(f"{topology} {workload}: engine drift {'; '.join(drifts)}")
    finally:
        ppd("down", "--state", str(state), check=False)
    return drift_lines


def run_fleet(http_json: Path, out: Path) -> Path:
    """The same points through ppd fleet; returns the fleet result set."""
    meta = json.loads(http_json.read_text())
    config, topology = meta["config"], http_json.stem.split("-")[1]
    workload = builtin_workload(config["workloads"][0]["name"], len(config["workloads"][0]["turns"]))
    runs = [
        simulate(
            FleetConfig(
                fleet_topology(topology),
                mode,
                workload,
                qps=qps,
                duration_s=config["duration_s"],
                seed=config["seed"],
                drain_timeout_s=config["drain_timeout_s"],
                engine=EngineOptions(max_model_len=MAX_MODEL_LEN),
            )
        )
        for qps in config["qps"]
        for mode in config["modes"]
    ]
    return write_result_set(runs, out, http_json.stem.replace("http-", "fleet-", 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration-s", type=float, default=8.0, help="arrival window per run (default 8)")
    parser.add_argument("--drain-timeout-s", type=float, default=10.0, help="per run, after it (default 10)")
    parser.add_argument("--topologies", default="1p1d,2p2d")
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--out", type=Path, default=None, help="keep both sides' result sets here")
    parser.add_argument("--fleet-only", action="store_true", help="reuse the HTTP result sets in --out")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="fleet-vs-sim-results-"))
    started_s = time.perf_counter()
    topologies, workloads = args.topologies.split(","), args.workloads.split(",")
    drift_lines: list[str] = []
    for topology in topologies:
        if not args.fleet_only:
            drift_lines += run_http(topology, workloads, args, out)
    http_wall_s = time.perf_counter() - started_s
    comparisons: list[tuple[str, Comparison]] = []
    for topology in topologies:
        http_files = [out / f"http-{topology}-{workload}.json" for workload in workloads]
        fleet_files = [run_fleet(path, out) for path in http_files]
        found = compare(summary_values(http_files), summary_values(fleet_files))
        print(f"== {topology}: http (real time) / fleet (virtual time)")
        print(table(found))
        comparisons += [(topology, c) for c in found]
    print("\n".join(drift_lines))
    print(f"results in {out}; HTTP side {http_wall_s:.0f} s, all {time.perf_counter() - started_s:.0f} s")
    print(f"duration {args.duration_s:g} s + drain {args.drain_timeout_s:g} s per run, seed 0, 2 turns")
    print(summary(comparisons))
    return 0


def summary(tagged: list[tuple[str, Comparison]]) -> str:
    """The agreement line: worst |relative error| per figure over every point that has it."""
    comparisons = [c for _, c in tagged]

    def worst(figures: tuple[str, ...], percentile: str) -> tuple[float, int]:
        errors = [abs(c.rel_err) for c in comparisons if c.figure in figures and c.percentile == percentile]
        return (max(errors) if errors else float("nan")), len(errors)

    ttft50, n_ttft50 = worst(("ttft_t1", "ttft_t2+"), "p50")
    tpot50, _ = worst(("tpot",), "p50")
    ttft99, n_ttft99 = worst(("ttft_t1", "ttft_t2+"), "p99")
    points = len({(topology, c.point) for topology, c in tagged})
    within = sum(abs(c.rel_err) <= (0.05 if c.percentile == "p50" else 0.10) for c in comparisons)
    print(f"figures within goal (p50 5%, p99 10%): {within}/{len(comparisons)}; "
          f"ttft p50 figures {n_ttft50}, ttft p99 figures {n_ttft99}")  # fmt: skip
    return (
        f"fleet_agreement points={points} ttft_p50_max_rel_err={ttft50:.4f} "
        f"tpot_p50_max_rel_err={tpot50:.4f} ttft_p99_max_rel_err={ttft99:.4f}"
    )


if __name__ == "__main__":
    sys.exit(main())
