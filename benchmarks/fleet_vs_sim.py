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

Where the HTTP side spends its time, per point (`http path` table): the bench's, the proxy's and the
sims' CPU (/proc/PID/stat, sampled every 0.5 s, over the run's arrival window and drain; percent of
one core, 2 cores = 200%), and `client - proxy`, the median over the point's turns of the bench's
TTFT minus the proxy's own (its decision log: handler start -> the engine's first bytes). That
difference is the bench's send, the proxy taking the request in and relaying the first chunk, and
the bench stamping it; the fleet puts client_to_proxy + proxy_to_client there (hops.json). Where it
is far above that, the TTFT error is the HTTP path's, not the engines'.

And per topology, TTFT p50 at the proxy: over HTTP the proxy's own (its decision log, kept in --out
as proxy-decisions-<topology>.jsonl so that --fleet-only finds it), in the fleet each row's TTFT less
client_to_proxy + proxy_to_client: the deployment's TTFT without the bench's part of the path.

    python benchmarks/fleet_vs_sim.py [--duration-s 8] [--drain-timeout-s 10] [--topologies 1p1d,2p2d]
        [--workloads W1,W2,W3,W4] [--out DIR] [--fleet-only] [--http-only] [--against DIR ...]
        [--proxy-cpu measured|zero|FILE] [--hops measured|zero|FILE]

--fleet-only reuses the HTTP result sets in --out (and makes the fleet's there again); --fleet-only
--proxy-cpu zero compares the fleet without the proxy's event loop with the same HTTP result sets
(an A/B of the loop model against one HTTP run). --hops and --proxy-cpu FILE give the fleet
another host's measured costs. --http-only runs (or, with --fleet-only, reuses) the HTTP side and
leaves the fleet out.

The measurement's own floor: --against DIR (repeatable) compares another HTTP run of the same points
and seeds (DIR, an earlier --out) with --out's, figure by figure with the fleet comparison's metric
and goal (DIR's value in the place of the fleet's: (DIR - out) / out), and ends with

    http_repeat points=N ttft_p50_max_rel_err=E1 tpot_p50_max_rel_err=E2 ttft_p99_max_rel_err=E3
        within_goal=K/M beyond_reach=R

R counts the figures where the two HTTP runs lie so far apart that no value is within the goal of
both (for p50: DIR's more than 10.5% above or 9.5% below out's): there a fleet held to one run can
miss the goal however right it is, and which run it is held to decides.
Same seeds mean the same conversations, arrival times and prompts, so what differs between two HTTP
runs is only the real-time path's timing (the OS, the event loops, the machine's other load). Unless
--http-only, the fleet's figures outside the goal are then held to that floor, per figure: within the
HTTP's repeat spread where |fleet error| <= the largest |repeat error| of that figure (a second
measurement of the same point lands at least as far from the first as the fleet does), and the line

    fleet_vs_repeat figures=M within_goal=G outside_goal_within_repeat_spread=F
        beyond_repeat_spread=B no_repeat=X

