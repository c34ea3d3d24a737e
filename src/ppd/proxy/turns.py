"""Serving one turn over HTTP: parse, let the router core decide, forward (one or two hops), record.

Every decision is the router core's (ppd.router.core.Router): which conversation this is, where the
turn goes, what a failure means (failover.classify) and where it goes next, what the load counters
and the conversation's state become. This module carries the decisions out over HTTP: the P hop
when the route has one, the streaming relay from the target, and the client's answer. The client's
response headers are sent only after the target's first bytes arrived, so every failure before that
is a clean OpenAI-style error, or a failover: a P that fails, refuses or times out leaves the turn
to D alone, and a target that cannot be reached (or answers 5xx) gets the turn routed once more
without it. When D refuses (4xx) a request P already prefilled, D is sent P's one-token request in
the background so that P's KV is handed back at once. All stamps are `time.perf_counter()`
seconds, the router's clock in the proxy.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from ppd.openai_api import ApiError, api_error_response, error_response
from ppd.proxy.body import pause_if_large, read_body
from ppd.proxy.capture import AnswerCapture
from ppd.proxy.inputs import TurnRequest, parse_turn_request
from ppd.proxy.longjson import parse_in_steps
from ppd.proxy.relay import (
    TURN_CONNECTIONS,
    PrefillAnswerInvalid,
    TurnConnections,
    UpstreamFailed,
    UpstreamRejected,
    call_prefill,
    decode_request_bytes,
    open_upstream,
    prefill_body,
    read_first_chunk,
    rejection_response,
    relay_stream,
    release_body,
    release_kv,
    upstream_headers,
)
from ppd.proxy.state import STATE, ProxyState
from ppd.router.failover import FailureAction, FailureKind, Hop
from ppd.router.policies import NoHealthyUpstream, Route
from ppd.router.records import TurnRecord
from ppd.turn_trace import TurnTrace

COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"

clock = time.perf_counter  # the router's clock in the proxy (the health checker uses it too)


async def serve_turn(request: web.Request, is_chat: bool) -> web.StreamResponse:
    """Route and forward one client request; answers errors as OpenAI-style JSON."""
    state = request.app[STATE]
    record = TurnRecord(started_s=clock())
    connections = TurnConnections()
    connections_token = TURN_CONNECTIONS.set(connections)
    try:
        raw_body, num_containers = await read_body(request, state.body_limits)
        parsed = await parse_in_steps(raw_body, num_containers)
        await pause_if_large(len(raw_body))
        turn_request = parse_turn_request(request.headers, parsed, raw_body, is_chat)
        await pause_if_large(len(raw_body))  # the router hashes the prompt (its history lookup)
        state.router.decide(record, turn_request.identity, turn_request.num_prompt_tokens, clock())
        return await forward_turn(request, state, turn_request, record)
    except ApiError as exc:
        record.end("rejected" if exc.status < 500 else "errored", exc.status, exc.message)
        if exc.status < 500:
            state.note_rejection(request, exc.status, exc.message)
        response = api_error_response(exc)
        if exc.status in (408, 413) or not request.content.at_eof():
            response.force_close()  # the unread rest of the body must not be parsed as a request
        return response
    except NoHealthyUpstream as exc:
        record.end("errored", 503, str(exc))
        return error_response(503, str(exc))
    finally:
        TURN_CONNECTIONS.reset(connections_token)
        record.finished_s = clock()
        state.record_turn(record, path=request.path, connections_opened=connections.opened)


# POST /v1/completions and /v1/chat/completions: serve_turn itself (a partial of a coroutine function is
# one to aiohttp), not a coroutine awaiting it: each await of a streamed answer resumes every frame.
handle_completions = functools.partial(serve_turn, is_chat=False)
handle_chat_completions = functools.partial(serve_turn, is_chat=True)


class HopFailed(Exception):
    """A hop failed before anything reached the client; `action` says what the turn does next."""

    def __init__(self, error: UpstreamFailed | UpstreamRejected, action: FailureAction) -> None:
        super().__init__(str(error))
        self.error = error
        self.action = action


def failure_kind(error: UpstreamFailed | UpstreamRejected) -> FailureKind:
    """The failure policy's name for an upstream error (failover.classify)."""
    if isinstance(error, UpstreamRejected):
        return "engine_error" if error.answer.status >= 500 else "rejected"
    if isinstance(error, PrefillAnswerInvalid):
        return "engine_error"  # P answered, unusably: as with a 5xx, the request may be the cause
    return "unreachable" if error.unreachable else "no_answer"


