"""Where does the bench's schedule lag come from? trace_replay.py's two runs (synthetic baseline, then
the Mooncake slice) with the sender instrumented, to attribute each sent turn's lag (send - due):

    timer      the wake-up of sleep_until came late (its asyncio.sleep returned after due - 1 ms):
               the loop was busy with something else when the timer was due
    spin       from the wake (or the due time, if later) until sleep_until returned (each
               asyncio.sleep(0) lets every ready callback run first)
    start      from sleep_until's return to the send stamp (a turn 1: the arrival loop waited and
               started the conversation's task, which runs only on a later loop iteration, after
               every ready callback; a later turn: building its request, if not made ahead)
    gc         collector pauses inside the turn's lag window (gc.callbacks)

and, with --asyncio-debug (plain asyncio loop, debug mode: slows everything), every callback that
held the loop longer than --slow-ms, by coroutine: what the loop was busy with.

    flock /work/cpu.lock python benchmarks/trace_lag_where.py [--time-scale 0.02] [--asyncio-debug]

It prints per run the lag percentiles and, over the turns with lag above 2 ms, the mean of each part.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trace_replay
from _sims import running_sim
from ppd.bench import client, loadgen, trace_loadgen
from ppd.bench.config import BenchConfig
from ppd.bench.runner import run_bench
from ppd.bench.workloads import parse_workloads
from ppd.results import load_result
from ppd.traces.formats import read_trace_spec


@dataclass
class Probe:
    """Stamps of one run (perf_counter s)."""

    wakes: dict[int, tuple[float, float, float]] = field(
        default_factory=dict
    )  # task id -> (deadline, woke, done)
    sends: list[tuple[float, float, float, float]] = field(
        default_factory=list
    )  # (deadline, woke, done, sent)
    gc_pauses: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    gc_info: list[tuple[float, int, int]] = field(default_factory=list)  # (ms, generation, collected)
    stalls_ms: list[float] = field(default_factory=list)  # how late a 1 ms ticker woke, each tick
    slow: collections.Counter[str] = field(default_factory=collections.Counter)  # coroutine -> ms held
    slow_count: collections.Counter[str] = field(default_factory=collections.Counter)


PROBE = Probe()
_gc_started: list[float] = []


async def probed_sleep_until(deadline: float) -> None:
    """loadgen.sleep_until, stamping when it was entered, when the timer woke it and when it returned."""
    entered = time.perf_counter()
    task = asyncio.current_task()
    if task is not None and deadline <= entered and PROBE.wakes.get(id(task), (None,))[0] == deadline:
        return  # a turn 1 the arrival loop already waited for (start_task passed its stamps on)
    delay_s = deadline - entered - loadgen.SPIN_WINDOW_S
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    woke = time.perf_counter()
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)
    if task is not None:
        PROBE.wakes[id(task)] = (deadline, entered, woke, time.perf_counter())


_run = loadgen._run


async def probed_run(context: loadgen.RunContext, plans: list[Any], started_utc: str) -> Any:
    """loadgen._run beside a ticker that wakes every ms and notes how late: how long the loop was held."""

    async def tick() -> None:
        while True:
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            PROBE.stalls_ms.append((time.perf_counter() - due) * 1000.0)

    ticker = asyncio.create_task(tick())
    try:
        return await _run(context, plans, started_utc)
    finally:
        ticker.cancel()


_start_task = loadgen.start_task


def probed_start_task(context: loadgen.RunContext, tasks: set[asyncio.Task[None]], drive: Any) -> None:
    """loadgen.start_task, handing the arrival loop's wake stamps to the conversation's task (its turn 1)."""
    arrival = asyncio.current_task()
    before = set(tasks)
    _start_task(context, tasks, drive)
    stamps = PROBE.wakes.get(id(arrival)) if arrival is not None else None
    for task in tasks - before:
        if stamps is not None:
            PROBE.wakes[id(task)] = stamps


_send = client.HttpBackend.send


async def probed_send(self: client.HttpBackend, request: client.TurnRequest, record: client.RawTurn) -> None:
    task = asyncio.current_task()
    wake = PROBE.wakes.pop(id(task), None) if task is not None else None
    sent_index = len(PROBE.sends)
    PROBE.sends.append((*(wake or (0.0, 0.0, 0.0, 0.0)), 0.0))
    await _send(self, request, record)
    PROBE.sends[sent_index] = (*PROBE.sends[sent_index][:4], record.sent_at or 0.0)


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        start, end = _gc_started.pop(), time.perf_counter()
        PROBE.gc_pauses.append((start, end))
        PROBE.gc_info.append(((end - start) * 1000.0, info.get("generation", -1), info.get("collected", 0)))


class SlowCallbacks(logging.Handler):
    """asyncio debug mode's 'Executing <handle> took N seconds' lines, by coroutine."""

    _LINE = re.compile(r"Executing (.*) took (\d+\.\d+) seconds")
    _CORO = re.compile(r"coro=<([\w.]+)\(")

    def emit(self, record: logging.LogRecord) -> None:
        match = self._LINE.search(record.getMessage())
        if match is None:
            return
        coro = self._CORO.search(match.group(1))
        name = coro.group(1) if coro else re.sub(r" at 0x[0-9a-f]+|\(\)|<|>", "", match.group(1))[:80]
        PROBE.slow[name] += float(match.group(2)) * 1000.0
        PROBE.slow_count[name] += 1


