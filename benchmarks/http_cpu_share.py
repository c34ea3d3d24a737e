"""Where the CPU goes when the HTTP reproduction of a fleet point runs (for fleet_vs_sim.py's
high-load TTFT gap): one topology + mode + workload through `ppd up --backend sim` (time scale 1) +
`ppd proxy` + `ppd bench`, at each given rate, sampling every process's CPU time (/proc/PID/stat
utime + stime) over the bench. A process near 100% of one core is a queue no engine model has: its
event loop serves requests and relays tokens late. Prints one line per rate and process:

    http_cpu qps=Q process=NAME cpu_pct=P peak_1s_pct=K   (percent of one core: over the bench's
                                                           wall time, and its busiest second)

and each rate's bench TTFT p50 of turn 1 beside the fleet's, and the sims' mean and max drift.

Where a turn's TTFT goes: the proxy's decision log (--decision-log) stamps each turn's time from the
proxy's handler start to the first bytes from the engine (`proxy`, which holds the proxy -> engine
hops, the engine and its relay back), joined by session id and turn with the bench's rows
(`client`); `client - proxy` is the rest: the bench's send, the proxy taking the request in, and
the first chunk's relay to the bench and its stamp there. A probe (GET /version every 20 ms, its own
thread and connection) measures the proxy's event-loop delay meanwhile: what any request's intake
or chunk waits for in the proxy. Per rate:

    http_ttft_split qps=Q turns=N client_p50_ms=.. proxy_p50_ms=.. client_minus_proxy_p50_ms=..
        fleet_p50_ms=..   (turn 1 and turns 2+ together)
    proxy_loop_probe qps=Q n=N mean_ms=.. p50_ms=.. p90_ms=.. p99_ms=..   (and qps=idle: 1 s before)
    proxy_cpu qps=Q output_tokens=N turns=T us_per_token=..   (the proxy's CPU per relayed token)

    python benchmarks/http_cpu_share.py [--topology 2p2d] [--mode replication] [--workload W3]
        [--qps 4,16] [--duration-s 8] [--drain-timeout-s 10]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _sims import SRC

sys.path.insert(0, str(SRC))

from ppd.bench.workloads import builtin_workload
from ppd.fleet import EngineOptions, FleetConfig, fleet_topology, simulate

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
MAX_MODEL_LEN = 32768  # as fleet_vs_sim.py
UP_TIMEOUT_S = 300.0  # ppd up / down of a few sims: seconds when healthy; a hang must not hold the lock


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


def sample_until_done(
    pids: dict[str, int], done: threading.Event, period_s: float = 1.0
) -> dict[str, tuple[float, float]]:
    """(CPU seconds used while `done` was unset, the most used in one period / period_s) per process."""
    first = {name: cpu_s(pid) or 0.0 for name, pid in pids.items()}
    last, peak = dict(first), dict.fromkeys(pids, 0.0)
    while not done.wait(period_s):
        for name, pid in pids.items():
            value = cpu_s(pid)
            if value is not None:
                peak[name] = max(peak[name], (value - last[name]) / period_s)
                last[name] = value
    for name, pid in pids.items():
        value = cpu_s(pid)
        if value is not None:
            last[name] = value
    return {name: (last[name] - first[name], peak[name]) for name in pids}


def probe_until_done(url: str, done: threading.Event, period_s: float = 0.02) -> list[float]:
    """Round-trip times (ms) of GET /version on one kept-alive connection, every period_s until `done`:
    the proxy answers it from its event loop alone, so the time is that loop's delay (plus ~0.3 ms)."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
    times_ms: list[float] = []
    try:
        while not done.wait(period_s):
            started_s = time.perf_counter()
            connection.request("GET", "/version")
            connection.getresponse().read()
            times_ms.append((time.perf_counter() - started_s) * 1000.0)
    finally:
        connection.close()
    return times_ms


