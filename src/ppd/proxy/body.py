"""Reading a client's request body: its size, arrival time, Content-Encoding and JSON, piece by piece.

Every check runs on each piece as it arrives (aiohttp hands over up to 64 KiB at a time), so the
work per piece is small and the event loop serves other requests in between: the bytes counted
(`--max-body-bytes`, before and after decoding), the decompression (bounded: a gzip bomb stops at
the limit), and the JSON elements (ppd.jsonshape: a body of 5.6M `{}` is refused after its first
~60 KB instead of being parsed for seconds). Only a body within every bound is joined, then parsed
(proxy/longjson.py: a large one in steps).
"""

from __future__ import annotations

import asyncio
import gc
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ppd.jsonshape import JsonSizeCounter, JsonSizeError, nests_deeper_than
from ppd.openai_api import ApiError

# Deeper JSON is refused: the proxy's own walks over a body (digests, re-encoding) must not recurse
# into a RecursionError. Real requests nest a handful of levels.
MAX_JSON_DEPTH = 64
# Below this many containers json.loads allocates too few objects to set off the cyclic collector
# (its first generation's threshold is 700 allocations): pausing it only costs the pause.
_PAUSE_COLLECTOR_CONTAINERS = 256
# Content-Encodings the proxy decodes itself. aiohttp's own decoding is off: it took any other
# value for identity and answered what it could not decode in text/plain.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_DECODINGS = ("gzip", "x-gzip", "deflate")
_IDENTITY = ("", "identity")
_DECODE_STEP_BYTES = 1 << 20


# A body this large takes milliseconds per step of its handling (json.loads, json.dumps for P and
# D: ~5-10 ms per MB each): each such step is followed by a turn of the event loop, so /health and
# other requests wait for one step, not the sum of them.
LARGE_BODY_BYTES = 1 << 20


async def pause_if_large(num_bytes: int) -> None:
    """Let the event loop serve others before the next step over a large body."""
    if num_bytes > LARGE_BODY_BYTES:
        await asyncio.sleep(0)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What a client's request body may be: bytes (also once decoded), arrival time, JSON elements."""

    max_body_bytes: int
    body_timeout_s: float
    max_json_elements: int


async def read_body(request: web.Request, limits: BodyLimits) -> tuple[bytes, int]:
    """The request's (decoded) body bytes and their number of opening brackets (for
    parse_json_object): ApiError 413 when too large, 408 when it does not arrive whole within the
    timeout, 415 for a Content-Encoding other than identity, gzip or deflate, 400 when it is broken
    or has too many JSON elements.

    A body refused before its end leaves the rest unread: the caller closes the connection.
    """
    max_bytes = limits.max_body_bytes
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, f"request body of {request.content_length} bytes exceeds {max_bytes}")
    encoding = content_encoding(request.headers.get("Content-Encoding", ""))
    reader = _CheckedBody(limits, encoding)
    content = request.content
    try:
        if content.is_eof():
            # The whole body came with the headers (as any small request's does): nothing to wait
            # for, so no deadline to arm (asyncio.timeout and the async iteration were a fifth of
            # this function's cost per request in a profile under load).
            piece = content.read_nowait()
            if piece:
                await reader.feed(piece)
        else:
            async with asyncio.timeout(limits.body_timeout_s):
                async for piece in content.iter_any():
                    await reader.feed(piece)
    except TimeoutError as exc:
        raise ApiError(408, f"request body did not arrive within {limits.body_timeout_s:g} s") from exc
    except (HttpProcessingError, RequestPayloadError) as exc:
        raise ApiError(400, f"request body is malformed: {' '.join(str(exc).split())}") from exc
    return reader.finish(), reader.counter.num_containers


def content_encoding(header: str) -> str:
    """The one Content-Encoding the proxy can decode, lower case; ApiError 415 for anything else."""
    encoding = header.strip().lower()
    if encoding in _IDENTITY or encoding in _DECODINGS:
        return encoding
    allowed = "identity, gzip, deflate"
    raise ApiError(415, f"Content-Encoding {header!r} is not supported; send one of: {allowed}")


