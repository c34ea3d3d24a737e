"""A whole invocation: every workload x qps x run x mode, results written as runs finish.

Python API (the demo uses it):
    from ppd.bench.runner import run_bench
    json_path = run_bench(BenchConfig(url=..., workloads=(builtin_workload("W1", 2),), qps=(1.0,)))

Modes are innermost, so the modes of one (workload, qps, run) run back to back on the same arrival
schedule, and drift of the machine over the invocation hits them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from ppd.bench.arrivals import plan_conversations, plan_trace, trace_duration_s, trace_request_rate
from ppd.bench.client import ConnectionCount, HttpBackend, make_session, request_timeout
from ppd.bench.config import BenchConfig, TraceWorkload, WorkloadSpec, validate
from ppd.bench.loadgen import RunContext, RunPoint, run_point
from ppd.bench.metrics import summarize
from ppd.bench.progress import LiveProgress, Progress, QuietProgress, final_table
from ppd.bench.resultset import ResultSet
from ppd.bench.server_info import ServerInfo, prepare_mode, probe
from ppd.bench.workloads import context_tokens
from ppd.results import TurnRow
from ppd.traces.replay import window_indices
from ppd.turn_trace import TurnTrace


def run_bench(config: BenchConfig) -> Path:
    """Run the whole invocation in a fresh event loop (uvloop unless disabled); the result JSON path."""
    validate(config)
    with asyncio.Runner(loop_factory=_loop_factory(config.use_uvloop)) as runner:
        return runner.run(run_bench_async(config))


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def run_bench_async(config: BenchConfig) -> Path:
    """Run the whole invocation on the running loop; the result JSON path."""
    validate(config)
    salt = config.prompt_salt or secrets.token_hex(4)
    console = Console(stderr=True)
    progress: Progress = QuietProgress() if config.quiet else LiveProgress(console)
    connections = ConnectionCount()
    async with make_session(config.max_connections, config.connect_timeout_s, connections) as session:
        server = await probe(session, config.url, config.model, config.admin_token)
        warn_if_too_long(config, server)
        for mode in config.modes:  # fail before measuring anything if a mode or the token is refused
            await prepare_mode(session, config.url, mode, config.admin_token)
        timeout = request_timeout(config.request_timeout_s, config.connect_timeout_s)
        trace = TurnTrace.from_env("bench")  # None (and nothing traced) unless PPD_TURN_TRACE is set
        backend = HttpBackend(session, config.url, timeout, trace)
        with ResultSet.open(config, server) as results, trace or contextlib.nullcontext():
            summaries: list[dict[str, Any]] = []
            try:
                for point in run_points(config, server, results):
                    if config.modes:
                        await prepare_mode(session, config.url, point.mode, config.admin_token)
                    context = RunContext(point, config, server.model, salt, backend)
                    context.max_model_len = server.max_model_len
                    summaries += await _measure(context, results, progress, connections)
            except asyncio.CancelledError:
                print(f"ppd bench: interrupted; completed rows kept in {results.json_path}", file=sys.stderr)
                raise
    if not config.quiet:
        stdout = Console()
        if not stdout.is_terminal:
            stdout = Console(width=160)  # a log file is no 80-column screen
        stdout.print(final_table(summaries))
    return results.json_path


def warn_if_too_long(config: BenchConfig, server: ServerInfo) -> None:
    """Say up front when a workload's later turns cannot fit the server's context (they will fail)."""
    if server.max_model_len is None:
        if any(workload.trace is not None for workload in config.workloads):
            print(
                "ppd bench: warning: the server does not report max_model_len, so no over-long trace "
                "request can be skipped: any that exceed it will fail",
                file=sys.stderr,
            )
        return
    for workload in config.workloads:
        if workload.trace is not None:
            _say_trace_skips(workload.name, workload.trace, server.max_model_len)
            continue
        longest = max(context_tokens(conversation) for conversation in workload.conversations)
        if longest > server.max_model_len:
            print(
                f"ppd bench: warning: {workload.name} needs up to {longest} tokens of context, "
                f"the server's max_model_len is {server.max_model_len}: turns beyond it will fail (HTTP 400)",
                file=sys.stderr,
            )


def _say_trace_skips(name: str, trace: TraceWorkload, max_model_len: int) -> None:
    requests = trace.linked.trace.requests
    indices = window_indices(trace.linked.trace, trace.window)
    num_over = sum(
        1 for i in indices if requests[i].num_input_tokens + requests[i].num_output_tokens > max_model_len
    )
    if num_over:
        print(
            f"ppd bench: {name}: {num_over} of {len(indices)} requests need more than the server's "
            f"max_model_len {max_model_len}: they are skipped (rows with error 'skipped: ...')",
            file=sys.stderr,
        )


def run_points(config: BenchConfig, server: ServerInfo, results: ResultSet) -> Iterator[RunPoint]:
    """Every run in order: workload, qps, run, then mode; run indices continue an appended set."""
    modes = config.modes or (server.mode,)
    for workload in config.workloads:
        for qps, duration_s in _rates_and_durations(config, workload):
            first_run = max(results.next_run(mode, workload.name, qps) for mode in modes)
            for run in range(first_run, first_run + config.runs):
                for mode in modes:
                    yield RunPoint(mode, workload, qps, run, duration_s)


def _rates_and_durations(config: BenchConfig, workload: WorkloadSpec) -> list[tuple[float, float]]:
    """(qps, arrival window) of each point: a trace's request rates (from --speedup if given)."""
    if workload.trace is None:
        return [(qps, config.duration_s) for qps in config.qps]
    trace = workload.trace
    rates = [round(trace_request_rate(trace, s), 6) for s in config.speedups] or list(config.qps)
    return [(rate, trace_duration_s(trace, rate)) for rate in rates]


async def _measure(
    context: RunContext, results: ResultSet, progress: Progress, connections: ConnectionCount
) -> list[dict[str, Any]]:
    """One run: rows written as they come, then its summaries recorded (with the connections the
    session opened during the run)."""
    config, point = context.config, context.point
    rows: list[TurnRow] = []

    def on_row(row: TurnRow) -> None:
        rows.append(row)
        results.write_row(row)
        progress.on_row(row)

    context.on_row = on_row
    context.on_send = progress.on_send
    if point.workload.trace is not None:
        plans = plan_trace(point.workload.trace, point.qps)
    else:
        plans = plan_conversations(
            point.workload, point.qps, config.duration_s, config.seed, point.run, config.poisson
        )
    progress.start_run(
        f"{point.mode or 'url'} {point.workload.name} qps={point.qps:g} run={point.run}", len(plans)
    )
    opened_before = connections.opened
    try:
        run_info = await run_point(context, plans)
    except asyncio.CancelledError:
        results.add_interrupted(point.mode, point.workload.name, point.qps, point.run)
        raise
    finally:
        progress.end_run()
    run_info.connections_opened = connections.opened - opened_before
    summaries = summarize(rows, run_info, config.slo)
    results.add_run(run_info, summaries)
    return summaries
