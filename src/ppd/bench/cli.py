"""`ppd bench`: open-loop multi-turn load against a proxy, a vLLM server or a sim; one row per turn.

    ppd bench --url http://localhost:10001 --workload W1 --qps 0.5,1,2 --duration 60 --runs 3 \\
        --modes pd,ppd,replication --output results/
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ppd.bench.config import BenchConfig, validate
from ppd.bench.metrics import Slo
from ppd.cliflags import (
    add_conversation_arguments,
    add_drain_timeout_argument,
    check_at_least_one,
    parse_mode_list,
)
from ppd.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's options."""
    add = parser.add_argument
    add("--url", required=True, help="base URL of the proxy / vLLM server / sim")
    _add_load_arguments(add)
    _add_output_arguments(add)
    _add_client_arguments(add)


# One flag per line reads better than one keyword per line.
# fmt: off
def _add_load_arguments(add: Callable[..., object]) -> None:
    add("--workload", default="W1", help="W1 (512 in/256 out), W2 (4096/128), W3 (256/1024), W4 (8192/64), "
        "all, IN/OUT (e.g. 1000/50), a ShareGPT-style conversation file, or a trace to replay: "
        "mooncake:FILE, azure:FILE; comma-separated (default W1)")
    add("--qps", "--rate", dest="qps", default=None, help="conversation arrival rates per s, comma-separated "
        "(default 1); for a trace: its mean request rates (the trace's times are scaled to each)")
    add("--speedup", default=None, help="trace replay speedups, comma-separated, instead of --rate "
        "(default 1: the trace's own times)")
    add("--window", default=None, help="trace slice START:END in s of the trace (default: all of it)")
    add("--duration", "--duration-s", dest="duration_s", type=float, default=None,
        help="arrival window of each run in s, warmup included (default 60; a trace's is its window)")
    add("--runs", type=int, default=1, help="runs per mode x workload x qps (default 1)")
    add("--modes", default="", help="proxy modes to compare, e.g. pd,ppd,replication, set by POST "
        "/mode/<m> before each run (default: measure the URL as it is)")
    add_conversation_arguments(add)
    add("--arrivals", choices=("poisson", "constant"), default="poisson", help="arrival process")
    add("--warmup-s", type=float, default=0.0, help="turns sent in the first S s are not summarised")
    add("--slo-ttft-ms", type=float, default=None, help="TTFT objective for goodput")
    add("--slo-tpot-ms", type=float, default=None, help="TPOT objective for goodput")


def _add_output_arguments(add: Callable[..., object]) -> None:
    add("--output", type=Path, default=Path("results"), help="result directory (default results/)")
    add("--name", default=None, help="result set name (default bench-<utc>-<workloads>)")
    add("--append", action="store_true", help="add runs to the existing set --name")
    add("--quiet", action="store_true", help="no live progress and no final table (for CI)")


def _add_client_arguments(add: Callable[..., object]) -> None:
    add("--api", choices=("completions", "chat"), default="completions", help="OpenAI API to use")
    add("--model", default=None, help="model name (default: the first of GET /v1/models)")
    add("--no-session-id", action="store_true",
        help="do not send X-Session-ID (the proxy must recognise conversations by history)")
    add("--request-timeout-s", type=float, default=600.0, help="per-request limit (default 600)")
    add_drain_timeout_argument(add)
    add("--admin-token", default=None, help="Bearer token for the proxy's admin endpoints")
    add("--prompt-salt", default=None, help="fixed prompt salt (default: random per invocation)")
    add("--max-connections", type=int, default=0, help="client connection limit (0: unlimited)")
    add("--no-uvloop", action="store_true", help="use the plain asyncio event loop")
    add("--temperature", type=float, default=None, help="sampling temperature sent with every turn; 0 is "
        "greedy (use it on dummy weights, see docs/bench.md) (default: not sent, the server's default)")
# fmt: on


def run(args: argparse.Namespace) -> int:
    """Build the config, run every point, print the result path."""
    from ppd.bench.runner import run_bench

    path = run_bench(build_config(args))
    print(f"ppd bench: results in {path}")
    return 0


def build_config(args: argparse.Namespace) -> BenchConfig:
    """The typed config from parsed arguments; UsageError on bad values."""
    from ppd.bench.workloads import parse_workloads  # numpy: only when running
    from ppd.traces.replay import parse_window

    check_at_least_one({"turns": args.turns})
    window = parse_window(args.window) if args.window is not None else None
    workloads = parse_workloads(args.workload, args.turns, window)
    _check_trace_flags(args, [workload.trace is not None for workload in workloads])
    config = BenchConfig(
        url=args.url,
        workloads=workloads,
        qps=parse_rates(args.qps or "1"),
        speedups=_speedups(args, any(workload.trace is not None for workload in workloads)),
        duration_s=args.duration_s if args.duration_s is not None else 60.0,
        runs=args.runs,
        modes=parse_mode_list(args.modes),
        think_time_s=args.think_time_s,
        seed=args.seed,
        warmup_s=args.warmup_s,
        slo=Slo(args.slo_ttft_ms, args.slo_tpot_ms),
        output_dir=args.output,
        name=args.name,
        append=args.append,
        api=args.api,
        model=args.model,
        send_session_id=not args.no_session_id,
        request_timeout_s=args.request_timeout_s,
        drain_timeout_s=args.drain_timeout_s,
        admin_token=args.admin_token,
        prompt_salt=args.prompt_salt,
        max_connections=args.max_connections,
        quiet=args.quiet,
        use_uvloop=not args.no_uvloop,
        poisson=args.arrivals == "poisson",
        temperature=args.temperature,
    )
    validate(config)
    return config


def _speedups(args: argparse.Namespace, has_trace: bool) -> tuple[float, ...]:
    """--speedup's values; a trace with neither --rate nor --speedup plays at its own pace (1)."""
    if args.speedup is not None:
        return parse_rates(args.speedup, "--speedup")
    return (1.0,) if has_trace and args.qps is None else ()


def _check_trace_flags(args: argparse.Namespace, is_trace: list[bool]) -> None:
    """Trace-only flags need a trace workload; --duration needs a synthetic one; --rate xor --speedup."""
    if not any(is_trace) and (args.speedup is not None or args.window is not None):
        raise UsageError("--speedup and --window apply to trace workloads (mooncake:FILE, azure:FILE)")
    if all(is_trace) and args.duration_s is not None:
        raise UsageError("--duration does not apply to a trace: pick its slice with --window START:END")
    if any(is_trace) and args.speedup is not None and args.qps is not None:
        raise UsageError("give a trace's pace as --rate or as --speedup, not both")


def parse_rates(text: str, flag: str = "--qps") -> tuple[float, ...]:
    """`0.5,1,2` -> (0.5, 1.0, 2.0); UsageError unless every value is a number > 0."""
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers > 0, e.g. 0.5,1,2") from None
    if not rates or any(rate <= 0 for rate in rates):
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers > 0, e.g. 0.5,1,2")
    return rates