(each one line in the output). And, for the light points' TTFT, whose p50 a turn's phase can flip,
the figures outside the goal against the HTTP side's 95% bootstrap intervals of its p50 and mean,
and over every TTFT figure (benchmarks/fleet_intervals.py; printed before the agreement line; the
first line per --against run, that run in the fleet's place)

    http_repeat_intervals ttft_figures=N p50_in_http_ci=K mean_in_http_ci=M mean_within_5pct=J
    fleet_intervals ttft_figures=N p50_in_http_ci=K mean_in_http_ci=M mean_within_5pct=J
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from _sims import SRC
from fleet_intervals import interval_checks, interval_line, interval_table
from http_cpu_share import cpu_s
from sim_vs_real import Comparison, compare, summary_values, table

sys.path.insert(0, str(SRC))

from ppd.bench.workloads import builtin_workload
from ppd.fleet import EngineOptions, FleetConfig, HopCosts, fleet_topology, write_result_set
from ppd.fleet.config import hops_from_spec
from ppd.fleet.connections import IdleConnections
from ppd.fleet.proxy_loop import ProxyCpu, proxy_cpu_from_spec
from ppd.fleet.sequence import simulate_in_order

MODES = ("pd", "ppd", "replication", "auto")
LOADS = {"W1": (2.0, 8.0), "W2": (1.0, 4.0), "W3": (2.0, 8.0), "W4": (0.5, 2.0)}  # 1p1d; x2 for 2p2d
MAX_MODEL_LEN = 32768  # W4's turn 2 is 16.5k tokens


def child_env() -> dict[str, str]:
    """This checkout's src/ first, for every ppd child process."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }


def ppd(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppd", *args], capture_output=True, text=True, env=child_env(), check=check
    )


def scale(topology: str) -> float:
    """Loads grow with the instance count: 1p1d x1, 2p2d x2."""
    match = re.match(r"(\d+)p(\d+)d", topology)
    return (int(match.group(1)) if match else 1) * 1.0


def run_http(
    topology: str, workloads: list[str], args: argparse.Namespace, out: Path
) -> tuple[list[str], list[str]]:
    """Start the topology, bench every workload in every mode, stop it; returns the drift lines and
    the HTTP path's lines (CPU and TTFT split per point)."""
    work = Path(tempfile.mkdtemp(prefix="fleet-vs-sim-"))
    state, decision_log = work / "state.json", work / "decisions.jsonl"
    up = ppd("up", "--backend", "sim", "--topology", topology, "--time-scale", "1", "--port-base", "0",
             "--proxy-port", "0", f"--sim-arg=--max-model-len={MAX_MODEL_LEN}", "--logs", str(work / "logs"),
             "--state", str(state), "--mode", "pd", f"--proxy-arg=--decision-log={decision_log}")  # fmt: skip
    proxy_url = re.search(r"proxy\s+(http://\S+)", up.stdout)
    engines = re.findall(r"(?:prefill|decode)\s+(http://\S+)", up.stdout)
    if proxy_url is None:
        raise RuntimeError(f"ppd up did not start:\n{up.stdout}\n{up.stderr}")
    processes = json.loads(state.read_text())["processes"]
    pids = {("proxy" if r["role"] == "proxy" else "sims:" + r["name"]): int(r["pid"]) for r in processes}
    drift_lines, path_lines = [], []
    try:
        for workload in workloads:
            for engine in engines:
                urllib.request.urlopen(
                    urllib.request.Request(engine + "/ppd/stats/reset", method="POST"), timeout=10
                )
            qps = ",".join(f"{rate * scale(topology):g}" for rate in LOADS[workload])
            name = f"http-{topology}-{workload}"
            samples = bench_sampled(
                ["bench", "--url", proxy_url.group(1), "--workload", workload, "--qps", qps,
                 "--duration", str(args.duration_s), "--modes", ",".join(MODES), "--runs", "1", "--seed", "0",
                 "--drain-timeout-s", str(args.drain_timeout_s), "--output", str(out), "--name", name,
                 "--quiet"],
                pids,
            )  # fmt: skip
            path_lines += http_path_lines(topology, out / f"{name}.json", samples, decision_log)
            drifts = []
            for engine in engines:
                with urllib.request.urlopen(engine + "/ppd/stats", timeout=10) as answer:
                    stats = json.loads(answer.read())
                drifts.append(f"max {stats['max_drift_ms']:.1f} / mean {stats['mean_drift_ms']:.2f} ms")
            drift_lines.append(f"{topology} {workload}: engine drift {'; '.join(drifts)}")
    finally:
        ppd("down", "--state", str(state), check=False)
        if decision_log.exists():  # kept for --fleet-only's proxy-side comparison
            shutil.copy(decision_log, out / f"proxy-decisions-{topology}.jsonl")
    return drift_lines, path_lines


Sample = tuple[float, dict[str, float]]  # (unix time s, CPU s so far by process)


def bench_sampled(bench_args: list[str], pids: dict[str, int]) -> list[Sample]:
    """Run `ppd bench ARGS` to its end, sampling its, the proxy's and the sims' CPU every 0.5 s."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "ppd", *bench_args], env=child_env(), stdout=subprocess.DEVNULL
    )
    watched = {**pids, "bench": bench.pid}
    samples: list[Sample] = []
    done = threading.Event()

    def sample() -> None:
        while True:
            readings = ((name, cpu_s(pid)) for name, pid in watched.items())
            samples.append((time.time(), {name: value for name, value in readings if value is not None}))
            if done.wait(0.5):
                return

    sampler = threading.Thread(target=sample)
    sampler.start()
    returncode = bench.wait()
    done.set()
    sampler.join()
    if returncode != 0:
        raise RuntimeError(f"ppd bench {' '.join(bench_args)} exited {returncode}")
    return samples


def cpu_pct(samples: list[Sample], process: str, start_s: float, end_s: float) -> float | None:
    """A process's CPU over [start_s, end_s] in percent of one core ("sims": all sims summed)."""
    inside = [(at_s, reading) for at_s, reading in samples if start_s <= at_s <= end_s]
    if len(inside) < 2:
        return None
    (first_s, first), (last_s, last) = inside[0], inside[-1]
    names = [name for name in last if name == process or name.startswith(process + ":")]
    used_s = sum(last[name] - first.get(name, 0.0) for name in names)
    return 100.0 * used_s / (last_s - first_s)


def http_path_lines(topology: str, result_json: Path, samples: list[Sample], decision_log: Path) -> list[str]:
    """One line per run of a bench result set: CPU of bench, proxy and sims, and client - proxy TTFT."""
    proxy_ttft_ms = {
        (line["conversation"], line["turn"]): line["ttft_ms"]
        for line in map(json.loads, decision_log.read_text().splitlines())
        if line.get("ttft_ms") is not None
    }
    meta = json.loads(result_json.read_text())
    rows = [json.loads(line) for line in (result_json.parent / meta["rows_file"]).read_text().splitlines()]
    lines = []
    for run in meta["runs"]:
        start_s = datetime.fromisoformat(run["started_utc"]).timestamp()
        end_s = start_s + run["elapsed_s"]
        gaps = [
            row["ttft_ms"] - proxy_ttft_ms[key]
            for row in rows
            if (row["mode"], row["qps"]) == (run["mode"], run["qps"]) and row["ttft_ms"] is not None
            for key in [("s:" + row["conversation_id"], row["turn"])]  # the proxy's key of a session id
            if key in proxy_ttft_ms
        ]
        cpu = {name: cpu_pct(samples, name, start_s, end_s) for name in ("bench", "proxy", "sims")}
        lines.append(
            f"{topology:<5} {run['workload']:<3} {run['qps']:>5g} {run['mode']:<12} "
            + " ".join(f"{value:>6.0f}%" if value is not None else f"{'-':>7}" for value in cpu.values())
            + (f" {statistics.median(gaps):>8.1f} ms (n={len(gaps)})" if gaps else f" {'-':>11}")
        )
    return lines


def fleet_configs(http_json: Path, proxy_cpu: ProxyCpu, hops: HopCosts) -> list[FleetConfig]:
    """The fleet's config of each point of an HTTP result set (qps, then mode, as the bench ran them):
    the same topology, workload, seed, duration and drain; turn_trace.py runs the same ones."""
    meta = json.loads(http_json.read_text())
    config, topology = meta["config"], http_json.stem.split("-")[1]
    workload = builtin_workload(config["workloads"][0]["name"], len(config["workloads"][0]["turns"]))
    return [
        FleetConfig(
            fleet_topology(topology),
            mode,
            workload,
            qps=qps,
            duration_s=config["duration_s"],
            seed=config["seed"],
            drain_timeout_s=config["drain_timeout_s"],
            engine=EngineOptions(max_model_len=MAX_MODEL_LEN),
            hops=hops,
            proxy_cpu=proxy_cpu,
        )
        for qps in config["qps"]
        for mode in config["modes"]
    ]


def run_fleet(
    http_json: Path, out: Path, proxy_cpu: ProxyCpu, hops: HopCosts, idle: IdleConnections | None = None
) -> tuple[Path, IdleConnections]:
    """The same points through ppd fleet, the first starting with `idle` (None: its config's own);
    the fleet result set, and the idle connections its last run left."""
    runs = simulate_in_order(fleet_configs(http_json, proxy_cpu, hops), idle=idle)
    name = http_json.stem.replace("http-", "fleet-", 1)
    for earlier in (out / f"{name}.json", out / f"{name}.jsonl"):  # this script's own, from a former run
        earlier.unlink(missing_ok=True)
    return write_result_set(runs, out, name), runs[-1].idle_connections


def run_fleet_workloads(http_files: list[Path], out: Path, proxy_cpu: ProxyCpu, hops: HopCosts) -> list[Path]:
    """run_fleet for each workload's HTTP set in order. A workload run on the deployment of the one
    before it (same engine URLs: one proxy; cpu-bench.sh runs two workloads per deployment) starts
    with the proxy's idle connections that one left, older by the time between the two benches; its
    bench is a new client, with no connections of its own."""
    fleet_files: list[Path] = []
    left: IdleConnections | None = None
    for index, path in enumerate(http_files):
        idle = None
        if left is not None and index > 0:
            gap_s = same_deployment_gap_s(http_files[index - 1], path)
            if gap_s is not None:
                aged = left.aged(gap_s)
                idle = IdleConnections((), aged.engines_s, aged.next_health_check_s)
        fleet_path, left = run_fleet(path, out, proxy_cpu, hops, idle)
        fleet_files.append(fleet_path)
    return fleet_files


def _utc_s(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def same_deployment_gap_s(before: Path, after: Path) -> float | None:
    """Seconds from the end of `before`'s last run to the start of `after`'s first, when both ran on
    one deployment (the same engine URLs) one after the other; None otherwise."""
    first, second = json.loads(before.read_text()), json.loads(after.read_text())
    if [e["url"] for e in first["engines"]] != [e["url"] for e in second["engines"]]:
        return None
    ended_s = max(_utc_s(run["started_utc"]) + run["elapsed_s"] for run in first["runs"])
    started_s = min(_utc_s(run["started_utc"]) for run in second["runs"])
    # started_utc is whole seconds: a start up to 1 s "before" the end is the next bench, at once
    return max(0.0, started_s - ended_s) if started_s > ended_s - 1.0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration-s", type=float, default=8.0, help="arrival window per run (default 8)")
    parser.add_argument("--drain-timeout-s", type=float, default=10.0, help="per run, after it (default 10)")
    parser.add_argument("--topologies", default="1p1d,2p2d")
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    parser.add_argument("--out", type=Path, default=None, help="keep both sides' result sets here")
    parser.add_argument("--fleet-only", action="store_true", help="reuse the HTTP result sets in --out")
    parser.add_argument("--http-only", action="store_true", help="no fleet: the HTTP side (and --against)")
    parser.add_argument(
        "--against", type=Path, action="append", default=[], help="another HTTP run's --out (same seeds)"
    )
    parser.add_argument("--proxy-cpu", default="measured", help="the fleet's proxy loop: measured|zero|FILE")
    parser.add_argument("--hops", default="measured", help="the fleet's hop costs: measured|zero|FILE")
    args = parser.parse_args()
    proxy_cpu, hops = proxy_cpu_from_spec(args.proxy_cpu), hops_from_spec(args.hops)
    out = args.out or Path(tempfile.mkdtemp(prefix="fleet-vs-sim-results-"))
    started_s = time.perf_counter()
    topologies, workloads = args.topologies.split(","), args.workloads.split(",")
    drift_lines: list[str] = []
    path_lines: list[str] = []
    for topology in topologies:
        if not args.fleet_only:
            drifts, paths = run_http(topology, workloads, args, out)
            drift_lines, path_lines = drift_lines + drifts, path_lines + paths
    http_wall_s = time.perf_counter() - started_s
    repeats = {str(other): repeat_comparisons(out, other, topologies, workloads) for other in args.against}
    for other, found in repeats.items():
        for topology in topologies:
            print(f"== {topology}: http ({out}) / http again ({other})")
            print(table([c for t, c in found if t == topology]))
    comparisons: list[tuple[str, Comparison]] = []
    for topology in [] if args.http_only else topologies:
        http_files = [out / f"http-{topology}-{workload}.json" for workload in workloads]
        fleet_files = run_fleet_workloads(http_files, out, proxy_cpu, hops)
        found = compare(summary_values(http_files), summary_values(fleet_files))
        print(f"== {topology}: http (real time) / fleet (virtual time)")
        print(table(found))
        comparisons += [(topology, c) for c in found]
        print("\n".join(proxy_side_lines(topology, workloads, out, hops)))
    print("\n".join(drift_lines))
    if path_lines:
        print(http_path_header(hops))
        print("\n".join(path_lines))
    if comparisons and repeats:
        print(floor_table(comparisons, list(repeats.values())))
        print(floor_points(comparisons, list(repeats.values())))
    checks = [] if args.http_only else interval_checks(out, topologies, workloads)
    if checks:
        print(interval_table(checks))
    print(f"results in {out}; HTTP side {http_wall_s:.0f} s, all {time.perf_counter() - started_s:.0f} s")
    print(f"duration {args.duration_s:g} s + drain {args.drain_timeout_s:g} s per run, seed 0, 2 turns")
    for other, found in repeats.items():
        print(f"repeat: {other}")
        print(f"points with every figure within goal: {points_within_goal(found)}")
        print(
            f"http_repeat {error_figures(found)} within_goal={count_within_goal(found)}/{len(found)}"
            f" beyond_reach={sum(beyond_reach(c) for _, c in found)}"
        )
    for other in [] if not checks else args.against:
        print(interval_line(interval_checks(out, topologies, workloads, other), "http_repeat_intervals"))
    if checks:
        print(interval_line(checks))
    if comparisons:
        print(f"fleet: hops {hops.source[:40]}...; proxy loop: {proxy_cpu.source[:60]}...")
        print(summary(comparisons))
    if comparisons and repeats:
        print(floor_line(comparisons, list(repeats.values())))
    return 0


Tagged = list[tuple[str, Comparison]]  # (topology, comparison)
FigureKey = tuple[str, tuple[str, float, str], str, str]  # topology, point, figure, percentile


def repeat_comparisons(out: Path, other: Path, topologies: list[str], workloads: list[str]) -> Tagged:
    """Another HTTP run (other) against --out's, figure by figure: its value takes the fleet's place."""
    found: Tagged = []
    for topology in topologies:
        files = [f"http-{topology}-{workload}.json" for workload in workloads]
        here, there = summary_values([out / f for f in files]), summary_values([other / f for f in files])
        found += [(topology, c) for c in compare(here, there)]
    return found


def figure_key(topology: str, c: Comparison) -> FigureKey:
    return topology, c.point, c.figure, c.percentile


# The agreement goal (issue 13): the largest |relative error| allowed, per percentile.
GOALS = {"p50": 0.05, "p99": 0.10}


def within_goal(c: Comparison) -> bool:
    """The agreement goal: p50 within 5%, p99 within 10%."""
    return abs(c.rel_err) <= GOALS[c.percentile]


def beyond_reach(c: Comparison) -> bool:
    """Whether no value is within the goal of both c's values (a repeat's: two HTTP runs), taking
    each in turn as the reference: the intervals [v (1 - g), v (1 + g)] around the two do not meet."""
    goal = GOALS[c.percentile]
    low, high = sorted((c.real_ms, c.sim_ms))
    return high * (1 - goal) > low * (1 + goal)


def count_within_goal(tagged: Tagged) -> int:
    return sum(within_goal(c) for _, c in tagged)


def points_within_goal(tagged: Tagged) -> str:
    """K/N: the points whose every figure is within the goal."""
    failed: dict[tuple[str, tuple[str, float, str]], bool] = {}
    for topology, c in tagged:
        key = (topology, c.point)
        failed[key] = failed.get(key, False) or not within_goal(c)
    return f"{sum(not f for f in failed.values())}/{len(failed)}"


def repeat_spread(repeats: list[Tagged]) -> dict[FigureKey, float]:
    """Per figure, the largest |relative error| of any repeat against --out's HTTP run."""
    spread: dict[FigureKey, float] = {}
    for found in repeats:
        for topology, c in found:
            key = figure_key(topology, c)
            spread[key] = max(spread.get(key, 0.0), abs(c.rel_err))
    return spread


Verdict = tuple[str, Comparison, float | None, str]  # topology, fleet figure, repeat spread, verdict


def floor_verdicts(comparisons: Tagged, repeats: list[Tagged]) -> list[Verdict]:
    """Each fleet figure with its repeat spread (None: no repeat has it) and verdict: `goal` (within
    the goal), `repeat` (outside it, but |error| <= the HTTP's own repeat spread), `beyond`, or
    `no repeat`."""
    spread = repeat_spread(repeats)
    verdicts = []
    for topology, c in comparisons:
        floor = spread.get(figure_key(topology, c))
        if within_goal(c):
            verdict = "goal"
        elif floor is None:
            verdict = "no repeat"
        else:
            verdict = "repeat" if abs(c.rel_err) <= floor else "beyond"
        verdicts.append((topology, c, floor, verdict))
    return verdicts


def floor_table(comparisons: Tagged, repeats: list[Tagged]) -> str:
    """The fleet's figures outside the goal, beside the HTTP side's repeat spread of the same figure."""
    lines = [
        "== fleet figures outside the goal, against the HTTP's repeat spread (|repeat err|, largest over"
        " the --against runs)",
        f"{'topo':<5} {'wl':<3} {'qps':>5} {'mode':<12} {'figure':<9} {'pct':<4} {'http ms':>8} "
        f"{'fleet err':>9} {'repeat':>7}  verdict",
    ]
    for topology, c, floor, verdict in floor_verdicts(comparisons, repeats):
        if verdict == "goal":
            continue
        floor_text = f"{floor:7.1%}" if floor is not None else f"{'-':>7}"
        workload, qps, mode = c.point
        lines.append(
            f"{topology:<5} {workload:<3} {qps:>5g} {mode:<12} {c.figure:<9} {c.percentile:<4} "
            f"{c.real_ms:8.1f} {c.rel_err:+9.1%} {floor_text}  {verdict}"
        )
    return "\n".join(lines)


def floor_points(comparisons: Tagged, repeats: list[Tagged]) -> str:
    """Per point: how many of its figures are within the goal, outside it but within the HTTP's
    repeat spread, beyond that spread, or have no repeat; and the point's verdict (its worst)."""
    by_point: dict[tuple[str, tuple[str, float, str]], list[str]] = {}
    for topology, c, _, verdict in floor_verdicts(comparisons, repeats):
        by_point.setdefault((topology, c.point), []).append(verdict)
    order = ("goal", "repeat", "no repeat", "beyond")
    lines = [
        "== per point: figures within the goal / outside it but within the HTTP's repeat spread / beyond"
        " it / no repeat",
        f"{'topo':<5} {'wl':<3} {'qps':>5} {'mode':<12} {'goal':>4} {'rep':>4} {'beyond':>6} {'none':>4}"
        "  point",
    ]
    worst_by_point = []
    for (topology, (workload, qps, mode)), verdicts in by_point.items():
        counts = [verdicts.count(v) for v in ("goal", "repeat", "beyond", "no repeat")]
        worst = max(verdicts, key=order.index)
        worst_by_point.append(worst)
        point_verdict = {"goal": "within goal", "repeat": "within repeat spread"}.get(worst, worst)
        lines.append(
            f"{topology:<5} {workload:<3} {qps:>5g} {mode:<12} {counts[0]:>4} {counts[1]:>4} {counts[2]:>6} "
            f"{counts[3]:>4}  {point_verdict}"
        )
    lines.append(
        f"-- points: {len(by_point)}; all figures within goal {worst_by_point.count('goal')}, within goal or "
        f"the repeat spread {worst_by_point.count('goal') + worst_by_point.count('repeat')}, some figure "
        f"beyond the spread {worst_by_point.count('beyond')}"
    )
    return "\n".join(lines)


def floor_line(comparisons: Tagged, repeats: list[Tagged]) -> str:
    """The fleet held to the measurement's own floor, in one line."""
    verdicts = [verdict for *_, verdict in floor_verdicts(comparisons, repeats)]
    return (
        f"fleet_vs_repeat figures={len(verdicts)} within_goal={verdicts.count('goal')} "
        f"outside_goal_within_repeat_spread={verdicts.count('repeat')} "
        f"beyond_repeat_spread={verdicts.count('beyond')} no_repeat={verdicts.count('no repeat')}"
    )


def proxy_side_lines(topology: str, workloads: list[str], out: Path, hops: HopCosts) -> list[str]:
    """TTFT p50 as the proxy sees it (its handler start -> the engine's first bytes): over HTTP from
    the proxy's decision log, in the fleet its rows' TTFT less client_to_proxy + proxy_to_client.
    Without the bench's part of the path, this is the deployment's own TTFT at the proxy."""
    decisions_path = out / f"proxy-decisions-{topology}.jsonl"
    if not decisions_path.exists():
        return []
    proxy_ms = {
        (line["conversation"], line["turn"]): line["ttft_ms"]
        for line in map(json.loads, decisions_path.read_text().splitlines())
        if line.get("ttft_ms") is not None
    }
    client_side_ms = hops.client_to_proxy_ms + hops.proxy_to_client_ms
    http: dict[tuple[str, float, str, str], list[float]] = {}
    fleet: dict[tuple[str, float, str, str], list[float]] = {}
    for workload in workloads:
        for side, values in (("http", http), ("fleet", fleet)):
            for row in map(
                json.loads, (out / f"{side}-{topology}-{workload}.jsonl").read_text().splitlines()
            ):
                if row["ttft_ms"] is None:
                    continue
                key = (workload, row["qps"], row["mode"], "1" if row["turn"] == 1 else "2+")
                if side == "fleet":
                    values.setdefault(key, []).append(row["ttft_ms"] - client_side_ms)
                elif ("s:" + row["conversation_id"], row["turn"]) in proxy_ms:
                    values.setdefault(key, []).append(proxy_ms[("s:" + row["conversation_id"], row["turn"])])
    errors = []
    lines = [f"-- {topology}, TTFT p50 at the proxy: http / fleet ms (err), turn 1 and turns 2+"]
    for workload, qps, mode in sorted(
        {key[:3] for key in http}, key=lambda k: (k[0], k[1], MODES.index(k[2]))
    ):
        cells = []
        for group in ("1", "2+"):
            key = (workload, qps, mode, group)
            if key not in http or key not in fleet:
                cells.append(f"{'-':>26}")
                continue
            real_ms, model_ms = statistics.median(http[key]), statistics.median(fleet[key])
            errors.append((model_ms - real_ms) / real_ms)
            cells.append(f"{real_ms:8.1f} / {model_ms:7.1f} ({100 * errors[-1]:+6.1f}%)")
        lines.append(f"{workload:<3} {qps:>5g} {mode:<12} " + " ".join(cells))
    within = sum(abs(error) <= 0.05 for error in errors)
    worst = max((abs(error) for error in errors), default=float("nan"))
    lines.append(
        f"-- {topology} at the proxy: p50 within 5% at {within}/{len(errors)}, max |err| {worst:.4f}"
    )
    return lines


def http_path_header(hops: HopCosts) -> str:
    """The `http path` table's title and column names."""
    fleet_ms = hops.client_to_proxy_ms + hops.proxy_to_client_ms
    columns = f"{'topo':<5} {'wl':<3} {'qps':>5} {'mode':<12} {'bench':>7} {'proxy':>7} {'sims':>7}"
    return (
        "== http path: CPU in percent of one core (2 cores: 200%) over each run, and the median of client\n"
        f"   TTFT - proxy TTFT (the fleet's: {fleet_ms:.2f} ms)\n{columns} {'client-proxy':>11}"
    )


def error_figures(tagged: Tagged) -> str:
    """points=N and the worst |relative error| per figure over every point that has it."""
    comparisons = [c for _, c in tagged]

    def worst(figures: tuple[str, ...], percentile: str) -> float:
        errors = [abs(c.rel_err) for c in comparisons if c.figure in figures and c.percentile == percentile]
        return max(errors) if errors else float("nan")

    points = len({(topology, c.point) for topology, c in tagged})
    return (
        f"points={points} ttft_p50_max_rel_err={worst(('ttft_t1', 'ttft_t2+'), 'p50'):.4f} "
        f"tpot_p50_max_rel_err={worst(('tpot',), 'p50'):.4f} "
        f"ttft_p99_max_rel_err={worst(('ttft_t1', 'ttft_t2+'), 'p99'):.4f}"
    )


def summary(tagged: Tagged) -> str:
    """The agreement line: worst |relative error| per figure over every point that has it."""
    comparisons = [c for _, c in tagged]
    n_ttft50 = sum(c.figure != "tpot" and c.percentile == "p50" for c in comparisons)
    n_ttft99 = sum(c.figure != "tpot" and c.percentile == "p99" for c in comparisons)
    print(f"points with every figure within goal: {points_within_goal(tagged)}")
    print(f"figures within goal (p50 5%, p99 10%): {count_within_goal(tagged)}/{len(comparisons)}; "
          f"ttft p50 figures {n_ttft50}, ttft p99 figures {n_ttft99}")  # fmt: skip
    return f"fleet_agreement {error_figures(tagged)}"


if __name__ == "__main__":
    sys.exit(main())