class _CheckedBody:
    """A body's pieces, decoded and counted as they arrive; ApiError as soon as one is over a bound."""

    def __init__(self, limits: BodyLimits, encoding: str) -> None:
        self.counter = JsonSizeCounter(limits.max_json_elements)
        self._max_bytes = limits.max_body_bytes
        self._encoding = encoding
        self._decoder: Any = None  # zlib.Decompress, made once the first bytes tell which kind
        self._num_raw_bytes = 0
        self._num_bytes = 0
        self._pieces: list[bytes] = []

    async def feed(self, piece: bytes) -> None:
        """Take one piece as it arrived: count, decode (a MiB at a time, the loop turning between
        steps: 64 KiB of gzip can hold 64 MiB), check; ApiError as soon as a bound is passed."""
        self._num_raw_bytes += len(piece)
        if self._num_raw_bytes > self._max_bytes:
            raise ApiError(413, f"request body exceeds {self._max_bytes} bytes")
        if self._encoding in _IDENTITY:
            self._take(piece)
            return
        for step, data in enumerate(self._decoded(piece)):
            if step:
                await asyncio.sleep(0)
            self._take(data)

    def _take(self, data: bytes) -> None:
        self._num_bytes += len(data)
        if self._num_bytes > self._max_bytes:
            raise ApiError(
                413, f"request body exceeds {self._max_bytes} bytes once decoded ({self._encoding})"
            )
        try:
            self.counter.feed(data)
        except JsonSizeError as exc:
            raise ApiError(400, f"request body has {exc} (raise --max-json-elements to allow it)") from exc
        self._pieces.append(data)

    def _decoded(self, piece: bytes) -> Iterator[bytes]:
        if self._decoder is None:
            self._decoder = zlib.decompressobj(_window_bits(self._encoding, piece))
        pending = piece
        while pending:
            if self._decoder.eof:
                self._broken()  # bytes after the end of the compressed stream
            # Never more than one byte past what may still come: a bomb stops at the limit.
            max_length = min(_DECODE_STEP_BYTES, self._max_bytes - self._num_bytes + 1)
            try:
                yield self._decoder.decompress(pending, max_length)
            except zlib.error:
                self._broken()
            pending = self._decoder.unconsumed_tail

    def _broken(self) -> NoReturn:
        raise ApiError(
            400, f"request body is not valid {self._encoding} (corrupt, cut short or with trailing data)"
        )

    def finish(self) -> bytes:
        """The whole decoded body, once the last piece is in."""
        decoder = self._decoder
        if self._encoding not in _IDENTITY and (decoder is None or not decoder.eof or decoder.unused_data):
            self._broken()
        return b"".join(self._pieces)


def _window_bits(encoding: str, first_bytes: bytes) -> int:
    if encoding != "deflate":
        return _GZIP_WBITS
    # "deflate" is zlib-wrapped by the standard and raw by some clients; a zlib header says which.
    is_zlib = (
        len(first_bytes) >= 2 and first_bytes[0] & 0x0F == 8 and int.from_bytes(first_bytes[:2]) % 31 == 0
    )
    return zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS


def parse_json_object(raw: bytes, num_containers: int) -> dict[str, Any]:
    """A JSON object from bytes already within the element bounds (`num_containers`: its opening
    brackets); ApiError 400 when it is not JSON, not an object, or nests over MAX_JSON_DEPTH."""
    try:
        if num_containers < _PAUSE_COLLECTOR_CONTAINERS:
            body = json.loads(raw)  # too few objects to start a collection: no pause to pay for
        else:
            with collector_paused():
                body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    # Only a body with many brackets can nest deeply; the walk is bounded by the element count.
    if num_containers > MAX_JSON_DEPTH and nests_deeper_than(body, MAX_JSON_DEPTH):
        raise ApiError(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


@contextmanager
def collector_paused() -> Iterator[None]:
    # json.loads allocates every container at once: the cyclic collector's passes over them would
    # only add time (nothing parsed can be garbage yet).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
