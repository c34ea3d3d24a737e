"""Forwarding: the NIXL two-hop request bodies, the prefill call, and the streaming relay.

Protocol (vLLM NixlConnector, stock): P gets the client's body with `stream=false`, `max_tokens=1`
(and `max_completion_tokens=1` for chat), no `stream_options` / `min_tokens`, and a
`kv_transfer_params` asking for remote decode. P answers with its own `kv_transfer_params`, which go
to D with the client's original body. P and D see the same X-Request-Id, the proxy's own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from ppd.openai_api import PREFILL_KV_TRANSFER_PARAMS, ApiError

_PREFILL_DROPPED_FIELDS = ("stream_options", "min_tokens")
# Hop-by-hop and framing headers are the proxy's own business, not the upstream's; so is the
# request id (the proxy's own, which P and D share).
_FORWARDED_REQUEST_HEADERS = ("Authorization",)


def prefill_body(body: dict[str, Any], is_chat: bool) -> dict[str, Any]:
    """The request for P: prefill only (one token), and keep the KV for a remote decode."""
    prefill = {key: value for key, value in body.items() if key not in _PREFILL_DROPPED_FIELDS}
    prefill["stream"] = False
    prefill["max_tokens"] = 1
    if is_chat:
        prefill["max_completion_tokens"] = 1
    prefill["kv_transfer_params"] = dict(PREFILL_KV_TRANSFER_PARAMS)
    return prefill


def decode_body(body: dict[str, Any], kv_transfer_params: dict[str, Any]) -> dict[str, Any]:
    """The request for D: the client's body plus P's answer telling D where to pull the KV from."""
    return {**body, "kv_transfer_params": kv_transfer_params}


def decode_request_bytes(raw_body: bytes, body: dict[str, Any], kv_transfer_params: dict[str, Any]) -> bytes:
    """decode_body, encoded: the client's own bytes with P's kv_transfer_params added as the last
    member, when they are a plain UTF-8 object (re-encoding a long prompt cost ~10 ms per MB);
    json.dumps of decode_body otherwise. The client's body has no kv_transfer_params of its own
    (inputs.PROXY_OWNED_FIELDS), so no key is repeated."""
    text = raw_body.strip()
    if text[:1] != b"{" or text[-1:] != b"}" or "kv_transfer_params" in body:
        return json.dumps(decode_body(body, kv_transfer_params)).encode()
    member = b'"kv_transfer_params": ' + json.dumps(kv_transfer_params).encode()
    # One copy of a long body, not one per `+`.
    return b"".join((memoryview(text)[:-1], b", " if body else b"", member, b"}"))


class TurnConnections:
    """The TCP connections to engines that one turn's requests opened (none: all found an idle
    kept-alive connection in the proxy's pool). Counted by the client session's connection hook
    (app.connection_counting) for the turn whose task made the request (TURN_CONNECTIONS)."""

    __slots__ = ("opened",)

    def __init__(self) -> None:
        self.opened = 0


TURN_CONNECTIONS: ContextVar[TurnConnections | None] = ContextVar("ppd_turn_connections", default=None)


def release_body(body: dict[str, Any], is_chat: bool, kv_transfer_params: dict[str, Any]) -> dict[str, Any]:
    """The request that has D take the KV P prefilled and let it go: P's own one-token request with
    P's kv_transfer_params. D pulls (P frees its blocks, as when vLLM's D aborts a remote-prefill
    request), generates one token and is done. D accepts it: it is what P accepted."""
    return decode_body(prefill_body(body, is_chat), kv_transfer_params)


async def release_kv(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    data: bytes,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> str | None:
    """Send a release_body (encoded: `data`) to D (base URL `url`); None when D took the KV, else why not."""
    try:
        response = await open_upstream(session, url, path, data, headers, timeout)
    except (UpstreamFailed, UpstreamRejected) as exc:
        return str(exc)
    try:
        await response.read()
    except (TimeoutError, aiohttp.ClientError) as exc:
        return f"{url}: answer broken off: {type(exc).__name__} {exc}"
    finally:
        response.release()
    return None


class UpstreamFailed(Exception):
    """The upstream (base URL `url`) could not be reached or did not answer in time: 502."""

    def __init__(self, url: str, message: str, unreachable: bool) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.unreachable = unreachable  # connection refused or reset: take it out of service


class PrefillAnswerInvalid(UpstreamFailed):
    """P answered 200, but not with JSON carrying kv_transfer_params: the answer's shape may follow
    from the request, so it is judged like a 5xx (turns._Forward.suspects)."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(url, message, unreachable=False)


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """A non-200 answer, relayed to the client: 4xx as is, 5xx as 502."""

    status: int
    content_type: str
    body: bytes


class UpstreamRejected(Exception):
    """The upstream answered with an error status before any streaming began."""

    def __init__(self, url: str, answer: UpstreamAnswer) -> None:
        super().__init__(f"{url} answered {answer.status}")
        self.url = url
        self.answer = answer


def upstream_headers(request_headers: Any, request_id: str) -> dict[str, str]:
    """Headers sent upstream: JSON content, the shared request id, the client's Authorization."""
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    authorization = request_headers.get(_FORWARDED_REQUEST_HEADERS[0])
    if authorization:
        headers["Authorization"] = authorization
    return headers


