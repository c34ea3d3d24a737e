"""`ppd plan`: which deployment of N GPUs serves a workload best within its SLOs (docs/plan.md).

    ppd plan --gpus 8 --workload W1 --slo-ttft-ms 500 --slo-tpot-ms 50 --output results/plan-8gpu/W1

Every deployment of N engines (nR; every xPyD split for pd and ppd; auto on each) is simulated by
`ppd fleet` at the rates a search picks, to find the highest conversation rate each sustains with
>= 90% of turns within both SLOs; deployments are ranked by that rate per GPU. Prints the ranking and
the `ppd up` command of the winner; writes plan.json, plan.md and plan.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ppd.cliflags import (
    add_conversation_arguments,
    add_hops_argument,
    add_profile_argument,
    add_proxy_arguments,
    check_at_least_one,
    check_profile,
    parse_mode_list,
)
from ppd.errors import UsageError
from ppd.modes import MODES

if TYPE_CHECKING:
    from ppd.plan.deployments import Deployment
    from ppd.plan.evaluate import FleetEvaluator
    from ppd.plan.search import SearchConfig

_DEFAULT_WORKERS = max(1, min(2, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ppd plan`."""
    add = parser.add_argument
    add("--gpus", type=int, required=True, help="engines to deploy (one GPU each)")
    add(
        "--workload",
        required=True,
        help="W1, W2, W3, W4, IN/OUT (e.g. 1000/50), a conversation file, or a trace (mooncake:FILE, "
        "azure:FILE; its rates are request rates)",
    )
    add("--window", default=None, help="a trace's slice START:END in s of the trace (default: all of it)")
    add(
        "--max-model-len",
        type=int,
        default=None,
        help="engines' context in tokens (default: the workload's longest conversation, at least the "
        "profile's); a trace's longer requests are skipped",
    )
    add("--slo-ttft-ms", type=float, required=True, help="time-to-first-token objective per turn (ms)")
    add("--slo-tpot-ms", type=float, required=True, help="time-per-output-token objective per turn (ms)")
    add_profile_argument(add)
    add(
        "--deployments",
        default=None,
        help="plan only these topologies, e.g. 4r,1p3d,2p2d (default every one of --gpus)",
    )
    add(
        "--max-num-seqs",
        type=int,
        default=256,
        help="most requests in an engine's running batch, as vLLM's --max-num-seqs (default 256; vLLM "
        "picks 1024 on an H200)",
    )
    add(
        "--kv-cache-tokens",
        type=int,
        default=None,
        help="KV-cache capacity per engine in tokens (default: the profile's memory model at vLLM's default "
        "0.9 memory share; `ppd up` starts vLLM at 0.85)",
    )
    add_hops_argument(add)
    add_proxy_arguments(add)
    _add_search_arguments(add)
    add("--output", type=Path, default=Path("plan"), help="directory for plan.json, plan.md, plan.png")
    add("--workers", type=int, default=_DEFAULT_WORKERS, help=f"processes (default {_DEFAULT_WORKERS})")
    add("--quiet", action="store_true", help="no live progress")


# One flag per line reads better than one keyword per line.
# fmt: off
def _add_search_arguments(add: Callable[..., object]) -> None:
    add("--modes", default="pd,ppd,replication,auto", help="modes to plan with (default all four)")
    add_conversation_arguments(add)
    add("--target-attainment", type=float, default=0.9, help="share of turns within the SLOs (default 0.9)")
    add("--tolerance", type=float, default=0.1,
        help="stop the search when [pass, fail) is narrower than this share of its lower end (default 0.1)")
    add("--start-qps-per-gpu", type=float, default=1.0, help="first rate tried, per GPU (default 1)")
    add("--max-qps", type=float, default=1000.0, help="highest rate tried (default 1000)")
    add("--conversations", type=int, default=200, help="conversations offered per evaluation (default 200)")
    add("--min-window-s", type=float, default=5.0, help="shortest arrival window (simulated s, default 5)")
    add("--refine-all", action="store_true",
        help="refine every deployment to --tolerance, not only those that could still win")
    add("--drain-s", type=float, default=20.0,
        help="simulated s after the window before unfinished turns are cut off as misses (default 20)")
# fmt: on


