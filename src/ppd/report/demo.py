"""`ppd demo [--out DIR] [--quick]`: the whole PD / PPD / replication comparison on sim engines.

Starts one prefill and one decode sim engine (which also serve as the two replicas) and the proxy,
measures the three modes on W1–W4 at a few loads, writes the results and the report, prints the key
tables, and stops everything it started — also on Ctrl-C or an error.

The sims run at a time scale (default 0.1): every modeled GPU duration is multiplied by it, so the
demo's latencies are ~0.1x and its loads ~10x those of the modeled 2x H100; HTTP and Python
overheads are not scaled. Loads are chosen per workload to go from light to near saturation of the
1P1D pair while staying within what a 2-core machine's client can offer on time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ppd.errors import UsageError
from ppd.modes import Mode

if TYPE_CHECKING:
    from ppd.report.build import Report

Progress = Callable[[str], None]

MODES: tuple[Mode, ...] = ("pd", "ppd", "replication")
TOPOLOGY = "1p1d"
# W4's second turn holds 8192 + 64 + 8192 tokens, over the sim profile's default 16384.
SIM_ARGS = ("--max-model-len", "32768")
# SLOs of the modeled GPUs (ms); the demo scales them with the time scale, like every duration.
SLO_TTFT_MS = 1000.0
SLO_TPOT_MS = 50.0


@dataclass(frozen=True)
class DemoPlan:
    """What the demo measures: offered loads per workload (conversations/s), run length and count."""

    qps_by_workload: dict[str, tuple[float, ...]]
    duration_s: float
    runs: int
    turns: int = 2

    @property
    def num_runs(self) -> int:
        """Runs in total: every workload x QPS x repetition x mode."""
        return sum(len(q) for q in self.qps_by_workload.values()) * self.runs * len(MODES)


FULL_PLAN = DemoPlan(
    qps_by_workload={
        "W1": (2.0, 8.0, 20.0),
        "W2": (2.0, 8.0, 24.0),
        "W3": (1.0, 4.0, 10.0),
        "W4": (2.0, 8.0, 24.0),
    },
    duration_s=4.0,
    runs=1,
)
QUICK_PLAN = DemoPlan(qps_by_workload={"W1": (2.0, 16.0), "W4": (2.0, 16.0)}, duration_s=2.0, runs=1)


@dataclass(frozen=True)
class DemoConfig:
    """Where the demo writes, what it measures, and how fast the sims run."""

    out_dir: Path
    plan: DemoPlan
    time_scale: float
    seed: int
    live_progress: bool  # the bench's live display (a terminal); plain lines otherwise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ppd demo`."""
    parser.add_argument("--out", type=Path, default=Path("demo-out"), metavar="DIR",
                        help="where results/, report/ and logs/ go (default: demo-out)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="W1 and W4 at two loads, 2 s runs: about 25 s, not 3 minutes")  # fmt: skip
    parser.add_argument("--runs", type=int, default=None,
                        help="repetitions of every point (default 1)")  # fmt: skip
    parser.add_argument("--time-scale", type=float, default=0.1,
                        help="sim time scale: modeled durations x this (default 0.1)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="arrival and prompt seed (default 0)")


def build_config(args: argparse.Namespace) -> DemoConfig:
    """A DemoConfig from parsed arguments; UsageError on bad values."""
    if not 0 < args.time_scale <= 10:
        raise UsageError(f"--time-scale must be in (0, 10], got {args.time_scale}")
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    if args.runs is not None:
        if args.runs < 1:
            raise UsageError(f"--runs must be >= 1, got {args.runs}")
        plan = replace(plan, runs=args.runs)
    return DemoConfig(args.out, plan, args.time_scale, args.seed, live_progress=sys.stderr.isatty())


def run(args: argparse.Namespace) -> int:
    """Run the demo; the report's key tables go to stdout."""
    config = build_config(args)
    started_s = time.perf_counter()
    report = run_demo(config, say)
    from ppd.report.summary import crossover_section, key_results

    print()
    print(
        "\n".join(
            [*key_results(report.merged), "### Crossover points", "", *crossover_section(report.crossover)]
        )
    )
    say(f"summary: {report.summary_md}")
    say(f"plots: {', '.join(str(p) for p in report.plots)}")
    say(f"done in {time.perf_counter() - started_s:.0f} s")
    return 0


def say(line: str) -> None:
    """One progress line on stdout."""
    print(f"ppd demo: {line}", flush=True)


def run_demo(config: DemoConfig, progress: Progress = say) -> Report:
    """Start the sims and proxy, measure every mode, stop everything, and build the report."""
    from ppd.launch.deploy import sim_up_config, start
    from ppd.report.build import build_report
    from ppd.report.inputs import read_result_file

    plan = config.plan
    progress(
        f"starting {TOPOLOGY} sim engines (time scale {config.time_scale:g}) and the proxy; "
        f"then {plan.num_runs} runs of ~{plan.duration_s:g} s"
    )
    up_config = sim_up_config(
        TOPOLOGY,
        logs_dir=config.out_dir / "logs",
        state_path=config.out_dir / "deployment.json",
        time_scale=config.time_scale,
        sim_args=SIM_ARGS,
    )
    with start(up_config, progress=lambda line: progress(f"  {line}")) as deployment:
        if deployment.proxy_url is None:
            raise UsageError("the demo deployment started no proxy")
        result_paths = [
            _bench_workload(config, deployment.proxy_url, workload, qps, progress)
            for workload, qps in plan.qps_by_workload.items()
        ]
        progress("stopping the engines and the proxy")
    progress("building the report")
    inputs = [read_result_file(path) for path in result_paths]
    return build_report(inputs, config.out_dir / "report", notes=[time_scale_note(config.time_scale)])


def _bench_workload(
    config: DemoConfig, proxy_url: str, workload: str, qps: tuple[float, ...], progress: Progress
) -> Path:
    from ppd.bench.config import BenchConfig
    from ppd.bench.metrics import Slo
    from ppd.bench.runner import run_bench
    from ppd.bench.workloads import builtin_workload

    plan = config.plan
    progress(
        f"measuring {workload} at {', '.join(f'{q:g}' for q in qps)} conversations/s, "
        f"modes {', '.join(MODES)}"
    )
    bench_config = BenchConfig(
        url=proxy_url,
        workloads=(builtin_workload(workload, plan.turns),),
        qps=qps,
        duration_s=plan.duration_s,
        runs=plan.runs,
        modes=MODES,
        seed=config.seed,
        slo=Slo(ttft_ms=SLO_TTFT_MS * config.time_scale, tpot_ms=SLO_TPOT_MS * config.time_scale),
        output_dir=config.out_dir / "results",
        drain_timeout_s=max(30.0, 60.0 * config.time_scale),
        request_timeout_s=max(60.0, 600.0 * config.time_scale),
        quiet=not config.live_progress,
    )
    return run_bench(bench_config)


def time_scale_note(time_scale: float) -> str:
    """What the demo's units mean, for summary.md."""
    return (
        f"Measured by `ppd demo` on ppd sim engines ({TOPOLOGY}; the two engines also serve as the replicas) "
        f"at time scale {time_scale:g}: every modeled GPU duration is multiplied by {time_scale:g}, so "
        f"latencies are ~{time_scale:g}x and loads ~{1 / time_scale:g}x those of the modeled 2x H100 "
        "(HTTP and Python overheads are not scaled). SLOs: "
        f"TTFT ≤ {SLO_TTFT_MS:g} ms and TPOT ≤ {SLO_TPOT_MS:g} ms on the modeled GPU, scaled likewise."
    )
