"""Where the CPU goes when the HTTP reproduction of a fleet point runs (for fleet_vs_sim.py's
high-load TTFT gap): one topology + mode + workload through `ppd up --backend sim` (time scale 1) +
`ppd proxy` + `ppd bench`, at each given rate, sampling every process's CPU time (/proc/PID/stat
utime + stime) over the bench. A process near 100% of one core is a queue no engine model has: its
event loop serves requests and relays tokens late. Prints one line per rate and process:

    http_cpu qps=Q process=NAME cpu_pct=P   (percent of one core, over the bench's wall time)

and each rate's bench TTFT p50 of turn 1 beside the fleet's, and the sims' mean and max drift.

    python benchmarks/http_cpu_share.py [--topology 2p2d] [--mode replication] [--workload W3]
        [--qps 4,16] [--duration-s 8] [--drain-timeout-s 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from _sims import SRC

sys.path.insert(0, str(SRC))

from ppd.bench.workloads import builtin_workload
from ppd.fleet import EngineOptions, FleetConfig, fleet_topology, simulate

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
MAX_MODEL_LEN = 32768  # as fleet_vs_sim.py


def ppd_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ppd", *args]


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }


def cpu_s(pid: int) -> float | None:
    """utime + stime of a process so far, seconds; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def sample_until_done(pids: dict[str, int], done: threading.Event, period_s: float = 0.5) -> dict[str, float]:
    """CPU seconds each process used while `done` was unset (the last reading before it went)."""
    first = {name: cpu_s(pid) or 0.0 for name, pid in pids.items()}
    last = dict(first)
    while not done.wait(period_s):
        for name, pid in pids.items():
            value = cpu_s(pid)
            if value is not None:
                last[name] = value
    for name, pid in pids.items():
        value = cpu_s(pid)
        if value is not None:
            last[name] = value
    return {name: last[name] - first[name] for name in pids}


def turn1_summary(summaries: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The summary of turn 1 in `mode` (bench.metrics.summarize's groups)."""
    return next(s for s in summaries if s.get("mode") == mode and s.get("turn_group") == "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topology", default="2p2d")
    parser.add_argument("--mode", default="replication")
    parser.add_argument("--workload", default="W3")
    parser.add_argument("--qps", default="4,16")
    parser.add_argument("--duration-s", type=float, default=8.0)
    parser.add_argument("--drain-timeout-s", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="http-cpu-share-"))
    state_path = work / "state.json"
    up = subprocess.run(
        ppd_command("up", "--backend", "sim", "--topology", args.topology, "--time-scale", "1",
                    "--port-base", "0", "--proxy-port", "0", f"--sim-arg=--max-model-len={MAX_MODEL_LEN}",
                    "--logs", str(work / "logs"), "--state", str(state_path), "--mode", args.mode),
        capture_output=True, text=True, env=child_env(), check=False,
    )  # fmt: skip
    proxy = re.search(r"proxy\s+(http://\S+)", up.stdout)
    if proxy is None:
        print(f"http_cpu_share: ppd up did not start:\n{up.stdout}\n{up.stderr}", file=sys.stderr)
        return 1
    processes = json.loads(state_path.read_text())["processes"]
    pids = {record["name"]: int(record["pid"]) for record in processes}
    engines = [record["url"] for record in processes if record["role"] != "proxy"]
    try:
        for qps in [float(value) for value in args.qps.split(",")]:
            run_one(args, qps, proxy.group(1), pids, engines, work)
    finally:
        subprocess.run(ppd_command("down", "--state", str(state_path)), capture_output=True, env=child_env())
    return 0


def run_one(
    args: argparse.Namespace, qps: float, proxy_url: str, pids: dict[str, int], engines: list[str], work: Path
) -> None:
    for engine in engines:
        urllib.request.urlopen(urllib.request.Request(engine + "/ppd/stats/reset", method="POST"), timeout=10)
    name = f"cpu-{args.workload}-q{qps:g}"
    bench = subprocess.Popen(
        ppd_command("bench", "--url", proxy_url, "--workload", args.workload, "--qps", f"{qps:g}",
                    "--duration", str(args.duration_s), "--modes", args.mode, "--runs", "1", "--seed", "0",
                    "--drain-timeout-s", str(args.drain_timeout_s), "--output", str(work), "--name", name,
                    "--quiet"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
    )  # fmt: skip
    done = threading.Event()
    used: dict[str, float] = {}
    sampler = threading.Thread(
        target=lambda: used.update(sample_until_done({**pids, "bench": bench.pid}, done))
    )
    started_s = time.perf_counter()
    sampler.start()
    bench.wait()
    wall_s = time.perf_counter() - started_s
    done.set()
    sampler.join()
    for process, seconds in sorted(used.items()):
        print(f"http_cpu qps={qps:g} process={process} cpu_pct={100 * seconds / wall_s:.0f}")
    drifts = []
    for engine in engines:
        with urllib.request.urlopen(engine + "/ppd/stats", timeout=10) as answer:
            stats = json.loads(answer.read())
        drifts.append(f"{stats['mean_drift_ms']:.2f}/{stats['max_drift_ms']:.1f}")
    fleet = simulate(
        FleetConfig(fleet_topology(args.topology), args.mode, builtin_workload(args.workload, 2), qps=qps,
                    duration_s=args.duration_s, seed=0, drain_timeout_s=args.drain_timeout_s,
                    engine=EngineOptions(max_model_len=MAX_MODEL_LEN))
    )  # fmt: skip
    fleet_t1 = turn1_summary(fleet.summaries, args.mode)
    http_t1 = turn1_summary(json.loads((work / f"{name}.json").read_text())["summaries"], args.mode)
    print(
        f"qps={qps:g}: bench wall {wall_s:.1f} s; TTFT p50 turn 1: http {http_t1['ttft_ms']['p50']} ms, "
        f"fleet {fleet_t1['ttft_ms']['p50']} ms; "
        f"bench schedule lag p50 {http_t1['schedule_lag_ms']['p50']} ms; "
        f"sim drift mean/max ms: {', '.join(drifts)}"
    )


if __name__ == "__main__":
    sys.exit(main())