def run(args: argparse.Namespace) -> int:
    """Search every deployment, print the ranking and the winner's `ppd up`, write the outputs."""
    from rich.console import Console

    from ppd.plan.output import PlanSummary, plan_json, plan_markdown, plot_goodput, terminal_table
    from ppd.plan.progress import LiveProgress, QuietProgress
    from ppd.plan.ranking import rank
    from ppd.plan.runner import Reporter, run_plan

    evaluator, deployments, search = _build(args)
    settings = {
        "modes": args.modes,
        "deployments": args.deployments or "all",
        "max_num_seqs": evaluator.max_num_seqs,
        "kv_cache_tokens": evaluator.kv_cache_tokens or "profile",
        "max_model_len": evaluator.engine_max_model_len() or "profile",
        **({"window": args.window or "all", "rates": "trace requests/s"} if evaluator.is_trace else {}),
        "turns": args.turns,
        "think_time_s": args.think_time_s,
        "seed": args.seed,
        "start_qps_per_gpu": args.start_qps_per_gpu,
        "max_qps": args.max_qps,
        "conversations_per_run": "the whole slice" if evaluator.is_trace else evaluator.conversations,
        "window_s": "the slice's replay time at the rate"
        if evaluator.is_trace
        else f"conversations/qps in [{evaluator.min_window_s:g}, {evaluator.max_window_s:g}]",
        "warmup": f"first {evaluator.warmup_fraction:.0%} of the window",
        "drain_s": evaluator.drain_s,
        "workers": args.workers,
        "refined": "every deployment" if args.refine_all else "contenders",
        "hops": f"{args.hops} ({evaluator.hops.source.split(': ', 1)[0]})",
        "proxy_cpu": f"{args.proxy_cpu} ({evaluator.proxy_cpu.source.split(': ', 1)[0]})",
        "proxy_processes": evaluator.proxy_processes,
    }
    console = Console(stderr=True)
    started_s = time.perf_counter()
    progress: LiveProgress | QuietProgress
    progress = QuietProgress() if args.quiet else LiveProgress(deployments, search.target_attainment, console)
    reporter: Reporter = progress
    # The live bar draws only inside its context; the quiet reporter needs none.
    with progress if isinstance(progress, LiveProgress) else contextlib.nullcontext():
        planned = run_plan(
            evaluator,
            deployments,
            search,
            args.start_qps_per_gpu,
            args.workers,
            reporter,
            refine_all=args.refine_all,
        )
    summary = PlanSummary(
        num_gpus=args.gpus,
        workload=args.workload,
        slo_ttft_ms=args.slo_ttft_ms,
        slo_tpot_ms=args.slo_tpot_ms,
        profile=args.profile,
        target_attainment=search.target_attainment,
        tolerance=search.tolerance,
        settings=settings,
        command=shlex.join(["ppd", "plan", *sys.argv[2:]]) if sys.argv[1:2] == ["plan"] else "ppd plan",
        ranked=rank(planned),
        wall_s=time.perf_counter() - started_s,
        trace=evaluator.is_trace,
    )
    out = Console(width=None if sys.stdout.isatty() else 160)  # a log or pipe gets the whole table
    out.print(terminal_table(summary))
    out.print(f"winner: {summary.winner.deployment.label}\n  {summary.winner_command()}")
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "plan.json").write_text(json.dumps(plan_json(summary), indent=1) + "\n")
    plot = plot_goodput(summary, args.output / "plan.png")
    (args.output / "plan.md").write_text(plan_markdown(summary, plot.name))
    print(f"ppd plan: {args.output / 'plan.md'}, plan.json, plan.png ({summary.wall_s:.0f} s)")
    return 0


def _build(args: argparse.Namespace) -> tuple[FleetEvaluator, list[Deployment], SearchConfig]:
    """The evaluator, the deployments and the search, from the flags; UsageError on bad ones."""
    from ppd.bench.metrics import Slo
    from ppd.bench.workloads import parse_workloads
    from ppd.fleet.config import hops_from_spec
    from ppd.fleet.proxy_loop import proxy_cpu_from_spec
    from ppd.plan.deployments import enumerate_deployments, restrict_to_topologies
    from ppd.plan.evaluate import FleetEvaluator
    from ppd.plan.search import SearchConfig
    from ppd.traces.replay import parse_window

    check_at_least_one(
        {
            name: getattr(args, name)
            for name in ("gpus", "turns", "conversations", "workers", "max_num_seqs", "proxy_processes")
        }
    )
    for name in ("slo_ttft_ms", "slo_tpot_ms", "start_qps_per_gpu", "max_qps", "min_window_s", "drain_s"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0")
    if args.think_time_s < 0:
        raise UsageError("--think-time-s must be >= 0")
    if args.kv_cache_tokens is not None and args.kv_cache_tokens < 1:
        raise UsageError("--kv-cache-tokens must be >= 1")
    if args.max_model_len is not None and args.max_model_len < 1:
        raise UsageError("--max-model-len must be >= 1")
    window = parse_window(args.window) if args.window is not None else None
    workloads = parse_workloads(args.workload, args.turns, window)
    if len(workloads) != 1:
        raise UsageError("--workload: give one workload (W1..W4, IN/OUT, a conversation file or a trace)")
    if window is not None and workloads[0].trace is None:
        raise UsageError("--window applies to a trace workload (mooncake:FILE, azure:FILE)")
    check_profile(args.profile)
    modes = parse_mode_list(args.modes)
    if not modes:
        raise UsageError(f"--modes: give at least one of {', '.join(MODES)}")
    try:
        deployments = enumerate_deployments(args.gpus, modes)
        if args.deployments is not None:
            deployments = restrict_to_topologies(deployments, tuple(args.deployments.split(",")))
        search = SearchConfig(
            start_qps=min(args.max_qps, args.start_qps_per_gpu * args.gpus),
            target_attainment=args.target_attainment,
            tolerance=args.tolerance,
            min_qps=min(0.05, args.start_qps_per_gpu),
            max_qps=args.max_qps,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not deployments:
        raise UsageError(f"no deployment of {args.gpus} GPUs in modes {args.modes} (pd and ppd need >= 2)")
    evaluator = FleetEvaluator(
        workload=workloads[0],
        slo=Slo(args.slo_ttft_ms, args.slo_tpot_ms),
        profile=args.profile,
        conversations=args.conversations,
        min_window_s=args.min_window_s,
        drain_s=args.drain_s,
        think_time_s=args.think_time_s,
        seed=args.seed,
        max_num_seqs=args.max_num_seqs,
        kv_cache_tokens=args.kv_cache_tokens,
        max_model_len=args.max_model_len,
        hops=hops_from_spec(args.hops),
        proxy_cpu=proxy_cpu_from_spec(args.proxy_cpu),
        proxy_processes=args.proxy_processes,
    )
    return evaluator, deployments, search