def ttft_split(rows_path: Path, decision_lines: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(client TTFT, proxy TTFT) in ms of every turn in both the bench's rows and the decision log."""
    proxy_ms = {
        (line["conversation"], line["turn"]): line["ttft_ms"]
        for line in decision_lines
        if line.get("ttft_ms") is not None
    }
    pairs = []
    for text in rows_path.read_text().splitlines():
        row = json.loads(text)
        key = ("s:" + row["conversation_id"], row["turn"])  # the proxy keys a session id so
        if row["ok"] and row["ttft_ms"] is not None and key in proxy_ms:
            pairs.append((row["ttft_ms"], proxy_ms[key]))
    return pairs


def print_probe(label: str, probe_ms: list[float]) -> None:
    """The proxy_loop_probe line of one set of round trips."""
    if probe_ms:
        print(
            f"proxy_loop_probe qps={label} n={len(probe_ms)} mean_ms={statistics.fmean(probe_ms):.2f} "
            f"p50_ms={percentile(probe_ms, 0.5):.2f} p90_ms={percentile(probe_ms, 0.9):.2f} "
            f"p99_ms={percentile(probe_ms, 0.99):.2f}"
        )


def percentile(values: list[float], share: float) -> float:
    """The share-quantile of values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


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
    decision_log = f"--proxy-arg=--decision-log={work / 'decisions.jsonl'}"
    with sim_deployment("http_cpu_share", args.topology, args.mode, work, child_env(), decision_log) as (
        proxy_url,
        processes,
    ):
        pids = {record["name"]: int(record["pid"]) for record in processes}
        engines = [record["url"] for record in processes if record["role"] != "proxy"]
        for qps in [float(value) for value in args.qps.split(",")]:
            run_one(args, qps, proxy_url, pids, engines, work)
    return 0


@contextlib.contextmanager
def sim_deployment(
    script: str, topology: str, mode: str, work: Path, env: dict[str, str], *extra: str
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """`ppd up --backend sim` at time scale 1 on free ports (logs and state under work), stopped on
    exit: (the proxy's URL, the state file's processes). Exits the script if it does not start."""
    state_path = work / "state.json"
    up = subprocess.run(
        ppd_command("up", "--backend", "sim", "--topology", topology, "--time-scale", "1",
                    "--port-base", "0", "--proxy-port", "0", f"--sim-arg=--max-model-len={MAX_MODEL_LEN}",
                    "--logs", str(work / "logs"), "--state", str(state_path), "--mode", mode, *extra),
        capture_output=True, text=True, env=env, check=False, timeout=UP_TIMEOUT_S,
    )  # fmt: skip
    proxy = re.search(r"proxy\s+(http://\S+)", up.stdout)
    if proxy is None:
        raise SystemExit(f"{script}: ppd up did not start:\n{up.stdout}\n{up.stderr}")
    try:
        yield proxy.group(1), json.loads(state_path.read_text())["processes"]
    finally:
        down = ppd_command("down", "--state", str(state_path))
        subprocess.run(down, capture_output=True, env=env, check=False, timeout=UP_TIMEOUT_S)


def run_one(
    args: argparse.Namespace, qps: float, proxy_url: str, pids: dict[str, int], engines: list[str], work: Path
) -> None:
    for engine in engines:
        urllib.request.urlopen(urllib.request.Request(engine + "/ppd/stats/reset", method="POST"), timeout=10)
    name = f"cpu-{args.workload}-q{qps:g}"
    idle = threading.Event()
    threading.Timer(1.0, idle.set).start()
    print_probe("idle", probe_until_done(proxy_url, idle))  # the probe's own round trip, nothing running
    decision_log = work / "decisions.jsonl"
    num_earlier_lines = len(decision_log.read_text().splitlines()) if decision_log.exists() else 0
    bench = subprocess.Popen(
        ppd_command("bench", "--url", proxy_url, "--workload", args.workload, "--qps", f"{qps:g}",
                    "--duration", str(args.duration_s), "--modes", args.mode, "--runs", "1", "--seed", "0",
                    "--drain-timeout-s", str(args.drain_timeout_s), "--output", str(work), "--name", name,
                    "--quiet"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
    )  # fmt: skip
    done = threading.Event()
    used: dict[str, tuple[float, float]] = {}
    probe_ms: list[float] = []
    sampler = threading.Thread(
        target=lambda: used.update(sample_until_done({**pids, "bench": bench.pid}, done))
    )
    prober = threading.Thread(target=lambda: probe_ms.extend(probe_until_done(proxy_url, done)))
    started_s = time.perf_counter()
    sampler.start()
    prober.start()
    bench.wait()
    wall_s = time.perf_counter() - started_s
    done.set()
    sampler.join()
    prober.join()
    for process, (seconds, peak) in sorted(used.items()):
        print(
            f"http_cpu qps={qps:g} process={process} cpu_pct={100 * seconds / wall_s:.0f} "
            f"peak_1s_pct={100 * peak:.0f}"
        )
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
    decisions = [json.loads(line) for line in decision_log.read_text().splitlines()[num_earlier_lines:]]
    pairs = ttft_split(work / f"{name}.jsonl", decisions)
    fleet_ttft = [row.ttft_ms for row in fleet.rows if row.ok and row.ttft_ms is not None]
    if pairs:
        client, proxy = [c for c, _ in pairs], [p for _, p in pairs]
        print(
            f"http_ttft_split qps={qps:g} turns={len(pairs)} client_p50_ms={statistics.median(client):.1f} "
            f"proxy_p50_ms={statistics.median(proxy):.1f} "
            f"client_minus_proxy_p50_ms={statistics.median(c - p for c, p in pairs):.1f} "
            f"client_minus_proxy_p90_ms={percentile([c - p for c, p in pairs], 0.9):.1f} "
            f"fleet_p50_ms={statistics.median(fleet_ttft):.1f}"
        )
    print_probe(f"{qps:g}", probe_ms)
    num_tokens = sum(json.loads(line).get("output_tokens") or 0 for line in (work / f"{name}.jsonl").open())
    print(
        f"proxy_cpu qps={qps:g} output_tokens={num_tokens} turns={len(pairs)} "
        f"us_per_token={1e6 * used['proxy'][0] / max(1, num_tokens):.1f}"
    )
    print(
        f"qps={qps:g}: bench wall {wall_s:.1f} s; TTFT p50 turn 1: http {http_t1['ttft_ms']['p50']} ms, "
        f"fleet {fleet_t1['ttft_ms']['p50']} ms; "
        f"bench schedule lag p50 {http_t1['schedule_lag_ms']['p50']} ms; "
        f"sim drift mean/max ms: {', '.join(drifts)}"
    )


if __name__ == "__main__":
    sys.exit(main())
