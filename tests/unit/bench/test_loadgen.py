from __future__ import annotations

import asyncio
from dataclasses import fields, replace
from typing import Any

import pytest

from ppd.bench.arrivals import plan_conversations
from ppd.bench.client import HttpBackend, make_session, request_timeout
from ppd.bench.config import BenchConfig
from ppd.bench.loadgen import RunContext, RunPoint, run_point
from ppd.bench.workloads import parse_workloads
from ppd.results import RunInfo, TurnRow

WORKLOAD = parse_workloads("3/2", num_turns=3)[0]


def _config(url: str, **overrides: Any) -> BenchConfig:
    base = BenchConfig(
        url=url,
        workloads=(WORKLOAD,),
        qps=(5.0,),
        duration_s=0.5,
        drain_timeout_s=5.0,
        poisson=False,
        prompt_salt="s",
        quiet=True,
    )
    return replace(base, **overrides)


async def _run(url: str, mode: str = "ppd", run: int = 0, **overrides: Any) -> tuple[RunInfo, list[TurnRow]]:
    config = _config(url, **overrides)
    rows: list[TurnRow] = []
    async with make_session(0, 5.0) as session:
        backend = HttpBackend(session, url, request_timeout(config.request_timeout_s, 5.0))
        context = RunContext(
            RunPoint(mode, WORKLOAD, 5.0, run), config, "fake-model", "s", backend, rows.append
        )
        plans = plan_conversations(WORKLOAD, 5.0, config.duration_s, config.seed, run, config.poisson)
        info = await run_point(context, plans)
    return info, sorted(rows, key=lambda row: (row.conversation, row.turn))


def test_turns_grow_the_history_and_rows_carry_everything(fake_engine: Any) -> None:
    async def scenario() -> tuple[RunInfo, list[TurnRow], Any]:
        async with fake_engine() as engine:
            info, rows = await _run(engine.url)
            return info, rows, engine

    info, rows, engine = asyncio.run(scenario())
    assert info.num_conversations == 2 and info.offered_rate == 4.0  # 0.2 s and 0.4 s in a 0.5 s window
    assert [(row.conversation, row.turn) for row in rows] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert all(row.ok and row.sent and row.status == 200 and row.error is None for row in rows)
    assert all(
        row.route == "fake-route" and row.upstream == "http://up" and row.prefill_ms == 1.5 for row in rows
    )
    assert [row.prompt_tokens for row in rows[:3]] == [3, 8, 13]  # 3 new words + 2 answer words per turn
    assert all(row.cached_tokens == 3 and row.output_tokens == 2 for row in rows)
    assert all(row.ttft_ms is not None and row.e2e_ms is not None and row.tpot_ms is not None for row in rows)
    assert rows[0].scheduled_s == pytest.approx(0.2) and rows[3].scheduled_s == pytest.approx(0.4)
    assert all(row.sent_s is not None and row.schedule_lag_ms is not None for row in rows)
    assert rows[1].scheduled_s >= rows[0].sent_s  # turn 2 follows turn 1's completion
    prompts = [
        body["prompt"]
        for _, body, headers in engine.requests
        if headers["X-Session-ID"] == rows[0].conversation_id
    ]
    assert prompts[1].startswith(prompts[0] + " w7 w8 ") and len(prompts[1].split()) == 8
    assert prompts[2].startswith(prompts[1] + " w7 w8 ")
    assert all(
        body["max_tokens"] == 2 and body["ignore_eos"] and body["model"] == "fake-model"
        for _, body, _ in engine.requests
    )
    assert rows[0].conversation_id != rows[3].conversation_id


def _rows_with_every_turn_2_failing(fake_engine: Any) -> list[TurnRow]:
    def behaviour(body: dict[str, Any]) -> str:
        return "http500" if len(body["prompt"].split()) == 8 else "ok"  # every turn 2

    async def scenario() -> list[TurnRow]:
        async with fake_engine(behaviour) as engine:
            return (await _run(engine.url))[1]

    return asyncio.run(scenario())


def test_a_failed_turn_stops_its_conversation(fake_engine: Any) -> None:
    rows = _rows_with_every_turn_2_failing(fake_engine)
    assert [(row.turn, row.sent, row.ok) for row in rows[:3]] == [
        (1, True, True),
        (2, True, False),
        (3, False, False),
    ]
    assert rows[1].status == 500 and rows[1].error == "HTTP 500: engine exploded"
    assert rows[2].error == "not sent: turn 2 failed" and rows[2].sent_s is None