async def open_upstream(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    data: bytes,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> aiohttp.ClientResponse:
    """POST url+path and wait for the response headers; UpstreamFailed or UpstreamRejected on error."""
    try:
        response = await session.post(url + path, data=data, headers=headers, timeout=timeout)
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise UpstreamFailed(url, f"cannot connect: {exc}", unreachable=True) from exc
    except TimeoutError as exc:
        raise UpstreamFailed(url, f"no answer: {type(exc).__name__} {exc}", unreachable=False) from exc
    except aiohttp.ClientConnectionError as exc:  # reset or closed before any answer: the engine went away
        raise UpstreamFailed(url, f"connection lost: {type(exc).__name__} {exc}", unreachable=True) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamFailed(url, f"no answer: {type(exc).__name__} {exc}", unreachable=False) from exc
    if response.status != 200:
        try:
            payload = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            payload = b""
        finally:
            response.release()
        content_type = response.headers.get("Content-Type", "application/json")
        raise UpstreamRejected(url, UpstreamAnswer(response.status, content_type, payload))
    return response


async def call_prefill(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    data: bytes,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> tuple[dict[str, Any], int | None]:
    """Run the prefill hop at P (base URL `url`) with `data`, the encoded prefill_body; P's
    kv_transfer_params for D, and the prompt tokens P found in its own prefix cache (its
    usage.prompt_tokens_details.cached_tokens, when given)."""
    response = await open_upstream(session, url, path, data, headers, timeout)
    try:
        payload = json.loads(await response.read())
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise UpstreamFailed(url, f"prefill answer broken off: {exc}", unreachable=False) from exc
    except ValueError as exc:
        raise PrefillAnswerInvalid(url, "prefill answer is not JSON") from exc
    finally:
        response.release()
    params = payload.get("kv_transfer_params") if isinstance(payload, dict) else None
    if not isinstance(params, dict):
        message = "prefill answer has no kv_transfer_params (is P started with a NixlConnector?)"
        raise PrefillAnswerInvalid(url, message)
    return params, cached_tokens_of(payload.get("usage"))


def cached_tokens_of(usage: object) -> int | None:
    """usage.prompt_tokens_details.cached_tokens, when the answer has it."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return cached if isinstance(cached, int) and not isinstance(cached, bool) else None


def rejection_response(rejected: UpstreamRejected) -> web.Response:
    """The client's answer to an upstream error status: 4xx passed through, 5xx as 502."""
    answer = rejected.answer
    if 400 <= answer.status < 500:
        return web.Response(status=answer.status, body=answer.body, content_type=_mime(answer.content_type))
    detail = answer.body[:500].decode(errors="replace")
    raise ApiError(502, f"upstream {rejected.url} answered {answer.status}: {detail}")


def _mime(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip() or "application/json"


@dataclass(slots=True)
class RelayResult:
    """How a relayed answer went: raw perf_counter stamps (s) and the upstream error, if any."""

    first_byte_s: float | None = None
    last_byte_s: float | None = None
    upstream_error: str | None = None  # the upstream broke off after the headers were sent
    client_gone: bool = False  # the client closed the connection mid-stream


async def read_first_chunk(url: str, upstream: aiohttp.ClientResponse) -> tuple[bytes, float]:
    """The answer's first bytes and their arrival (perf_counter s), read before the client's headers.

    Until then a failure can still be answered cleanly, or retried elsewhere: an engine that dies
    while it prefills breaks no client stream. UpstreamFailed (`unreachable` unless it timed out).
    """
    try:
        chunk = await upstream.content.readany()
    except TimeoutError as exc:
        raise UpstreamFailed(url, f"no answer: {type(exc).__name__} {exc}", unreachable=False) from exc
    except aiohttp.ClientError as exc:
        message = f"broke off before the first byte: {type(exc).__name__} {exc}"
        raise UpstreamFailed(url, message, unreachable=True) from exc
    return chunk, time.perf_counter()


async def relay_stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    headers: dict[str, str],
    on_bytes: Callable[[bytes], None],
    first: tuple[bytes, float] = (b"", 0.0),
) -> tuple[web.StreamResponse, RelayResult]:
    """Write the upstream body to the client chunk by chunk as it arrives, calling on_bytes(chunk).

    `first`: the chunk read_first_chunk returned, and its arrival stamp, sent before any other.

    A client that goes away is noticed at the next write (`client_gone`), or sooner by the server
    cancelling the handler (CancelledError); either way the caller then closes the upstream
    response, which aborts the request upstream.
    """
    result = RelayResult()
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = _mime(upstream.headers.get("Content-Type", "text/event-stream"))
    await response.prepare(request)
    reader = upstream.content
    chunk, first_byte_s = first
    if chunk:
        result.first_byte_s = first_byte_s
    while True:
        if not chunk:
            try:
                chunk = await reader.readany()
            except (TimeoutError, aiohttp.ClientError) as exc:
                # Headers are sent: break the connection so the client sees an incomplete stream.
                # Closing the transport (not only force_close) keeps aiohttp from ending the chunked
                # body cleanly, which would make the cut answer look whole and leave the client a
                # pooled connection that is about to close under its next request.
                result.upstream_error = f"stream from {upstream.url} broken off: {type(exc).__name__} {exc}"
                response.force_close()
                if request.transport is not None:
                    request.transport.close()
                return response, result
            if not chunk:
                break
        if result.first_byte_s is None:
            result.first_byte_s = time.perf_counter()
        on_bytes(chunk)
        try:
            await response.write(chunk)
        except ConnectionResetError:
            result.client_gone = True  # the caller's `finally` closes the upstream: it aborts
            return response, result
        chunk = b""
    result.last_byte_s = time.perf_counter()
    await response.write_eof()
    return response, result
