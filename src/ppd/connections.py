"""Client connections a server accepts: at most so many open at once, and each one's request headers
within a deadline.

aiohttp has neither: a probe kept slow-header connections open for 100 s and more, and 19,995 idle
connections were accepted (each a file descriptor and parser buffers). `ConnectionGuard` is the
protocol factory handed to `loop.create_server`; it wraps aiohttp's own (`web.Server`). One
connection more than the cap gets a 503 JSON answer and is closed before any parsing; so does one
more than the per-client cap from one peer address (429: that client holds too many, not the
server), so one client cannot take every connection from the others. A new connection whose first
request headers are not complete within `header_timeout_s` is closed. Later requests on a
kept-alive connection are aiohttp's: its keep-alive timeout closes one that stays idle (a partial
header counts as idle) after its last answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_END_OF_HEADERS = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How many client connections may be open at once, in all and from one peer address (0: no
    per-client cap), and how long a new one may take to send its first request's headers (s)."""

    max_connections: int
    header_timeout_s: float
    max_connections_per_client: int = 0


@dataclass(slots=True)
class ConnectionCounts:
    """What the guard did, since start: /status shows it."""

    num_open: int = 0
    num_accepted: int = 0
    num_refused: int = 0  # over the cap: answered 503 and closed
    num_refused_per_client: int = 0  # over the per-client cap: answered 429 and closed
    num_header_timeouts: int = 0  # closed: no complete request headers in time


def refusal_bytes(max_connections: int) -> bytes:
    """The whole HTTP answer to a connection over the cap: 503, OpenAI-style JSON, then close."""
    message = f"the server has {max_connections} connections open, its limit; retry shortly"
    return _answer_bytes(503, "Service Unavailable", "ServiceUnavailableError", message)


def client_refusal_bytes(max_connections_per_client: int) -> bytes:
    """The whole HTTP answer to a connection over the per-client cap: 429, OpenAI-style JSON, then close."""
    message = (
        f"your address has {max_connections_per_client} connections open to this server, the limit per "
        "client; reuse or close one, or retry shortly"
    )
    return _answer_bytes(429, "Too Many Requests", "RateLimitError", message)


def _answer_bytes(status: int, reason: str, error_type: str, message: str) -> bytes:
    body = json.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": status}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """Protocol factory: aiohttp's protocol for each connection under the cap, with a header deadline."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        limits: ConnectionLimits,
        counts: ConnectionCounts,
        note: Callable[[str], object] | None = None,
    ) -> None:
        self.factory = factory
        self.limits = limits
        self.counts = counts
        self.note = note  # called with one line for each connection refused or timed out
        self._refusal = refusal_bytes(limits.max_connections)
        self._client_refusal = client_refusal_bytes(limits.max_connections_per_client)
        self.open_by_peer: dict[str, int] = {}  # peer address -> its open connections (per-client cap)

    def __call__(self) -> asyncio.Protocol:
        return _GuardedProtocol(self)

    def refusal(self) -> bytes:
        """What a connection over the cap is sent."""
        return self._refusal

    def admit(self, peer: str) -> bytes | None:
        """Count a new connection from `peer` in, or the answer that refuses it (over a cap)."""
        counts, limits = self.counts, self.limits
        if counts.num_open >= limits.max_connections:
            counts.num_refused += 1
            self.write_note(f"refused a connection from {peer}: {counts.num_open} open, the limit")
            return self._refusal
        num_from_peer = self.open_by_peer.get(peer, 0)
        if 0 < limits.max_connections_per_client <= num_from_peer:
            counts.num_refused_per_client += 1
            self.write_note(
                f"refused a connection from {peer}: it has {num_from_peer} open, the per-client limit"
            )
            return self._client_refusal
        self.open_by_peer[peer] = num_from_peer + 1
        counts.num_open += 1
        counts.num_accepted += 1
        return None

    def release(self, peer: str) -> None:
        """An admitted connection from `peer` closed."""
        self.counts.num_open -= 1
        left = self.open_by_peer.pop(peer) - 1
        if left:
            self.open_by_peer[peer] = left

    def write_note(self, text: str) -> None:
        if self.note is not None:
            self.note(text)


class _GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol, once the connection is admitted."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen while the first headers are incomplete
        self._peer = "?"

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._peer = _peer(transport)
        refusal = self._guard.admit(self._peer)
        if refusal is not None:
            transport.write(refusal)
            transport.close()
            return
        self._inner = self._guard.factory()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.limits.header_timeout_s, self._headers_too_slow)
        self._inner.connection_made(transport)

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._guard.counts.num_header_timeouts += 1
        if self._transport is not None:
            timeout_s = self._guard.limits.header_timeout_s
            self._guard.write_note(
                f"closed a connection from {self._peer}: no request headers in {timeout_s:g} s"
            )
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return  # refused: its bytes are dropped with the connection
        if self._deadline is not None:
            # Only the new bytes and the three before them can complete "\r\n\r\n": linear.
            if _END_OF_HEADERS in self._tail + data[:3] or _END_OF_HEADERS in data:
                self._deadline.cancel()
                self._deadline = None
            else:
                self._tail = data[-3:] if len(data) >= 3 else (self._tail + data)[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._inner is None:
            return
        self._guard.release(self._peer)
        inner, self._inner = self._inner, None
        inner.connection_lost(exc)


def _peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"