def test_an_unsent_turn_is_the_row_of_its_conversation_with_nothing_measured(fake_engine: Any) -> None:
    rows = _rows_with_every_turn_2_failing(fake_engine)
    failed, unsent = rows[1], rows[2]
    assert failed.sent and failed.sent_s is not None and failed.status == 500
    nothing_measured = TurnRow(
        "", "", 0.0, 0, 0, "", 0, False, False, None, None, 0.0, None, None, None, None, None
    )
    identity = {"mode", "workload", "qps", "run", "conversation", "conversation_id"}
    for column in fields(TurnRow):
        if column.name in identity:
            assert getattr(unsent, column.name) == getattr(failed, column.name), column.name
        elif column.name not in {"turn", "error", "scheduled_s"}:
            assert getattr(unsent, column.name) == getattr(nothing_measured, column.name), column.name
    assert unsent.turn == 3 and unsent.error == "not sent: turn 2 failed"
    assert unsent.scheduled_s >= failed.sent_s  # due when turn 2 ended


def test_the_drain_timeout_cuts_off_in_flight_turns(fake_engine: Any) -> None:
    def behaviour(body: dict[str, Any]) -> str:
        return "hang" if len(body["prompt"].split()) == 8 else "ok"

    async def scenario() -> tuple[RunInfo, list[TurnRow]]:
        async with fake_engine(behaviour) as engine:
            return await _run(engine.url, drain_timeout_s=0.2)

    info, rows = asyncio.run(scenario())
    assert 0.6 < info.elapsed_s < 5.0
    cut = [row for row in rows if row.turn == 2]
    assert all(row.sent and not row.ok and row.error == "cut off by the drain timeout (0.2 s)" for row in cut)
    assert all(
        not row.sent and row.error == "not sent: cut off by the drain timeout (0.2 s)"
        for row in rows
        if row.turn == 3
    )


def test_no_session_id_and_warmup_flags(fake_engine: Any) -> None:
    async def scenario() -> tuple[list[TurnRow], Any]:
        async with fake_engine() as engine:
            return (await _run(engine.url, send_session_id=False, warmup_s=0.3))[1], engine

    rows, engine = asyncio.run(scenario())
    assert all("X-Session-ID" not in headers for _, _, headers in engine.requests)
    assert rows[0].in_warmup and not rows[3].in_warmup  # sent at ~0.2 s and ~0.4 s


def test_modes_get_distinct_prompts_on_the_same_schedule(fake_engine: Any) -> None:
    async def scenario() -> dict[str, tuple[list[TurnRow], list[str]]]:
        results = {}
        for mode, run in (("pd", 0), ("ppd", 0), ("pd", 1)):
            async with fake_engine() as engine:
                rows = (await _run(engine.url, mode=mode, run=run))[1]
                results[f"{mode}{run}"] = rows, [body["prompt"] for _, body, _ in engine.requests]
        return results

    results = asyncio.run(scenario())
    (pd_rows, pd_prompts), (ppd_rows, ppd_prompts) = results["pd0"], results["ppd0"]
    assert [row.scheduled_s for row in pd_rows if row.turn == 1] == [
        row.scheduled_s for row in ppd_rows if row.turn == 1
    ]
    assert not set(pd_prompts) & set(ppd_prompts)
    assert not set(pd_prompts) & set(results["pd1"][1])


def test_cancelling_a_run_records_in_flight_turns_as_interrupted(fake_engine: Any) -> None:
    rows: list[TurnRow] = []

    async def scenario() -> None:
        async with fake_engine(lambda body: "hang" if len(body["prompt"].split()) == 8 else "ok") as engine:
            config = _config(engine.url, duration_s=0.3)
            async with make_session(0, 5.0) as session:
                backend = HttpBackend(session, engine.url, request_timeout(60.0, 5.0))
                context = RunContext(
                    RunPoint("pd", WORKLOAD, 5.0, 0), config, "fake-model", "s", backend, rows.append
                )
                plans = plan_conversations(WORKLOAD, 5.0, 0.3, 0, 0, False)
                task = asyncio.create_task(run_point(context, plans))
                # Cancel once turn 2 hangs in the engine. Not after a fixed sleep: run_point first
                # builds the prompt corpus (~1 s in a fresh process) before its clock starts.
                async with asyncio.timeout(30):
                    while len(engine.requests) < 2:
                        await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

    asyncio.run(scenario())
    by_turn = {row.turn: row for row in rows}
    assert by_turn[1].ok
    assert by_turn[2].sent and by_turn[2].error == "interrupted"
    assert not by_turn[3].sent and by_turn[3].error == "not sent: interrupted"
