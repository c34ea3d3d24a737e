"""The proxy's CPU per request, per relayed read and per extra token in a read, measured on the
real-time system, for the fleet's model of the proxy's event loop (src/ppd/fleet/proxy_loop.py).

One topology of `ppd sim` engines (time scale 1) behind one `ppd proxy`, driven by `ppd bench` with
single-turn IN/OUT shapes at rates chosen apart from the points benchmarks/fleet_vs_sim.py judges
(those are W1-W4 with two turns; nothing here is fitted on them). Per point it samples the proxy's
CPU time (/proc/PID/stat utime + stime) over the bench, minus its idle rate measured just before,
and counts the proxy's `readany()` calls and the bytes they return (a sitecustomize hook on the
children's PYTHONPATH, only where PPD_COUNT_READS_DIR is set; ~1 us per call against ~70 us of work),
and the engines' steps (/ppd/stats): each step sends its batch's chunks at once, and the proxy's loop
wakes for them (on an idle loop that wake-up is most of a chunk's cost). A read that finds several
chunks of one stream waiting returns them together, so reads < tokens where the loop falls behind.
Then the least-squares fit, without intercept:

    cpu_s = request_us * requests + wake_us * steps + read_us * reads + token_us * (tokens - reads)

Prints one line per point, the fit and its residuals, and last:

    proxy_relay_cost request_us=R wake_us=W read_us=C token_us=T points=N max_rel_residual=E

--write stores the fit in src/ppd/fleet/proxy_cpu.json, with the command and date as its source.

    flock /work/cpu.lock python benchmarks/proxy_relay_cost.py [--write]
        [--topology 2p2d] [--points 256/16@24,256/256@2,256/1024@3,256/1024@8,256/1024@12]
        [--duration-s 8] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from _sims import SRC
from http_cpu_share import cpu_s, ppd_command, sim_deployment

PROXY_CPU_JSON = SRC / "ppd" / "fleet" / "proxy_cpu.json"
DEFAULT_POINTS = "256/16@24,256/256@2,256/1024@3,256/1024@8,256/1024@12"

# Imported by every child Python started with this folder on PYTHONPATH; counts only where asked.
COUNTER = """
import os
if os.environ.get("PPD_COUNT_READS_DIR"):
    import threading
    import time
    import aiohttp.streams

    _counts = [0, 0]
    _readany = aiohttp.streams.StreamReader.readany

    async def readany(self):
        data = await _readany(self)
        _counts[0] += 1
        _counts[1] += len(data)
        return data

    aiohttp.streams.StreamReader.readany = readany
    _path = os.path.join(os.environ["PPD_COUNT_READS_DIR"], f"{os.getpid()}.txt")

    def _dump():
        while True:
            time.sleep(0.2)
            with open(_path + ".tmp", "w") as out:
                out.write(f"{_counts[0]} {_counts[1]}")
            os.replace(_path + ".tmp", _path)

    threading.Thread(target=_dump, daemon=True).start()
"""


def read_counts(counts_dir: Path, pid: int) -> tuple[int, int]:
    """(readany calls, bytes) of a process so far, as its counter last wrote them."""
    time.sleep(0.5)  # the counter writes every 0.2 s
    reads, num_bytes = (counts_dir / f"{pid}.txt").read_text().split()
    return int(reads), int(num_bytes)


def idle_cpu_rate(pid: int, seconds: float = 2.0) -> float:
    """The proxy's CPU seconds per second with nothing to serve (health checks, timers)."""
    before = cpu_s(pid) or 0.0
    time.sleep(seconds)
    return ((cpu_s(pid) or 0.0) - before) / seconds


def run_point(
    args: argparse.Namespace, shape: str, qps: float, proxy_url: str, proxy_pid: int, counts: Path, work: Path
) -> dict[str, float]:
    """One bench run through the proxy: its requests, tokens, reads and CPU (idle rate taken off)."""
    idle_rate = idle_cpu_rate(proxy_pid)
    reads_before, bytes_before = read_counts(counts, proxy_pid)
    name = f"relay-{shape.replace('/', 'x')}-q{qps:g}-{time.monotonic_ns()}"
    cpu_before, started_s = cpu_s(proxy_pid) or 0.0, time.perf_counter()
    subprocess.run(
        ppd_command("bench", "--url", proxy_url, "--workload", shape, "--turns", "1", "--qps", f"{qps:g}",
                    "--duration", str(args.duration_s), "--modes", "replication", "--runs", "1",
                    "--seed", "0",
                    "--drain-timeout-s", "60", "--output", str(work), "--name", name, "--quiet"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(work), check=True,
    )  # fmt: skip
    wall_s = time.perf_counter() - started_s
    cpu = (cpu_s(proxy_pid) or 0.0) - cpu_before - idle_rate * wall_s
    reads_after, bytes_after = read_counts(counts, proxy_pid)
    rows = [json.loads(line) for line in (work / f"{name}.jsonl").open()]
    return {
        "requests": float(sum(1 for row in rows if row["ok"])),
        "tokens": float(sum(row.get("output_tokens") or 0 for row in rows)),
        "reads": float(reads_after - reads_before),
        "bytes": float(bytes_after - bytes_before),
        "cpu_s": cpu,
        "wall_s": wall_s,
        "idle_pct": 100 * idle_rate,
    }


def child_env(work: Path) -> dict[str, str]:
    """This checkout's src/ and the read counter on PYTHONPATH; counting on."""
    paths = [str(work / "site"), str(SRC), os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths)),
            "PPD_COUNT_READS_DIR": str(work / "counts")}  # fmt: skip


