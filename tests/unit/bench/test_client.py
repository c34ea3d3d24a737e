from __future__ import annotations

import asyncio
from typing import Any

from ppd.bench.client import HttpBackend, RawTurn, TurnRequest, make_session, record_chunk, request_timeout


async def _send(url: str, path: str = "/v1/completions", timeout_s: float = 5.0, **body: Any) -> RawTurn:
    request_body = {"model": "fake-model", "prompt": "w1 w2", "max_tokens": 4, "stream": True, **body}
    record = RawTurn()
    async with make_session(0, 5.0) as session:
        backend = HttpBackend(session, url, request_timeout(timeout_s, 5.0))
        await backend.send(TurnRequest(path, request_body, {"X-Session-ID": "s1"}), record)
    return record


def test_ok_stream_records_chunks_usage_and_route_headers(fake_engine: Any) -> None:
    async def scenario() -> tuple[RawTurn, Any]:
        async with fake_engine() as engine:
            return await _send(engine.url, max_tokens=5), engine

    record, engine = asyncio.run(scenario())
    assert record.ok and record.status == 200 and record.error is None
    assert len(record.chunk_times) == 5
    assert record.sent_at is not None and record.sent_at <= record.chunk_times[0] <= record.chunk_times[-1]
    assert record.ended_at is not None and record.ended_at >= record.chunk_times[-1]
    assert record.text == "w7 w8 w9 w10 w11"
    assert record.usage is not None and record.usage["completion_tokens"] == 5
    assert record.headers == {
        "x-ppd-route": "fake-route",
        "x-ppd-upstream": "http://up",
        "x-ppd-prefill-ms": "1.5",
    }
    assert engine.requests[0][2]["X-Session-ID"] == "s1"


def test_a_finished_stream_is_read_to_its_end_so_the_connection_is_reused(fake_engine: Any) -> None:
    async def scenario() -> tuple[list[RawTurn], Any]:
        async with fake_engine(linger_s=0.05) as engine, make_session(0, 5.0) as session:
            backend = HttpBackend(session, engine.url, request_timeout(5.0, 5.0))
            records = [RawTurn(), RawTurn()]
            for record in records:
                body = {"model": "fake-model", "prompt": "w1", "max_tokens": 2, "stream": True}
                await backend.send(TurnRequest("/v1/completions", body, {}), record)
            return records, engine

    records, engine = asyncio.run(scenario())
    assert all(record.ok for record in records)
    assert engine.peers[0] == engine.peers[1]  # one keep-alive connection: no disconnect after [DONE]


def test_chat_stream_reads_delta_content(fake_engine: Any) -> None:
    async def scenario() -> RawTurn:
        async with fake_engine() as engine:
            return await _send(
                engine.url, "/v1/chat/completions", messages=[{"role": "user", "content": "w1"}]
            )

    record = asyncio.run(scenario())
    assert record.ok and record.text == "w7 w8 w9 w10"


def test_failures_become_errors_never_exceptions(fake_engine: Any) -> None:
    async def scenario() -> dict[str, RawTurn]:
        records = {}
        for behaviour in ("http500", "http400", "drop", "error_event", "no_done", "hang"):
            async with fake_engine(lambda body, b=behaviour: b) as engine:
                records[behaviour] = await _send(engine.url, timeout_s=0.3)
        return records

    records = asyncio.run(scenario())
    assert all(not record.ok for record in records.values())
    assert records["http500"].status == 500 and records["http500"].error == "HTTP 500: engine exploded"
    assert records["http400"].error == "HTTP 400: bad prompt"
    assert records["drop"].status == 200 and records["drop"].error is not None
    assert len(records["drop"].chunk_times) == 1
    assert records["error_event"].error == "boom"
    assert records["no_done"].error == "stream ended before [DONE]"
    assert records["hang"].status is None and records["hang"].error == "timeout after 0.3 s"


def test_unreachable_server_is_an_error_row() -> None:
    record = asyncio.run(_send("http://127.0.0.1:9"))
    assert not record.ok and record.status is None
    assert record.error is not None and "Connect" in record.error


def test_record_chunk_ignores_empty_text_and_keeps_usage() -> None:
    record = RawTurn()
    record_chunk(record, b'{"choices":[{"index":0,"text":""}]}', 1.0)
    record_chunk(record, b'{"choices":[{"index":0,"text":" w5"}]}', 2.0)
    record_chunk(record, b'{"choices":[],"usage":{"completion_tokens":1}}', 3.0)
    assert record.chunk_times == [2.0] and record.text == " w5"
    assert record.usage == {"completion_tokens": 1}
    record_chunk(record, b"not json", 4.0)
    assert record.error is not None and record.error.startswith("bad stream chunk")


def test_sse_lines_split_across_reads_are_joined_and_stamped_when_complete() -> None:
    from ppd.bench.client import _read_stream

    pieces = [
        b'data: {"choices":[{"text":" w1"}]}\r\n\r\ndata: {"choi',  # a line cut mid-way
        b'ces":[{"text":" w2"}]}\n\n: a comment\ndata: {"choices":[],"usage":{"completion_tokens":2}}\n\n',
        b"data: [DONE]",  # the last line without its newline
    ]

    class Content:
        async def iter_any(self) -> Any:
            for piece in pieces:
                yield piece

    class Response:
        content = Content()

    record = RawTurn()
    asyncio.run(_read_stream(Response(), record))  # type: ignore[arg-type]
    assert record.text == " w1 w2" and record.done and record.error is None
    assert len(record.chunk_times) == 2 and record.chunk_times[0] < record.chunk_times[1]
    assert record.usage == {"completion_tokens": 2}