async def forward_turn(
    request: web.Request, state: ProxyState, turn_request: TurnRequest, record: TurnRecord
) -> web.StreamResponse:
    """Carry out the route, failing over where the policy says; commit the turn when it completed."""
    # The proxy's own id, never the client's: P and D key the KV hand-over by it (P's lease is
    # D's remote_request_id), so a client's id reused by another request must not collide there.
    request_id = f"ppd-{uuid.uuid4().hex}"
    forward = _Forward(request, state, turn_request, record, request_id)
    if state.turn_trace is not None:
        forward.forward_s = clock()
    try:
        try:
            response, capture = await forward.attempt("target")
        except HopFailed as failed:
            if failed.action.next != "retry_elsewhere":
                raise
            forward.prefilled_kv = None  # the failed D may have pulled it; the lease expires otherwise
            try:
                state.router.reroute(record)  # nothing reached the client yet: once more, elsewhere
            except NoHealthyUpstream as no_other:
                return _failed_response(record, failed.error, f"; {no_other}")
            response, capture = await forward.attempt("retry")
    except HopFailed as failed:
        if isinstance(failed.error, UpstreamRejected) and failed.error.answer.status < 500:
            forward.release_prefilled_kv(failed.error)
        return _failed_response(record, failed.error)
    except asyncio.CancelledError:
        record.end("cancelled", 499, "client disconnected")
        raise
    finally:
        if state.turn_trace is not None:
            forward.write_trace(state.turn_trace)
    if record.state == "pending":
        record.usage = capture.usage
        answer_text = capture.text if capture.capture_text else None
        state.router.commit(record, clock(), answer_text, capture.num_content_chunks)
    return response


def _failed_response(
    record: TurnRecord, error: UpstreamFailed | UpstreamRejected, detail: str = ""
) -> web.Response:
    """The client's answer to a hop that failed for good: an engine's 4xx as is, anything else 502."""
    if isinstance(error, UpstreamRejected):
        status = error.answer.status
        record.end("rejected" if status < 500 else "errored", status, str(error))
        return rejection_response(error)  # raises ApiError 502 for a 5xx
    raise ApiError(502, f"upstream failed: {error}{detail}") from error