def fit(points: list[dict[str, float]]) -> tuple[np.ndarray, list[float]]:
    """(request_us, wake_us, read_us, token_us) by least squares, and each point's relative residual."""
    design = np.array(
        [[p["requests"], p["steps"], p["reads"], max(0.0, p["tokens"] - p["reads"])] for p in points]
    )
    cpu = np.array([p["cpu_s"] for p in points])
    coefficients = np.linalg.lstsq(design, cpu, rcond=None)[0]
    residuals = [(float(model) - c) / c for model, c in zip(design @ coefficients, cpu, strict=True)]
    return coefficients * 1e6, residuals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topology", default="2p2d")
    parser.add_argument("--points", default=DEFAULT_POINTS, help="IN/OUT@QPS,... (single-turn shapes)")
    parser.add_argument("--duration-s", type=float, default=8.0)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--write", action="store_true", help=f"store the fit in {PROXY_CPU_JSON}")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="proxy-relay-cost-"))
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(COUNTER)
    (work / "counts").mkdir()
    measured: list[dict[str, float]] = []
    with sim_deployment("proxy_relay_cost", args.topology, "replication", work, child_env(work)) as (
        proxy_url,
        processes,
    ):
        proxy_pid = next(int(record["pid"]) for record in processes if record["role"] == "proxy")
        engines = [record["url"] for record in processes if record["role"] != "proxy"]
        for _ in range(args.reps):
            for spec in args.points.split(","):
                shape, qps = spec.split("@")
                for engine in engines:  # the drift figures restart; the step counts do not
                    reset = urllib.request.Request(engine + "/ppd/stats/reset", method="POST")
                    urllib.request.urlopen(reset, timeout=10)
                steps_before = sum(engine_stats(engine)["num_steps"] for engine in engines)
                point = run_point(args, shape, float(qps), proxy_url, proxy_pid, work / "counts", work)
                stats = [engine_stats(engine) for engine in engines]
                point["steps"] = float(sum(stat["num_steps"] for stat in stats) - steps_before)
                point["drift_max_ms"] = max(float(stat["max_drift_ms"]) for stat in stats)
                measured.append(point)
                print(
                    f"relay_point shape={shape} qps={qps} requests={point['requests']:.0f} "
                    f"tokens={point['tokens']:.0f} steps={point['steps']:.0f} reads={point['reads']:.0f} "
                    f"bytes={point['bytes']:.0f} "
                    f"proxy_cpu_s={point['cpu_s']:.3f} wall_s={point['wall_s']:.1f} "
                    f"cpu_pct={100 * point['cpu_s'] / point['wall_s']:.0f} idle_pct={point['idle_pct']:.1f} "
                    f"us_per_token={1e6 * point['cpu_s'] / max(1.0, point['tokens']):.1f} "
                    f"sim_max_drift_ms={point['drift_max_ms']:.1f}",
                    flush=True,
                )
    (request_us, wake_us, read_us, token_us), residuals = fit(measured)
    for point, residual in zip(measured, residuals, strict=True):
        print(
            f"relay_residual requests={point['requests']:.0f} reads={point['reads']:.0f} rel={residual:+.3f}"
        )
    print(
        f"proxy_relay_cost request_us={request_us:.1f} wake_us={wake_us:.1f} read_us={read_us:.2f} "
        f"token_us={token_us:.2f} "
        f"points={len(measured)} max_rel_residual={max(abs(r) for r in residuals):.3f}"
    )
    if args.write:
        write_fit(args, request_us, wake_us, read_us, token_us)
    return 0


def engine_stats(url: str) -> dict[str, Any]:
    """The sim's counters since the last reset (steps, drift behind its schedule)."""
    with urllib.request.urlopen(url + "/ppd/stats", timeout=10) as answer:
        return dict(json.loads(answer.read()))


def write_fit(
    args: argparse.Namespace, request_us: float, wake_us: float, read_us: float, token_us: float
) -> None:
    """proxy_cpu.json: the fit and how it was made."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    source = (
        f"benchmarks/proxy_relay_cost.py --topology {args.topology} --points {args.points} "
        f"--duration-s {args.duration_s:g} --reps {args.reps}, {when}: least squares over the proxy's CPU "
        "(utime+stime, idle rate taken off) per bench run = request_us*requests + wake_us*engine steps "
        "+ read_us*readany calls "
        "+ token_us*(tokens - reads); one ppd proxy process, ppd sim engines at time scale 1, this machine"
    )
    data = {"request_us": round(max(0.0, request_us), 1), "wake_us": round(max(0.0, wake_us), 1),
            "read_us": round(max(0.0, read_us), 2),
            "token_us": round(max(0.0, token_us), 2), "source": source}  # fmt: skip
    PROXY_CPU_JSON.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {PROXY_CPU_JSON}")


if __name__ == "__main__":
    sys.exit(main())
