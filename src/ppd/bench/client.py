"""Sending one turn and recording, as bytes arrive, what came back: raw perf_counter stamps only.

Metrics (TTFT, TPOT, ...) are computed afterwards from a RawTurn by ppd.bench.metrics. The record is
filled in place, so a turn cut off mid-stream (drain timeout, Ctrl-C) keeps what had arrived.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from ppd.turn_trace import TurnTrace

ROUTE_HEADERS = ("x-ppd-route", "x-ppd-upstream", "x-ppd-prefill-ms", "x-ppd-prefill-cached-tokens")
_MAX_ERROR_BODY_BYTES = 65536
_MAX_LINE_BYTES = 1 << 20  # one SSE line (a chunk with a huge text is still far below)


@dataclass(frozen=True)
class TurnRequest:
    """One HTTP request: path under the base URL, JSON body, extra headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    data: bytes | None = None  # the body already JSON-encoded (a trace request prepared ahead)


@dataclass
class RawTurn:
    """What the client saw of one request; times are time.perf_counter() values in s."""

    sent_at: float | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # the route headers that were present
    chunk_times: list[float] = field(default_factory=list)  # arrival of each content-bearing chunk
    text_parts: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    done: bool = False  # saw `data: [DONE]`
    error: str | None = None
    ended_at: float | None = None

    @property
    def text(self) -> str:
        """The answer text as streamed."""
        return "".join(self.text_parts)

    @property
    def ok(self) -> bool:
        """A 200 whose stream ended with [DONE] and no error."""
        return self.status == 200 and self.done and self.error is None


class Backend(Protocol):
    """Sends a turn and fills `record` as the response arrives; never raises for a failed request."""

    async def send(self, request: TurnRequest, record: RawTurn) -> None: ...


class HttpBackend:
    """OpenAI-compatible streaming client over one shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        timeout: aiohttp.ClientTimeout,
        trace: TurnTrace | None = None,
    ):
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._trace = trace  # per-request stamps (PPD_TURN_TRACE), None unless asked for

    async def send(self, request: TurnRequest, record: RawTurn) -> None:
        """POST the request and record the stream; failures become record.error."""
        url = self._base_url + request.path
        data = request.data  # encoded ahead, or here before the send stamp
        if data is None:
            data = json.dumps(request.body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **request.headers}
        record.sent_at = time.perf_counter()
        try:
            async with self._session.post(url, data=data, headers=headers, timeout=self._timeout) as response:
                record.status = response.status
                record.headers = {
                    name: response.headers[name] for name in ROUTE_HEADERS if name in response.headers
                }
                if response.status != 200:
                    record.error = await _error_text(response)
                else:
                    await _read_stream(response, record)
        except TimeoutError:
            record.error = f"timeout after {self._timeout.total} s"
        except aiohttp.ClientPayloadError as exc:
            record.error = f"broken stream: {exc}"
        except Exception as exc:  # any failure is a row (ClientError, OSError, a too-long line...)
            record.error = f"{type(exc).__name__}: {exc}"
        finally:
            record.ended_at = time.perf_counter()
            if self._trace is not None:  # also for a turn cut off (cancelled) mid-stream
                self._write_trace(self._trace, request, record)
        if record.error is None and not record.done:
            record.error = "stream ended before [DONE]"

    @staticmethod
    def _write_trace(trace: TurnTrace, request: TurnRequest, record: RawTurn) -> None:
        first = record.chunk_times[0] if record.chunk_times else None
        session_id = request.headers.get("X-Session-ID")
        trace.write("bench", sid=session_id, sent=record.sent_at, first=first, ended=record.ended_at)


async def _read_stream(response: aiohttp.ClientResponse, record: RawTurn) -> None:
    # Read to the end of the body, not just to [DONE]: leaving early closes the connection, which a
    # proxy sees as a client gone mid-answer (and the connection could not be reused).
    # One await per arrival of bytes, not per line: the lines of a read are split in C. Reading line by
    # line (StreamReader.readline under two async generators) cost ~10 us of event loop per SSE line,
    # two lines per chunk; at the bench's chunk rates that held the loop long enough to delay sends.
    pending = b""
    async for data in response.content.iter_any():
        arrived_at = time.perf_counter()  # stamp before parsing: when the bytes were here
        lines = (pending + data if pending else data).split(b"\n")
        pending = lines.pop()
        if len(pending) > _MAX_LINE_BYTES:
            record.error = f"stream line longer than {_MAX_LINE_BYTES} bytes"
            return
        if not _record_lines(record, lines, arrived_at):
            return
    if pending:
        _record_lines(record, [pending], time.perf_counter())


def _record_lines(record: RawTurn, lines: list[bytes], arrived_at: float) -> bool:
    """Add the SSE `data:` lines of one read to the record; False once it holds an error."""
    for line in lines:
        if not line.startswith(b"data:"):
            continue  # the blank line ending each event, comments, other fields
        payload = line[5:].strip()
        if payload == b"[DONE]":
            record.done = True
        elif not record.done:
            record_chunk(record, payload, arrived_at)
            if record.error is not None:
                return False
    return True


def record_chunk(record: RawTurn, payload: bytes, arrived_at: float) -> None:
    """Add one SSE data payload (completions or chat chunk, usage, or error) to the record."""
    try:
        chunk = json.loads(payload)
    except ValueError:
        record.error = f"bad stream chunk: {payload[:200]!r}"
        return
    if not isinstance(chunk, dict):
        record.error = f"bad stream chunk: {payload[:200]!r}"
        return
    if "error" in chunk:
        record.error = _message_of(chunk)
        return
    text = _chunk_text(chunk)
    if text:
        record.chunk_times.append(arrived_at)
        record.text_parts.append(text)
    usage = chunk.get("usage")
    if usage:
        record.usage = usage


def _chunk_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices")
    if not choices:
        return ""
    choice = choices[0]
    text = choice.get("text")
    if text is None:
        text = (choice.get("delta") or {}).get("content")
    return text or ""


async def _error_text(response: aiohttp.ClientResponse) -> str:
    raw = await response.content.read(_MAX_ERROR_BODY_BYTES)
    try:
        message = _message_of(json.loads(raw))
    except ValueError:
        message = raw.decode("utf-8", "replace").strip()[:300]
    return f"HTTP {response.status}: {message}"


def _message_of(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error if error is not None else body)[:300]


class ConnectionCount:
    """How many TCP connections a client session has opened (aiohttp's connection-create hook): a
    request that finds no idle kept-alive connection opens one first, and pays its set-up."""

    def __init__(self) -> None:
        self.opened = 0
        self.trace_config = aiohttp.TraceConfig()
        self.trace_config.on_connection_create_end.append(self._on_opened)

    async def _on_opened(self, session: aiohttp.ClientSession, context: Any, params: Any) -> None:
        self.opened += 1


def make_session(
    max_connections: int, connect_timeout_s: float, connections: ConnectionCount | None = None
) -> aiohttp.ClientSession:
    """The one client session of an invocation; 0 connections means unlimited (open loop)."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s)
    trace_configs = [connections.trace_config] if connections is not None else None
    return aiohttp.ClientSession(connector=connector, timeout=timeout, trace_configs=trace_configs)


def request_timeout(request_timeout_s: float, connect_timeout_s: float) -> aiohttp.ClientTimeout:
    """The per-request timeout: the whole request, and the connection setup within it."""
    return aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=connect_timeout_s)
