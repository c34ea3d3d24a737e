"""`ppd fleet`: simulate a topology in virtual time under a bench workload; writes a bench result set.

    ppd fleet --topology 3p5d --modes pd,ppd,replication,auto --workload W1 --qps 2,4,8 \\
        --duration 300 --slo-ttft-ms 500 --slo-tpot-ms 50 --output results/ --name fleet-3p5d

The load flags are `ppd bench`'s (same names, same meaning); the engine flags are `ppd sim`'s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ppd.cliflags import (
    add_drain_timeout_argument,
    add_hops_argument,
    add_profile_argument,
    add_proxy_arguments,
    check_at_least_one,
    check_profile,
    parse_mode_list,
)

if TYPE_CHECKING:  # the fleet itself is imported only when `ppd fleet` runs
    from ppd.bench.config import WorkloadSpec
    from ppd.fleet.config import FleetConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fleet's options: topology, the bench's load flags, engine and proxy options, output."""
    from ppd.bench.cli import _add_load_arguments  # the bench's own flags, so both read alike
    from ppd.proxy.cli import add_recognition_arguments

    add = parser.add_argument
    add("--topology", required=True, help="a `ppd up` spec (1p1d, 3p5d, 8r, 1p1d2r) or a TOML topology file")
    _add_load_arguments(add)
    _add_engine_arguments(add)
    add_recognition_arguments(add)  # the proxy's own flags: the fleet routes with its router
    _add_output_arguments(add)


# fmt: off
def _add_engine_arguments(add: Callable[..., object]) -> None:
    add_profile_argument(add)
    add("--kv-cache-tokens", type=int, default=None, help="KV-cache capacity per engine in tokens (profile)")
    add("--max-model-len", type=int, default=None, help="longest prompt + output, tokens (profile)")
    add("--block-size", type=int, default=16, help="tokens per KV block (default 16)")
    add("--max-num-batched-tokens", type=int, default=8192, help="token budget per step (default 8192)")
    add("--max-num-seqs", type=int, default=256, help="most requests in a running batch (default 256)")
    add("--kv-bandwidth-gbps", type=float, default=None, help="NIXL link GB/s (profile)")
    add("--special-token-rate", type=float, default=0.0, help="as `ppd sim` (0.002: dummy weights)")
    add("--api", choices=("completions", "chat"), default="completions", help="OpenAI API the bench uses")
    add("--no-pd-decode-affinity", action="store_true", help="as `ppd proxy`: pd turns 2+ to any D")
    add("--no-session-id", action="store_true",
        help="as `ppd bench`: send no X-Session-ID; the router recognises conversations by their prompts")
    add("--route-slo-ttft-ms", type=float, default=None, help="the proxy's --slo-ttft-ms (auto routing)")
    add("--route-slo-tpot-ms", type=float, default=None, help="the proxy's --slo-tpot-ms (auto routing)")
    add_hops_argument(add)
    add_proxy_arguments(add)


def _add_output_arguments(add: Callable[..., object]) -> None:
    add_drain_timeout_argument(add)
    add("--record-itl", action="store_true", help="keep every inter-token gap in the rows (more memory)")
    add("--output", type=Path, default=Path("results"), help="result directory (default results/)")
    add("--name", default=None, help="result set name (default fleet-<utc>-<topology>-<workloads>)")
    add("--quiet", action="store_true", help="no table at the end")
# fmt: on


def run(args: argparse.Namespace) -> int:
    """Simulate every mode x workload x qps x run point, in the bench's order and handing on the
    kept-alive connections as one `ppd bench` does (fleet.sequence); write one result set; print its
    path."""
    from datetime import UTC, datetime

    from rich.console import Console

    from ppd.bench.progress import final_table
    from ppd.fleet.run import write_result_set
    from ppd.fleet.sequence import simulate_in_order

    configs = build_configs(args)
    runs = simulate_in_order(configs)
    name = args.name or default_name(args, datetime.now(UTC))
    path = write_result_set(runs, args.output, name)
    if not args.quiet:
        table = final_table([summary for fleet_run in runs for summary in fleet_run.summaries])
        table.title = f"ppd fleet {args.topology} (virtual time)"
        Console(width=160).print(table)
        wall_s = sum(fleet_run.wall_s for fleet_run in runs)
        print(f"ppd fleet: {len(runs)} runs simulated in {wall_s:.1f} s")
    print(f"ppd fleet: results in {path}")
    return 0