@dataclass
class _Forward:
    """One turn's forwarding: what every attempt (the route, and at most one retry) shares."""

    request: web.Request
    state: ProxyState
    turn_request: TurnRequest
    record: TurnRecord
    request_id: str
    # Where D was to pull the KV that P prefilled, while D has not accepted the request.
    prefilled_kv: tuple[str, dict[str, Any]] | None = None
    # Stamps for the per-request trace (PPD_TURN_TRACE) only: routed, the target's headers back.
    forward_s: float | None = None
    headers_s: float | None = None

    def write_trace(self, trace: TurnTrace) -> None:
        """This turn's stamps (perf_counter s): handler start, routed, P and target sent, the
        target's headers and first bytes back."""
        record = self.record
        trace.write(
            "proxy",
            sid=self.request.headers.get("X-Session-ID"),
            turn=record.turn.number if record.turn else None,
            rid=self.request_id,
            route=record.route.kind if record.route else None,
            target=record.route.target_url if record.route else None,
            start=record.started_s,
            forward=self.forward_s,
            prefill_sent=record.prefill_sent_s,
            target_sent=record.target_sent_s,
            headers=self.headers_s,
            first=record.first_byte_s,
            status=record.status,
        )

    @property
    def path(self) -> str:
        return CHAT_PATH if self.turn_request.is_chat else COMPLETIONS_PATH

    async def attempt(self, hop: Hop) -> tuple[web.StreamResponse, AnswerCapture]:
        """The P hop when the route has one (a failed P leaves the turn to D alone), then the target."""
        record, turn_request = self.record, self.turn_request
        headers_down = {"X-Request-Id": self.request_id}
        data = turn_request.raw_body
        if _route(record).prefill_url is not None:
            kv_transfer_params = await self._prefill()
            if kv_transfer_params is not None:
                headers_down["x-ppd-prefill-ms"] = f"{record.prefill_ms:.3f}"
                if record.prefill_cached_tokens is not None:
                    headers_down["x-ppd-prefill-cached-tokens"] = str(record.prefill_cached_tokens)
                await pause_if_large(len(turn_request.raw_body))
                data = decode_request_bytes(turn_request.raw_body, turn_request.body, kv_transfer_params)
                self.prefilled_kv = (_route(record).target_url, kv_transfer_params)
        route = _route(record)  # D alone now, if P failed
        headers_down |= {
            "x-ppd-route": route.kind,
            "x-ppd-turn": str(record.turn.number if record.turn else 0),
        }
        if self.state.config.upstream_header:
            headers_down["x-ppd-upstream"] = route.target_url
        if record.failovers:
            headers_down["x-ppd-failover"] = ",".join(record.failovers)
        if route.decision is not None:
            headers_down["x-ppd-decision"] = route.decision
        capture = AnswerCapture(turn_request.is_chat, turn_request.capture_answer)
        response = await self._target(hop, data, headers_down, capture)
        return response, capture

    async def _prefill(self) -> dict[str, Any] | None:
        """P's kv_transfer_params, or None when P failed or refused and the turn goes to D alone."""
        router, record = self.state.router, self.record
        flight = router.begin(record, "prefill", clock())
        prefill_url = flight.instance.url
        succeeded = False
        try:
            await pause_if_large(len(self.turn_request.raw_body))
            is_chat = self.turn_request.is_chat
            data = self.turn_request.parsed.encode(lambda body: prefill_body(body, is_chat))
            await pause_if_large(len(data))
            state = self.state
            params, record.prefill_cached_tokens = await call_prefill(
                state.session, prefill_url, self.path, data, self._headers_up(), state.prefill_timeout
            )
            succeeded = True
            return params
        except (UpstreamFailed, UpstreamRejected) as exc:
            action = router.fail(flight, failure_kind(exc), str(exc), clock())
            if action.next != "decode_alone":
                raise HopFailed(exc, action) from exc
            return None
        finally:
            router.finish(flight, clock(), succeeded)

    async def _target(
        self, hop: Hop, data: bytes, headers_down: dict[str, str], capture: AnswerCapture
    ) -> web.StreamResponse:
        """Send the turn to its target and relay the answer (streamed, or whole)."""
        router, record, state = self.state.router, self.record, self.state
        flight = router.begin(record, hop, clock())
        base_url = flight.instance.url
        succeeded = False

        def on_bytes(chunk: bytes) -> None:
            if flight.awaiting_first_byte:
                router.first_byte(flight, clock())
            capture.feed(chunk)

        try:
            answer = await open_upstream(
                state.session, base_url, self.path, data, self._headers_up(), state.upstream_timeout
            )
            if self.forward_s is not None:
                self.headers_s = clock()
            try:
                if not self.turn_request.stream:
                    body = await _read_whole(base_url, answer)
                    router.first_byte(flight, clock())
                    capture.feed_json_body(body)
                    content_type = answer.headers.get("Content-Type", "application/json").split(";", 1)[0]
                    succeeded = True
                    return web.Response(
                        body=body, status=200, headers=headers_down, content_type=content_type
                    )
                first = await read_first_chunk(base_url, answer)
                response, result = await relay_stream(self.request, answer, headers_down, on_bytes, first)
                capture.finish()
                record.first_byte_s, record.last_byte_s = result.first_byte_s, result.last_byte_s
                if result.upstream_error is not None:  # after a 200 header: the client sees a broken stream
                    router.fail(flight, "no_answer", result.upstream_error, clock())
                    record.end("errored", 502, result.upstream_error)
                elif result.client_gone:
                    record.end("cancelled", 499, "client disconnected")
                else:
                    succeeded = True
                return response
            finally:
                answer.close()  # a no-op after a complete answer; aborts an unfinished one upstream
        except (UpstreamFailed, UpstreamRejected) as exc:
            raise HopFailed(exc, router.fail(flight, failure_kind(exc), str(exc), clock())) from exc
        finally:
            router.finish(flight, clock(), succeeded)

    def release_prefilled_kv(self, rejected: UpstreamRejected) -> None:
        """D refused the request after P prefilled it: have D take P's KV and drop it, in the
        background, so P's blocks do not stay held until its lease runs out."""
        if self.prefilled_kv is None or self.prefilled_kv[0] != rejected.url:
            return
        decode_url, kv_transfer_params = self.prefilled_kv
        self.prefilled_kv = None
        is_chat = self.turn_request.is_chat
        data = self.turn_request.parsed.encode(lambda body: release_body(body, is_chat, kv_transfer_params))
        work = release_prefilled_kv(self.state, decode_url, self.path, data, self._headers_up())
        self.state.spawn(work, "kv release")

    def _headers_up(self) -> dict[str, str]:
        return upstream_headers(self.request.headers, self.request_id)


async def release_prefilled_kv(
    state: ProxyState, decode_url: str, path: str, data: bytes, headers: dict[str, str]
) -> None:
    """Have D take and drop the KV P prefilled for a request D refused (`data`: the encoded
    relay.release_body); counted in kv_releases."""
    error = await release_kv(state.session, decode_url, path, data, headers, state.upstream_timeout)
    state.metrics.kv_releases["released" if error is None else "failed"] += 1


def _route(record: TurnRecord) -> Route:
    if record.route is None:
        raise RuntimeError("forwarding a turn the router has not routed")
    return record.route


async def _read_whole(base_url: str, answer: aiohttp.ClientResponse) -> bytes:
    # Nothing was sent to the client yet: a broken answer is an UpstreamFailed, retried when it broke.
    try:
        return await answer.read()
    except TimeoutError as exc:
        raise UpstreamFailed(base_url, f"no answer: {type(exc).__name__} {exc}", unreachable=False) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamFailed(base_url, f"answer broken off: {type(exc).__name__} {exc}", True) from exc
