"""One measured run: open-loop conversation arrivals, each conversation's turns, the bounded drain.

The arrival loop only waits and starts conversations; each conversation is its own task, started
START_AHEAD_S before its arrival and waiting for it itself, so a slow request never delays the
schedule and a send never waits for a task to start. Turn k+1 is due when turn k completes plus the
think time. After the arrival window, in-flight conversations get the drain timeout; then they are
cut off: the turn in flight is a failed row, the turns after it are rows with sent=False.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ppd.bench.arrivals import ConversationPlan, derive_seed
from ppd.bench.client import Backend, RawTurn, TurnRequest
from ppd.bench.config import BenchConfig, WorkloadSpec
from ppd.bench.metrics import conversation_rates, turn_timings
from ppd.bench.workloads import api_path, random_word_texts, request_body, vocabulary
from ppd.results import RunInfo, TurnRow
from ppd.traces import prompts
from ppd.traces.replay import ReplayTurn

# Timers fire up to ~1 ms late; wake this early and yield until the due time, so sends are on time.
SPIN_WINDOW_S = 0.001
# A conversation's task starts this long before its first turn is due and waits for it itself, so the
# send never waits for a freshly started task's first loop iteration (measured: 1.7-4.3 ms mean, more
# in a trace's bursts), and its prompt is made well before it is needed.
START_AHEAD_S = 0.25
# Work on the loop (making a prompt, starting a task) only when no started conversation's first turn
# is due within this margin plus the work's own estimate, so it never delays a send.
WORK_MARGIN_S = 0.001


@dataclass(frozen=True)
class RunPoint:
    """Which run: mode ("" for the URL as is), workload, offered conversation rate, run index."""

    mode: str
    workload: WorkloadSpec
    qps: float  # a trace workload: its mean request rate
    run: int
    duration_s: float | None = None  # arrival window; None: the config's (a trace's is its slice's)


@dataclass
class RunContext:
    """What every conversation of a run shares."""

    point: RunPoint
    config: BenchConfig
    model: str
    salt: str
    backend: Backend
    on_row: Callable[[TurnRow], None] = lambda row: None
    on_send: Callable[[int], None] = lambda turn: None
    start_at: float = 0.0  # perf_counter of the run's time 0
    cut_off_reason: str = "cut off by the drain timeout"
    start_times_s: list[float] = field(default_factory=list)  # when each turn 1 was sent
    max_model_len: int | None = None  # the server's; a longer trace turn is skipped, not sent
    crashes: list[BaseException | None] = field(default_factory=list)


def arrival_window_s(context: RunContext) -> float:
    """The run's arrival window, s: its point's own (a trace slice's) or the config's."""
    point_s = context.point.duration_s
    return point_s if point_s is not None else context.config.duration_s


async def sleep_until(deadline: float) -> None:
    """Sleep until time.perf_counter() reaches `deadline`, waking early and yielding the rest."""
    delay_s = deadline - time.perf_counter() - SPIN_WINDOW_S
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)


async def wait_to_start(context: RunContext, arrivals_s: list[float], index: int, work_s: float) -> None:
    """Wait until conversation `index` is START_AHEAD_S from its arrival, then until no conversation
    started before it has its first turn due within `work_s` + WORK_MARGIN_S: the caller's work
    (~work_s of CPU on the loop) then never holds a due send back."""
    start_at = context.start_at
    delay_s = start_at + arrivals_s[index] - START_AHEAD_S - time.perf_counter()
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    while True:
        now_s = time.perf_counter() - start_at
        upcoming = bisect.bisect_left(arrivals_s, now_s, 0, index)  # the earliest not yet due
        if upcoming >= index or arrivals_s[upcoming] - now_s > work_s + WORK_MARGIN_S:
            return
        await sleep_until(start_at + arrivals_s[upcoming])
        await asyncio.sleep(0)  # its task exits its own wait now: let it send first
        await asyncio.sleep(0)


async def run_point(context: RunContext, plans: list[ConversationPlan]) -> RunInfo:
    """Run one point's conversations to completion (or cancellation); rows go to context.on_row."""
    started_utc = datetime.now(UTC).isoformat(timespec="seconds")
    vocabulary()  # built before the collector is frozen, so that it never walks them again
    prompts.prepare()
    with _collector_frozen():
        context.start_at = time.perf_counter() + SPIN_WINDOW_S
        return await _run(context, plans, started_utc)


@contextmanager
def _collector_frozen() -> Iterator[None]:
    """Collect, then exempt every existing object from the garbage collector for the run.

    A full collection walks every tracked object; with the imports (aiohttp, numpy, rich) that
    stalled the event loop for ~30 ms mid-run, delaying sends and chunk stamps. Frozen, a collection
    walks only what the run itself made.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _run(context: RunContext, plans: list[ConversationPlan], started_utc: str) -> RunInfo:
    config, point = context.config, context.point
    tasks: set[asyncio.Task[None]] = set()
    try:
        await _start_conversations(context, plans, tasks)
        await _drain(context, tasks)
    except asyncio.CancelledError:
        context.cut_off_reason = "interrupted"
        await _cut_off(tasks)
        raise
    if context.crashes:
        raise RuntimeError("a conversation task crashed") from context.crashes[0]
    elapsed_s = time.perf_counter() - context.start_at
    offered, achieved = conversation_rates(len(plans), context.start_times_s, arrival_window_s(context))
    return RunInfo(
        point.mode,
        point.workload.name,
        point.qps,
        point.run,
        started_utc,
        arrival_window_s(context),
        elapsed_s,
        len(plans),
        offered,
        achieved,
        config.seed,
    )


async def _start_conversations(
    context: RunContext, plans: list[ConversationPlan], tasks: set[asyncio.Task[None]]
) -> None:
    if context.point.workload.trace is not None:
        from ppd.bench.trace_loadgen import start_trace_conversations  # it builds on this module

        await start_trace_conversations(context, plans, tasks)
        return
    arrivals_s = [plan.arrival_s for plan in plans]
    for index, plan in enumerate(plans):
        # Started ahead of its arrival, the task waits for it itself; its prompt text is made now, at a
        # moment when no other conversation's first turn is due.
        num_words = [turn.num_new_words for turn in plan.turns]
        await wait_to_start(context, arrivals_s, index, work_estimate_s(sum(num_words)))
        texts = random_word_texts(num_words, _prompt_seed(context, plan))
        start_task(context, tasks, drive_conversation(context, plan, texts))


def work_estimate_s(num_words: int) -> float:
    """A generous estimate of the loop time to make a prompt of num_words words and encode it."""
    return 0.0005 + num_words * 2.5e-7


def start_task(context: RunContext, tasks: set[asyncio.Task[None]], drive: Coroutine[Any, Any, None]) -> None:
    """Run one conversation as its own task, kept in `tasks` until it ends."""
    task = asyncio.create_task(drive)
    tasks.add(task)
    task.add_done_callback(lambda done: _forget(done, tasks, context))


def _forget(task: asyncio.Task[None], tasks: set[asyncio.Task[None]], context: RunContext) -> None:
    tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        context.crashes.append(task.exception())  # a bug, not a failed request: raised after the run


async def _drain(context: RunContext, tasks: set[asyncio.Task[None]]) -> None:
    deadline = context.start_at + arrival_window_s(context) + context.config.drain_timeout_s
    if tasks:
        await asyncio.wait(set(tasks), timeout=max(0.0, deadline - time.perf_counter()))
    context.cut_off_reason = f"cut off by the drain timeout ({context.config.drain_timeout_s:g} s)"
    await _cut_off(tasks)


async def _cut_off(tasks: set[asyncio.Task[None]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _prompt_seed(context: RunContext, plan: ConversationPlan) -> int:
    point = context.point
    return derive_seed(
        context.config.seed, context.salt, point.mode, point.workload.name, point.qps, point.run, plan.index
    )


def conversation_id(context: RunContext, plan: ConversationPlan) -> str:
    """The X-Session-ID of a conversation: unique per invocation, run and conversation."""
    point = context.point
    run_key = f"{point.mode or 'url'}-{point.workload.name}-q{point.qps:g}-r{point.run}"
    return f"bench-{context.salt}-{run_key}-c{plan.index}"


async def drive_conversation(context: RunContext, plan: ConversationPlan, texts: list[str]) -> None:
    """Send the turns of one conversation in order; stop at the first failure or cut-off."""
    session_id = conversation_id(context, plan)
    headers = {"X-Session-ID": session_id} if context.config.send_session_id else {}
    answers: list[str] = []
    due_s = plan.arrival_s
    for turn, shape in enumerate(plan.turns, start=1):
        body = request_body(
            context.config.api,
            context.model,
            texts[:turn],
            answers,
            shape.num_output_tokens,
            context.config.temperature,
        )
        record = RawTurn()
        try:
            await sleep_until(context.start_at + due_s)
            context.on_send(turn)
            await context.backend.send(TurnRequest(api_path(context.config.api), body, headers), record)
        except asyncio.CancelledError:
            if record.sent_at is None:
                record_not_sent(context, plan, session_id, turn, due_s, context.cut_off_reason)
                return
            record.error = context.cut_off_reason
        row = make_row(context, plan, session_id, turn, due_s, record)
        context.on_row(row)
        if turn == 1 and row.sent_s is not None:
            context.start_times_s.append(row.sent_s)
        if not row.ok:
            reason = (
                f"turn {turn} failed" if record.error != context.cut_off_reason else context.cut_off_reason
            )
            record_not_sent(
                context, plan, session_id, turn + 1, since_start(context, record.ended_at), reason
            )
            return
        answers.append(record.text)
        due_s = since_start(context, record.ended_at) + context.config.think_time_s


def since_start(context: RunContext, stamp: float | None) -> float:
    """A perf_counter stamp (None: now) in s since the run's start."""
    return (stamp if stamp is not None else time.perf_counter()) - context.start_at


def record_not_sent(
    context: RunContext, plan: ConversationPlan, session_id: str, first_turn: int, due_s: float, reason: str
) -> None:
    for turn in range(first_turn, len(plan.turns) + 1):
        record = RawTurn(error=f"not sent: {reason}")  # nothing seen: no status, stamps, usage, headers
        context.on_row(turn_row(context, plan, session_id, turn, due_s, record, sent_s=None))


def make_row(
    context: RunContext,
    plan: ConversationPlan,
    session_id: str,
    turn: int,
    due_s: float,
    record: RawTurn,
    trace_turn: ReplayTurn | None = None,
) -> TurnRow:
    """The row of one sent turn, with latencies computed from the record's raw stamps."""
    sent_s = since_start(context, record.sent_at)
    return turn_row(context, plan, session_id, turn, due_s, record, sent_s, trace_turn)


def turn_row(
    context: RunContext,
    plan: ConversationPlan,
    session_id: str,
    turn: int,
    due_s: float,
    record: RawTurn,
    sent_s: float | None,
    trace_turn: ReplayTurn | None = None,
) -> TurnRow:
    """The one place a TurnRow is built, so every field is filled for sent and unsent turns alike.
    sent_s: when the turn was sent, s since the run's start; None for a turn never sent (its record
    is empty but for the error). trace_turn: what a trace turn replays."""
    point = context.point
    usage = record.usage or {}
    output_tokens = usage.get("completion_tokens")
    timings = turn_timings(record.sent_at or 0.0, record.chunk_times, output_tokens)
    details = usage.get("prompt_tokens_details") or {}
    ok = record.ok
    return TurnRow(
        point.mode,
        point.workload.name,
        point.qps,
        point.run,
        plan.index,
        session_id,
        turn,
        sent=sent_s is not None,
        ok=ok,
        status=record.status,
        error=record.error,
        scheduled_s=round(due_s, 6),
        sent_s=round(sent_s, 6) if sent_s is not None else None,
        schedule_lag_ms=round((sent_s - due_s) * 1000.0, 4) if sent_s is not None else None,
        ttft_ms=timings.ttft_ms,
        e2e_ms=timings.e2e_ms if ok else None,
        tpot_ms=timings.tpot_ms if ok else None,
        itl_ms=timings.itl_ms,
        prompt_tokens=usage.get("prompt_tokens"),
        cached_tokens=details.get("cached_tokens"),
        cached_share=cached_share(usage.get("prompt_tokens"), details.get("cached_tokens")),
        output_tokens=output_tokens,
        route=record.headers.get("x-ppd-route"),
        upstream=record.headers.get("x-ppd-upstream"),
        prefill_ms=_float_or_none(record.headers.get("x-ppd-prefill-ms")),
        prefill_cached_tokens=_int_or_none(record.headers.get("x-ppd-prefill-cached-tokens")),
        # A turn counts as warm-up by when it went out, or for an unsent one by when it was due.
        in_warmup=(sent_s if sent_s is not None else due_s) < context.config.warmup_s,
        trace_request=trace_turn.request_index if trace_turn is not None else None,
        history_tokens=trace_turn.num_history_tokens if trace_turn is not None else None,
    )


def cached_share(prompt_tokens: object, cached_tokens: object) -> float | None:
    """cached_tokens / prompt_tokens, when the server reported both (and the prompt is not empty)."""
    if isinstance(prompt_tokens, int) and isinstance(cached_tokens, int) and prompt_tokens > 0:
        return round(cached_tokens / prompt_tokens, 6)
    return None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
