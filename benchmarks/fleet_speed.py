"""How fast `ppd fleet` simulates, and whether its memory stays flat as simulated time grows.

One simulated hour of W1 (2 turns) at 16 conversations/s on 4p4d in pd mode and on 8r in
replication mode, each in its own process (one core), rows counted as they come and not kept (as
`ppd.fleet.slo_attainment` does). Resident memory is sampled along the simulated hour; flat means
the last quarter's figure is close to the first quarter's. Ends with

    fleet_speed sim_hours=1 conv_per_s=16 instances=8 wall_s=W rss_mib=M

W is the slower of the two runs, M the larger peak resident memory. Goal: W <= 60 s.

With --baseline-src PATH (the src/ of another checkout, e.g. `git worktree add /tmp/base COMMIT`),
the same runs go through that code too, alternating with this checkout's, and a line
`fleet_speed_baseline ...` gives its figures; both in the same session. With --compiled-src PATH
(the opt-in mypyc build of this checkout, `python tools/build_compiled.py`, which puts it in
build/compiled), the runs go through it as well, and the line `fleet_speed_pure ...` gives the
pure-Python figures. Every child reports the build it loaded (ppd.buildinfo), and the last line ends
with `build=mypyc` when the compiled build was measured, `build=pure` otherwise.

    python benchmarks/fleet_speed.py [--sim-s 3600] [--qps 16] [--baseline-src PATH] [--compiled-src PATH]
                                     [--only 4p4d|8r]

--only runs one of the two topologies (a shorter exclusive lock; the last line then names it and is not
the goal's figure, which is the slower of both).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
if "--src" in sys.argv:  # a child simulating another checkout's code (--baseline-src)
    SRC = Path(sys.argv[sys.argv.index("--src") + 1])
sys.path.insert(0, str(SRC))

RUNS = (("4p4d", "pd"), ("8r", "replication"))
PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_MIB


def child(topology: str, mode: str, sim_s: float, qps: float) -> dict[str, object]:
    """Simulate one run here; the figures as a dict."""
    import ppd
    from ppd.bench.workloads import builtin_workload
    from ppd.fleet import FleetConfig, fleet_topology, simulate
    from ppd.fleet.run import AttainmentCounter, peak_rss_mib
    from ppd.results import TurnRow

    config = FleetConfig(
        fleet_topology(topology),
        mode,
        builtin_workload("W1", 2),
        qps=qps,
        duration_s=sim_s,
        drain_timeout_s=60.0,
    )
    counter = AttainmentCounter(config)
    samples: list[tuple[float, float]] = []  # (simulated s, RSS MiB)
    next_sample_s = [0.0]

    def on_row(row: TurnRow) -> None:
        counter(row)
        if row.sent_s is not None and row.sent_s >= next_sample_s[0]:
            samples.append((row.sent_s, rss_mib()))
            next_sample_s[0] += sim_s / 12

    started_s, started_cpu_s = time.perf_counter(), time.process_time()
    run = simulate(config, on_row=on_row)
    wall_s, cpu_s = time.perf_counter() - started_s, time.process_time() - started_cpu_s
    return {
        "build": loaded_build(),
        "package": str(Path(ppd.__file__).parent),
        "topology": topology,
        "mode": mode,
        "wall_s": wall_s,
        "cpu_s": cpu_s,  # below wall_s when something else had the core
        "turns": counter.num_sent,
        "events": run.num_events,
        "conversations": run.run_info.num_conversations,
        "peak_rss_mib": peak_rss_mib(),
        "rss_samples": samples,
    }


def loaded_build() -> str:
    """`pure`, or `mypyc` with its compiled modules as loaded (ppd.buildinfo; a checkout older than
    it is pure)."""
    try:
        from ppd.buildinfo import build_info
    except ImportError:
        return "pure"
    info = build_info()
    if info["variant"] == "pure":
        return "pure"
    import importlib

    loaded = [
        name for name in info["modules"] if not str(importlib.import_module(name).__file__).endswith(".py")
    ]
    return f"{info['variant']}({len(loaded)}/{len(info['modules'])} modules compiled)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sim-s", type=float, default=3600.0, help="simulated arrival window (default 3600)")
    parser.add_argument("--qps", type=float, default=16.0, help="conversations/s (default 16)")
    parser.add_argument("--baseline-src", type=Path, help="also run another checkout's src/, to compare")
    parser.add_argument(
        "--compiled-src", type=Path, help="also run this checkout's compiled build (tools/build_compiled.py)"
    )
    parser.add_argument("--only", choices=[topology for topology, _ in RUNS], help="one topology only")
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("TOPOLOGY", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.sim_s, args.qps)))
        return 0
    for flag, src in (("--baseline-src", args.baseline_src), ("--compiled-src", args.compiled_src)):
        if src is not None and not (src / "ppd" / "fleet").is_dir():
            print(f"fleet_speed: {flag} {src} has no ppd/fleet package", file=sys.stderr)
            return 2
    sources = {"baseline": args.baseline_src, "pure": SRC, "mypyc": args.compiled_src}
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in sources}
    for topology, mode in RUNS:
        if args.only is not None and topology != args.only:
            continue
        for label, src in sources.items():
            if src is None:
                continue
            result = run_child(topology, mode, args.sim_s, args.qps, src)
            if label != "baseline" and not str(result["build"]).startswith(label):
                print(f"fleet_speed: {src} loaded build {result['build']}, not {label}", file=sys.stderr)
                return 1
            results[label].append(result)
            print_run(label, result, args.sim_s)
    figures = f"sim_hours={args.sim_s / 3600:g} conv_per_s={args.qps:g} instances=8"
    if args.only is not None:
        figures += f" only={args.only}"
    for label in ("baseline", "pure"):
        if results[label] and (label == "baseline" or results["mypyc"]):
            wall_s, peak = worst(results[label])
            print(
                f"fleet_speed_{label} src={sources[label]} {figures} wall_s={wall_s:.1f} rss_mib={peak:.0f}"
            )
    best = "mypyc" if results["mypyc"] else "pure"
    wall_s, peak = worst(results[best])
    print(f"fleet_speed {figures} wall_s={wall_s:.1f} rss_mib={peak:.0f} build={best}")
    return 0


def run_child(topology: str, mode: str, sim_s: float, qps: float, src: Path) -> dict[str, object]:
    """One run in a fresh process (one core) on the code under src."""
    command = [sys.executable, __file__, "--child", topology, mode, "--sim-s", str(sim_s), "--qps", str(qps)]
    done = subprocess.run([*command, "--src", str(src)], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def print_run(label: str, result: dict[str, Any], sim_s: float) -> None:
    samples = result["rss_samples"]
    quarter = max(1, len(samples) // 4)
    early = sum(rss for _, rss in samples[:quarter]) / quarter
    late = sum(rss for _, rss in samples[-quarter:]) / quarter
    print(
        f"[{label}: {result['build']}] {result['topology']} {result['mode']}: "
        f"{result['conversations']} conversations, "
        f"{result['turns']} turns, {result['events']} events in {result['wall_s']:.1f} s wall "
        f"({result['cpu_s']:.1f} s CPU) "
        f"({sim_s / result['wall_s']:.1f}x real time); RSS first quarter {early:.0f} MiB, "
        f"last quarter {late:.0f} MiB, peak {result['peak_rss_mib']:.0f} MiB"
    )
    print("  RSS along simulated time: " + ", ".join(f"{t:.0f}s:{rss:.0f}" for t, rss in samples))


def worst(results: list[dict[str, Any]]) -> tuple[float, float]:
    """The slower run's wall seconds and the larger peak RSS."""
    return max(float(r["wall_s"]) for r in results), max(float(r["peak_rss_mib"]) for r in results)


if __name__ == "__main__":
    sys.exit(main())