@contextmanager
def probed() -> Iterator[None]:
    loadgen.sleep_until = probed_sleep_until
    trace_loadgen.sleep_until = probed_sleep_until
    client.HttpBackend.send = probed_send  # type: ignore[method-assign]
    loadgen.start_task = probed_start_task
    loadgen._run = probed_run
    trace_loadgen.start_task = probed_start_task
    gc.callbacks.append(_on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(_on_gc)


def report(label: str, lag_rows_ms: list[float]) -> None:
    sends = [s for s in PROBE.sends if s[4] and s[0]]
    names = ("lag", "before", "timer", "spin", "start", "gc")
    parts: dict[str, list[float]] = {name: [] for name in names}
    for deadline, entered, woke, done, sent in sends:
        lag_ms = (sent - deadline) * 1000.0
        if lag_ms < 2.0:
            continue
        parts["lag"].append(lag_ms)
        # [deadline, sent] in four consecutive parts (entered <= woke <= done <= sent)
        parts["before"].append(max(0.0, entered - deadline) * 1000.0)
        parts["timer"].append(max(0.0, woke - max(deadline, entered)) * 1000.0)
        parts["spin"].append(max(0.0, done - max(woke, deadline)) * 1000.0)
        parts["start"].append((sent - max(done, deadline)) * 1000.0)
        parts["gc"].append(
            sum(max(0.0, min(end, sent) - max(start, deadline)) for start, end in PROBE.gc_pauses) * 1000.0
        )
    lags = sorted(lag_rows_ms)
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0.0
    print(
        f"{label}: {len(lags)} sent turns, lag p50 {statistics.median(lags):.3f} ms, p99 {p99:.3f} ms; "
        f"{len(parts['lag'])} over 2 ms (probed {len(sends)}); gc pauses {len(PROBE.gc_pauses)}, "
        f"longest {max((e - s for s, e in PROBE.gc_pauses), default=0.0) * 1000.0:.2f} ms"
    )
    if parts["lag"]:
        print(
            "  over 2 ms, mean ms: "
            + ", ".join(f"{name} {statistics.fmean(values):.3f}" for name, values in parts.items())
        )
    worst = sorted(sends, key=lambda s: s[4] - s[0], reverse=True)[: max(1, len(sends) // 100)]
    for deadline, entered, woke, done, sent in worst:  # the top 1%: what makes the p99
        gc_ms = (
            sum(max(0.0, min(end, sent) - max(start, deadline)) for start, end in PROBE.gc_pauses) * 1000.0
        )
        print(
            f"  top lag {(sent - deadline) * 1000.0:.2f} ms: "
            f"before {max(0.0, entered - deadline) * 1000.0:.2f}, "
            f"timer {max(0.0, woke - max(deadline, entered)) * 1000.0:.2f}, "
            f"spin {max(0.0, done - max(woke, deadline)) * 1000.0:.2f}, "
            f"start {(sent - max(done, deadline)) * 1000.0:.2f}, gc {gc_ms:.2f}"
        )
    long_gc = [info for info in PROBE.gc_info if info[0] > 2.0]
    if long_gc:
        print(
            "  gc pauses > 2 ms (ms, generation, collected): "
            + ", ".join(f"({ms:.1f}, {gen}, {n})" for ms, gen, n in long_gc[:20])
        )
    stalls = sorted(PROBE.stalls_ms)
    if stalls:
        print(
            f"  1 ms ticker: {len(stalls)} ticks, late p50 {stalls[len(stalls) // 2]:.3f} ms, "
            f"p99 {stalls[int(0.99 * len(stalls))]:.3f} ms, max {stalls[-1]:.2f} ms; "
            f"late > 2 ms: {sum(1 for v in stalls if v > 2.0)}, > 5 ms: {sum(1 for v in stalls if v > 5.0)}"
        )
    for name, held_ms in PROBE.slow.most_common(8):
        print(f"  slow callbacks: {name}: {PROBE.slow_count[name]} x, {held_ms:.1f} ms in all")


def run(url: str, workload: str, rate: float, window: object, args: argparse.Namespace, out: Path) -> None:
    global PROBE
    PROBE = Probe()
    config = BenchConfig(
        url=url,
        workloads=parse_workloads(workload, 1, window),  # type: ignore[arg-type]
        qps=(rate,),
        duration_s=args.duration_s,
        drain_timeout_s=60.0,
        output_dir=out,
        name="trace" if window else "synthetic",
        quiet=True,
        prompt_salt="trace-replay",
        use_uvloop=not args.asyncio_debug,
    )
    _, rows = load_result(run_bench(config))
    lags = [row.schedule_lag_ms for row in rows if row.sent and row.schedule_lag_ms is not None]
    report("trace" if window else "synthetic", lags)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=trace_replay.DEFAULT_TRACE)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--start-s", type=float, default=600.0)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--asyncio-debug", action="store_true")
    parser.add_argument("--slow-ms", type=float, default=1.0)
    args = parser.parse_args()
    if args.asyncio_debug:
        import os

        os.environ["PYTHONASYNCIODEBUG"] = "1"
        logger = logging.getLogger("asyncio")
        logger.addHandler(SlowCallbacks())
        logger.propagate = False
        original_new_loop = asyncio.events.new_event_loop

        def debug_loop() -> asyncio.AbstractEventLoop:
            loop = original_new_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = args.slow_ms / 1000.0
            return loop

        asyncio.events.new_event_loop = debug_loop
    num_requests = round(args.rate * args.duration_s)
    window = trace_replay.slice_window(args.trace, args.start_s, num_requests)
    requests = [
        r
        for r in read_trace_spec(f"mooncake:{args.trace}").trace.requests
        if window.start_s <= r.arrival_s < (window.end_s or 0)
    ]
    fitting = [
        r for r in requests if r.num_input_tokens + r.num_output_tokens <= trace_replay.SIM_MAX_MODEL_LEN
    ]
    mean_in = round(sum(r.num_input_tokens for r in fitting) / len(fitting))
    mean_out = round(sum(r.num_output_tokens for r in fitting) / len(fitting))
    sim_args = ("--time-scale", str(args.time_scale), "--max-model-len", str(trace_replay.SIM_MAX_MODEL_LEN))
    print(f"sim --time-scale {args.time_scale:g}; asyncio debug {args.asyncio_debug}")
    with probed(), running_sim(*sim_args) as url, tempfile.TemporaryDirectory() as tmp:
        run(url, f"{mean_in}/{mean_out}", args.rate * len(fitting) / len(requests), None, args, Path(tmp))
        run(url, f"mooncake:{args.trace}", args.rate, window, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
