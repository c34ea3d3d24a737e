"""Client connections a server accepts: at most so many open at once, and each one's request headers
within a deadline.

aiohttp has neither: a probe kept slow-header connections open for 100 s and more, and 19,995 idle
connections were accepted (each a file descriptor and parser buffers). `ConnectionGuard` is the
protocol factory handed to `loop.create_server`; it wraps aiohttp's own (`web.Server`). One
connection more than the cap gets a 503 JSON answer and is closed before any parsing; a new
connection whose first request headers are not complete within `header_timeout_s` is closed. Later
requests on a kept-alive connection are aiohttp's: its keep-alive timeout closes one that stays
idle (a partial header counts as idle) after its last answer.
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
    """How many client connections may be open at once, and how long a new one may take to send
    its first request's headers (s)."""

    max_connections: int
    header_timeout_s: float


@dataclass(slots=True)
class ConnectionCounts:
    """What the guard did, since start: /status shows it."""

    num_open: int = 0
    num_accepted: int = 0
    num_refused: int = 0  # over the cap: answered 503 and closed
    num_header_timeouts: int = 0  # closed: no complete request headers in time


def refusal_bytes(max_connections: int) -> bytes:
    """The whole HTTP answer to a connection over the cap: 503, OpenAI-style JSON, then close."""
    message = f"the server has {max_connections} connections open, its limit; retry shortly"
    body = json.dumps(
        {"error": {"message": message, "type": "ServiceUnavailableError", "param": None, "code": 503}}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
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

    def __call__(self) -> asyncio.Protocol:
        return _GuardedProtocol(self)

    def refusal(self) -> bytes:
        """What a connection over the cap is sent."""
        return self._refusal


class _GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol, once the connection is admitted."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen while the first headers are incomplete

    def connection_made(self, transport: Any) -> None:
        counts = self._guard.counts
        self._transport = transport
        if counts.num_open >= self._guard.limits.max_connections:
            counts.num_refused += 1
            self._note(f"refused a connection from {_peer(transport)}: {counts.num_open} open, the limit")
            transport.write(self._guard.refusal())
            transport.close()
            return
        counts.num_open += 1
        counts.num_accepted += 1
        self._inner = self._guard.factory()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._guard.limits.header_timeout_s, self._headers_too_slow)
        self._inner.connection_made(transport)

    def _headers_too_slow(self) -> None:
        self._deadline = None
        self._guard.counts.num_header_timeouts += 1
        if self._transport is not None:
            timeout_s = self._guard.limits.header_timeout_s
            self._note(
                f"closed a connection from {_peer(self._transport)}: no request headers in {timeout_s:g} s"
            )
            self._transport.abort()

    def _note(self, text: str) -> None:
        if self._guard.note is not None:
            self._guard.note(text)

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
        self._guard.counts.num_open -= 1
        inner, self._inner = self._inner, None
        inner.connection_lost(exc)


def _peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"
