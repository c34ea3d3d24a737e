"""One run of a trace replay: each conversation's turns at their times, requests made ahead.

What differs from synthetic load (loadgen.py): prompts come from the trace's block ids (~12k words
each in the Mooncake trace) and a trace's arrivals come in bursts (up to 28 requests in one ms), so
making a request just before its send (prompt + JSON, ~1-3 ms) would delay the sends after it. Each
conversation's task is started START_AHEAD_S before its first turn with that turn's request made, at a
moment when no earlier conversation's first turn is due (loadgen.wait_to_start), and waits for its
time itself; a later turn's request is made while the turn before it is in flight (it is usually due
the moment that one completes, so making it then would delay its send).
A later turn is due at its trace time or when the turn before it completed, whichever is later (a
user reads the answer first); a turn longer than the server's max_model_len is a skipped row.
"""

from __future__ import annotations

import asyncio
import json

from ppd.bench.arrivals import ConversationPlan, derive_seed
from ppd.bench.client import RawTurn, TurnRequest
from ppd.bench.loadgen import (
    RunContext,
    conversation_id,
    make_row,
    record_not_sent,
    since_start,
    sleep_until,
    start_task,
    turn_row,
    wait_to_start,
    work_estimate_s,
)
from ppd.bench.workloads import api_path, trace_request_body
from ppd.traces.prompts import PromptMaker
from ppd.traces.replay import ReplayTurn

# The error of a trace turn not sent because its context exceeds the server's max_model_len.
SKIPPED_PREFIX = "skipped:"


async def start_trace_conversations(
    context: RunContext, plans: list[ConversationPlan], tasks: set[asyncio.Task[None]]
) -> None:
    """Start each conversation START_AHEAD_S before its first turn, with that turn's request made, at a
    moment when no earlier conversation's first turn is due (wait_to_start); each waits for its time."""
    trace = context.point.workload.trace
    if trace is None:
        raise ValueError("not a trace workload")
    prompts = PromptMaker(run_seed(context), trace.linked.trace.block_size)
    arrivals_s = [plan.arrival_s for plan in plans]
    for index, plan in enumerate(plans):
        if plan.replay is None:
            raise ValueError("a trace plan without its replay")
        await wait_to_start(
            context, arrivals_s, index, work_estimate_s(plan.replay.turns[0].num_input_tokens)
        )
        first = _first_request(context, prompts, plan)
        start_task(context, tasks, drive_trace_conversation(context, plan, prompts, first))


def _first_request(context: RunContext, prompts: PromptMaker, plan: ConversationPlan) -> TurnRequest | None:
    if plan.replay is None:
        raise ValueError("a trace plan without its replay")
    first = plan.replay.turns[0]
    return None if over_length(context, first) else prepare_request(context, prompts, first, {})


def prepare_request(
    context: RunContext, prompts: PromptMaker, turn: ReplayTurn, headers: dict[str, str]
) -> TurnRequest:
    """A trace turn's request with its JSON body already encoded (so encoding never delays a send)."""
    config = context.config
    text = prompts.prompt(turn.request_index, turn.num_input_tokens, turn.block_ids)
    body = trace_request_body(config.api, context.model, text, turn.num_output_tokens, config.temperature)
    data = json.dumps(body, separators=(",", ":")).encode()
    return TurnRequest(api_path(config.api), body, headers, data)


def run_seed(context: RunContext) -> int:
    """The prompt seed of a trace run: shared ids share words within a run, never across runs."""
    point, config = context.point, context.config
    return derive_seed(config.seed, context.salt, point.mode, point.workload.name, point.qps, point.run)


async def drive_trace_conversation(
    context: RunContext, plan: ConversationPlan, prompts: PromptMaker, first: TurnRequest | None
) -> None:
    """Send a trace conversation's turns in order; skip over-long ones; stop at a failure or cut-off."""
    if plan.replay is None:
        raise ValueError("a trace plan without its replay")
    session_id = conversation_id(context, plan)
    headers = {"X-Session-ID": session_id} if context.config.send_session_id else {}
    ready_s = plan.arrival_s
    started = False
    steps = plan.replay.turns
    prepared: list[TurnRequest] = [first] if first is not None else []  # the next turn's, made ahead
    for turn, step in enumerate(steps, start=1):
        due_s = max(step.due_s, ready_s)
        if (skip := over_length(context, step)) is not None:
            context.on_row(turn_row(context, plan, session_id, turn, due_s, RawTurn(error=skip), None, step))
            continue
        request = prepared.pop() if prepared else prepare_request(context, prompts, step, {})
        request = TurnRequest(request.path, request.body, headers, request.data)
        record = RawTurn()
        try:
            await sleep_until(context.start_at + due_s)
            context.on_send(turn)
            if turn < len(steps) and over_length(context, steps[turn]) is None:
                # The next turn is due when this one completes: make its request (~0.5-3 ms for a long
                # trace prompt) while this one is in flight, not on the send path then.
                asyncio.get_running_loop().call_soon(_prepare_into, prepared, context, prompts, steps[turn])
            await context.backend.send(request, record)
        except asyncio.CancelledError:
            if record.sent_at is None:
                record_not_sent(context, plan, session_id, turn, due_s, context.cut_off_reason)
                return
            record.error = context.cut_off_reason
        row = make_row(context, plan, session_id, turn, due_s, record, step)
        context.on_row(row)
        if not started and row.sent_s is not None:
            context.start_times_s.append(row.sent_s)
            started = True
        if not row.ok:
            cut_off = record.error == context.cut_off_reason
            failed = context.cut_off_reason if cut_off else f"turn {turn} failed"
            ended_s = since_start(context, record.ended_at)
            record_not_sent(context, plan, session_id, turn + 1, ended_s, failed)
            return
        ready_s = since_start(context, record.ended_at) + context.config.think_time_s


def _prepare_into(
    prepared: list[TurnRequest], context: RunContext, prompts: PromptMaker, step: ReplayTurn
) -> None:
    prepared.append(prepare_request(context, prompts, step, {}))


def over_length(context: RunContext, turn: ReplayTurn) -> str | None:
    """Why a trace turn cannot be sent (its context exceeds max_model_len), or None."""
    num_context_tokens = turn.num_input_tokens + turn.num_output_tokens
    if context.max_model_len is None or num_context_tokens <= context.max_model_len:
        return None
    return f"{SKIPPED_PREFIX} context {num_context_tokens} tokens > max_model_len {context.max_model_len}"