def default_name(args: argparse.Namespace, now: object) -> str:
    """fleet-<utc>-<topology>-<workloads>."""
    topology = Path(args.topology).stem if args.topology.endswith(".toml") else args.topology
    workloads = args.workload.replace(",", "-").replace("/", "x")
    return f"fleet-{now:%Y%m%dT%H%M%SZ}-{topology}-{workloads}"


def build_configs(args: argparse.Namespace) -> list[FleetConfig]:
    """One FleetConfig per mode x workload x qps x run, in the bench's order; UsageError on bad flags."""
    from ppd.bench.cli import _check_trace_flags
    from ppd.bench.metrics import Slo
    from ppd.bench.workloads import parse_workloads
    from ppd.fleet.config import EngineOptions, FleetConfig, fleet_topology, hops_from_spec, validate
    from ppd.fleet.proxy_loop import proxy_cpu_from_spec

    check_at_least_one({"turns": args.turns, "runs": args.runs, "proxy_processes": args.proxy_processes})
    modes = parse_mode_list(args.modes) or ("pd",)
    check_profile(args.profile)
    topology = fleet_topology(args.topology)
    engine = EngineOptions(
        profile=args.profile,
        kv_cache_tokens=args.kv_cache_tokens,
        max_model_len=args.max_model_len,
        block_size=args.block_size,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        kv_bandwidth_gbps=args.kv_bandwidth_gbps,
        special_token_rate=args.special_token_rate,
        seed=args.seed,
    )
    hops = hops_from_spec(args.hops)
    proxy_cpu = proxy_cpu_from_spec(args.proxy_cpu)
    configs = []
    from ppd.traces.replay import parse_window

    window = parse_window(args.window) if args.window is not None else None
    workloads = parse_workloads(args.workload, args.turns, window)
    _check_trace_flags(args, [workload.trace is not None for workload in workloads])
    for workload in workloads:
        for qps in _rates(args, workload):
            for run_index in range(args.runs):
                for mode in modes:
                    config = FleetConfig(
                        topology=topology,
                        mode=mode,
                        workload=workload,
                        qps=qps,
                        duration_s=args.duration_s if args.duration_s is not None else 60.0,
                        run=run_index,
                        think_time_s=args.think_time_s,
                        seed=args.seed,
                        warmup_s=args.warmup_s,
                        slo=Slo(args.slo_ttft_ms, args.slo_tpot_ms),
                        drain_timeout_s=args.drain_timeout_s,
                        api=args.api,
                        poisson=args.arrivals == "poisson",
                        engine=engine,
                        hops=hops,
                        proxy_cpu=proxy_cpu,
                        proxy_processes=args.proxy_processes,
                        pd_decode_affinity=not args.no_pd_decode_affinity,
                        route_slo_ttft_ms=args.route_slo_ttft_ms,
                        route_slo_tpot_ms=args.route_slo_tpot_ms,
                        record_itl=args.record_itl,
                        send_session_id=not args.no_session_id,
                        history_chunk_bytes=args.history_chunk_bytes,
                        history_chunks_per_instance=args.history_chunks_per_instance,
                        history_keyed_bytes=args.history_keyed_bytes,
                    )
                    validate(config)
                    configs.append(config)
    return configs


def _rates(args: argparse.Namespace, workload: WorkloadSpec) -> tuple[float, ...]:
    """--qps (--rate) values; for a trace, --speedup's as request rates (default: its own pace)."""
    from ppd.bench.arrivals import trace_request_rate
    from ppd.bench.cli import parse_rates

    if workload.trace is None or args.qps is not None:
        return parse_rates(args.qps or "1")
    speedups = parse_rates(args.speedup, "--speedup") if args.speedup else (1.0,)
    return tuple(round(trace_request_rate(workload.trace, speedup), 6) for speedup in speedups)
