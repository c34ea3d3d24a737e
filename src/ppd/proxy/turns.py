"""Serving one turn: parse, identify the conversation, route, forward (one or two hops), record.

The route comes from policies.choose_route; this module only carries it out: the P hop when the
route has one, then the streaming relay from the target, then the conversation's new state, the
metrics and the decision log. The client's response headers are sent only after the target's first
bytes arrived, so every failure before that is a clean OpenAI-style error, or a failover
(failover.py): a P that fails or times out leaves the turn to D alone, and a target that cannot be
reached gets the turn routed once more without it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ppd.openai_api import ApiError, api_error_response, error_response
from ppd.proxy.body import pause_if_large, read_json_body
from ppd.proxy.capture import AnswerCapture
from ppd.proxy.conversations import Conversation, TurnOutcome
from ppd.proxy.estimates import HopLoad
from ppd.proxy.failover import (
    FAILOVER_PREFILL_FAILED,
    FAILOVER_PREFILL_REFUSED,
    FAILOVER_RETRIED,
    prefill_failed_route,
    retry_route,
    route_with_failover,
    without_instance,
)
from ppd.proxy.inputs import TurnRequest, parse_turn_request
from ppd.proxy.policies import NoHealthyUpstream, Route, Turn, estimated_prefill_tokens
from ppd.proxy.relay import (
    UpstreamFailed,
    UpstreamRejected,
    call_prefill,
    decode_body,
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

COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"


@dataclass(slots=True)
class TurnRecord:
    """What happened to one turn; becomes metrics and a decision-log line. Stamps: perf_counter s."""

    started_s: float
    route: Route | None = None
    turn: Turn | None = None
    conversation_key: str | None = None
    status: int = 200
    prefill_ms: float | None = None
    first_byte_s: float | None = None
    finished_s: float | None = None
    error: str | None = None
    client_disconnected: bool = False
    failovers: list[str] = field(default_factory=list)  # failover.FAILOVER_KINDS, in order
    # What the running estimates (estimates.py) learn from: load at each hop's send, more stamps.
    prefill_load: HopLoad | None = None
    target_load: HopLoad | None = None
    target_sent_s: float | None = None
    last_byte_s: float | None = None
    usage: dict[str, Any] | None = None


async def handle_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions."""
    return await serve_turn(request, is_chat=False)


async def handle_chat_completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions."""
    return await serve_turn(request, is_chat=True)


async def serve_turn(request: web.Request, is_chat: bool) -> web.StreamResponse:
    """Route and forward one client request; answers errors as OpenAI-style JSON."""
    state = request.app[STATE]
    record = TurnRecord(started_s=time.perf_counter())
    try:
        body, raw_body = await read_json_body(request, state.body_limits)
        await pause_if_large(len(raw_body))
        turn_request = parse_turn_request(request.headers, body, raw_body, is_chat)
        conversation = state.conversations.find(turn_request.identity)
        turn = record.turn = turn_of(conversation, turn_request)
        route, failover = route_with_failover(state.mode, turn, state.pool.candidates, state.next_options())
        record.route = route
        record.failovers += [failover] if failover else []
        record.conversation_key = conversation.key if conversation else None
        return await forward_turn(request, state, turn_request, conversation, route, turn, record)
    except ApiError as exc:
        record.status, record.error = exc.status, exc.message
        if exc.status < 500:
            state.note_rejection(request, exc.status, exc.message)
        response = api_error_response(exc)
        if exc.status in (408, 413) or not request.content.at_eof():
            response.force_close()  # the unread rest of the body must not be parsed as a request
        return response
    except NoHealthyUpstream as exc:
        record.status, record.error = 503, str(exc)
        return error_response(503, str(exc))
    finally:
        record.finished_s = time.perf_counter()
        state.record_turn(record, path=request.path)


def turn_of(conversation: Conversation | None, turn_request: TurnRequest) -> Turn:
    """The routing view of this turn: its number and what the conversation's holder has cached."""
    if conversation is None:
        return Turn(1, None, turn_request.num_prompt_tokens, 0)
    return Turn(
        conversation.num_turns + 1,
        conversation.holder_url,
        turn_request.num_prompt_tokens,
        conversation.num_history_tokens,
    )


async def forward_turn(
    request: web.Request,
    state: ProxyState,
    turn_request: TurnRequest,
    conversation: Conversation | None,
    route: Route,
    turn: Turn,
    record: TurnRecord,
) -> web.StreamResponse:
    """Carry out the route, failing over where it can; commit the conversation when the answer completed."""
    # The proxy's own id, never the client's: P and D key the KV hand-over by it (P's lease is
    # D's remote_request_id), so a client's id reused by another request must not collide there.
    request_id = f"ppd-{uuid.uuid4().hex}"
    forward = _Forward(request, state, turn_request, turn, record, request_id)
    try:
        try:
            response, capture = await forward.attempt(route)
        except (UpstreamFailed, UpstreamRejected) as exc:
            if not worth_retrying(exc):
                raise
            # Nothing reached the client yet: route the turn once more, without the instance.
            forward.note_target_failure(exc)
            try:
                route = forward.rerouted(state.mode, record.route or route)
            except NoHealthyUpstream as no_other:
                if isinstance(exc, UpstreamRejected):
                    record.status, record.error = exc.answer.status, str(exc)
                    return rejection_response(exc)
                raise ApiError(502, f"upstream failed: {exc}; {no_other}") from exc
            record.failovers.append(FAILOVER_RETRIED)
            response, capture = await forward.attempt(route)
    except UpstreamRejected as exc:
        # A 5xx that no other instance contradicted (a second 5xx, or none to ask) may be the
        # request's own doing: it counts against no engine (docs/reliability.md).
        record.status, record.error = exc.answer.status, str(exc)
        if exc.answer.status < 500:
            forward.release_prefilled_kv(exc)
        return rejection_response(exc)
    except UpstreamFailed as exc:
        state.note_failure(exc.url, str(exc), exc.unreachable)
        raise ApiError(502, f"upstream failed: {exc}") from exc
    except asyncio.CancelledError:
        record.client_disconnected, record.status, record.error = True, 499, "client disconnected"
        raise
    if record.error is None:
        final_route = record.route or route
        forward.blame_suspects()
        state.note_success(final_route.target_url)
        record.usage = capture.usage
        committed = state.conversations.commit_turn(
            turn_request.identity, conversation, _outcome(final_route, turn, capture)
        )
        record.conversation_key = committed.key
    return response


@dataclass
class _Forward:
    """One turn's forwarding: what every attempt (the route, and at most one retry) shares."""

    request: web.Request
    state: ProxyState
    turn_request: TurnRequest
    turn: Turn
    record: TurnRecord
    request_id: str
    # Instances that answered this request 5xx, with their errors. Whether that was the engine's
    # fault or the request's is known only once another instance has answered the same request:
    # when it served it, they are counted (blame_suspects); when it failed too, they are not.
    suspects: list[tuple[str, str]] = field(default_factory=list)
    # Where D was to pull the KV that P prefilled, while D has not accepted the request.
    prefilled_kv: tuple[str, dict[str, Any]] | None = None

    @property
    def path(self) -> str:
        return CHAT_PATH if self.turn_request.is_chat else COMPLETIONS_PATH

    async def attempt(self, route: Route) -> tuple[web.StreamResponse, AnswerCapture]:
        """The P hop when the route has one (a failed P leaves the turn to D alone), then the target."""
        record, turn_request = self.record, self.turn_request
        record.route = route
        headers_down = {"X-Request-Id": self.request_id}
        data = turn_request.raw_body
        if route.prefill_url is not None:
            kv_transfer_params, prefill_error, failover = await self._prefill(route, route.prefill_url)
            if kv_transfer_params is None:
                route = record.route = prefill_failed_route(route, prefill_error)
                record.failovers.append(failover)
            else:
                headers_down["x-ppd-prefill-ms"] = f"{record.prefill_ms:.3f}"
                await pause_if_large(len(turn_request.raw_body))
                data = json.dumps(decode_body(turn_request.body, kv_transfer_params)).encode()
                self.prefilled_kv = (route.target_url, kv_transfer_params)
        headers_down |= {"x-ppd-route": route.kind, "x-ppd-turn": str(self.turn.number)}
        if self.state.config.upstream_header:
            headers_down["x-ppd-upstream"] = route.target_url
        if record.failovers:
            headers_down["x-ppd-failover"] = ",".join(record.failovers)
        if route.decision is not None:
            headers_down["x-ppd-decision"] = route.decision
        capture = AnswerCapture(turn_request.is_chat, turn_request.capture_answer)
        _, prefill_tokens_at_target = estimated_prefill_tokens(route, self.turn)
        response = await _target_hop(
            self.request, self.state, route.target_url, self.path, data, self._headers_up(),
            headers_down, turn_request, capture, prefill_tokens_at_target, record,
        )  # fmt: skip
        return response, capture

    async def _prefill(self, route: Route, prefill_url: str) -> tuple[dict[str, Any] | None, str, str]:
        """P's kv_transfer_params; or None, why, and the failover kind when P refused, failed or
        timed out (the turn then goes to D alone)."""
        prefill_tokens_at_p, _ = estimated_prefill_tokens(route, self.turn)
        try:
            kv_transfer_params = await _prefill_hop(
                self.state, prefill_url, self.path, self.turn_request, self._headers_up(),
                prefill_tokens_at_p, self.record,
            )  # fmt: skip
        except UpstreamRejected as exc:
            if exc.answer.status < 500:
                # P judged its own one-token rewrite of the request ("you requested 1 output
                # tokens"); D judges the client's, so the client's 4xx describes what it sent.
                return None, str(exc), FAILOVER_PREFILL_REFUSED
            self.suspects.append((exc.url, str(exc)))
            return None, str(exc), FAILOVER_PREFILL_FAILED
        except UpstreamFailed as exc:
            self.state.note_failure(exc.url, str(exc), exc.unreachable)
            return None, str(exc), FAILOVER_PREFILL_FAILED
        self.state.note_success(prefill_url)
        return kv_transfer_params, "", ""

    def note_target_failure(self, exc: UpstreamFailed | UpstreamRejected) -> None:
        """A target failed before any byte reached the client: unreachable counts now, a 5xx is
        judged once another instance has answered (suspects)."""
        if isinstance(exc, UpstreamFailed):
            self.state.note_failure(exc.url, str(exc), unreachable=True)
        else:
            self.suspects.append((exc.url, str(exc)))
        self.prefilled_kv = None  # the failed D may have pulled it; the lease expires otherwise

    def blame_suspects(self) -> None:
        """The request was served: the instances that answered it 5xx on the way were at fault."""
        for url, error in self.suspects:
            self.state.note_failure(url, error, unreachable=False)
        self.suspects.clear()

    def release_prefilled_kv(self, rejected: UpstreamRejected) -> None:
        """D refused the request after P prefilled it: have D take P's KV and drop it, in the
        background, so P's blocks do not stay held until its lease runs out."""
        if self.prefilled_kv is None or self.prefilled_kv[0] != rejected.url:
            return
        decode_url, kv_transfer_params = self.prefilled_kv
        self.prefilled_kv = None
        body = release_body(self.turn_request.body, self.turn_request.is_chat, kv_transfer_params)
        work = release_prefilled_kv(self.state, decode_url, self.path, body, self._headers_up())
        self.state.spawn(work, "kv release")

    def _headers_up(self) -> dict[str, str]:
        return upstream_headers(self.request.headers, self.request_id)

    def rerouted(self, mode: str, failed: Route) -> Route:
        """The route of a retry after `failed.target_url` failed: one without that instance."""
        state = self.state
        candidates = without_instance(state.pool.candidates, failed.target_url)
        return retry_route(mode, self.turn, candidates, state.next_options(), failed)


def worth_retrying(exc: UpstreamFailed | UpstreamRejected) -> bool:
    """Whether a failed target hop (nothing sent to the client yet) is routed once more: the target
    could not be reached, or it answered 5xx (an engine fault, not the request's; a 4xx is answered).
    A P's failures never get here: _Forward.attempt turns them into pd-fallback, or raises P's 4xx."""
    if isinstance(exc, UpstreamFailed):
        return exc.unreachable
    return exc.answer.status >= 500


async def release_prefilled_kv(
    state: ProxyState, decode_url: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    """Have D take and drop the KV P prefilled for a request D refused; counted in kv_releases."""
    error = await release_kv(state.session, decode_url, path, body, headers, state.upstream_timeout)
    state.metrics.kv_releases["released" if error is None else "failed"] += 1


async def _prefill_hop(
    state: ProxyState,
    base_url: str,
    path: str,
    turn_request: TurnRequest,
    headers: dict[str, str],
    num_prefill_tokens: int,
    record: TurnRecord,
) -> dict[str, Any]:
    upstream = state.pool.by_url[base_url]
    record.prefill_load = HopLoad(upstream.outstanding_prefill_tokens, upstream.running_decodes)
    upstream.begin(num_prefill_tokens)
    started_s = time.perf_counter()
    try:
        await pause_if_large(len(turn_request.raw_body))
        body = prefill_body(turn_request.body, turn_request.is_chat)
        return await call_prefill(state.session, base_url, path, body, headers, state.prefill_timeout)
    finally:
        record.prefill_ms = (time.perf_counter() - started_s) * 1000.0
        upstream.prefill_done(num_prefill_tokens)
        upstream.end()


async def _target_hop(
    request: web.Request,
    state: ProxyState,
    base_url: str,
    path: str,
    data: bytes,
    headers_up: dict[str, str],
    headers_down: dict[str, str],
    turn_request: TurnRequest,
    capture: AnswerCapture,
    num_prefill_tokens: int,
    record: TurnRecord,
) -> web.StreamResponse:
    upstream = state.pool.by_url[base_url]
    record.target_load = HopLoad(upstream.outstanding_prefill_tokens, upstream.running_decodes)
    record.target_sent_s = time.perf_counter()
    upstream.begin(num_prefill_tokens)
    prefill_pending = True

    def on_bytes(chunk: bytes) -> None:
        nonlocal prefill_pending
        if prefill_pending:
            upstream.prefill_done(num_prefill_tokens)
            prefill_pending = False
        capture.feed(chunk)

    try:
        answer = await open_upstream(state.session, base_url, path, data, headers_up, state.upstream_timeout)
        try:
            if turn_request.stream:
                first = await read_first_chunk(base_url, answer)
                response, result = await relay_stream(request, answer, headers_down, on_bytes, first)
                capture.finish()
                record.first_byte_s, record.error = result.first_byte_s, result.upstream_error
                record.last_byte_s = result.last_byte_s
                if result.upstream_error is not None:
                    record.status = 502  # after a 200 header: the client sees a broken stream
                    state.note_failure(base_url, result.upstream_error, unreachable=False)
                if result.client_gone:
                    record.client_disconnected, record.status = True, 499
                    record.error = "client disconnected"
                return response
            body = await _read_whole(base_url, answer)
            record.first_byte_s = time.perf_counter()
            on_bytes(b"")
            capture.feed_json_body(body)
            content_type = answer.headers.get("Content-Type", "application/json").split(";", 1)[0]
            return web.Response(body=body, status=200, headers=headers_down, content_type=content_type)
        finally:
            answer.close()  # a no-op after a complete answer; aborts an unfinished one upstream
    finally:
        if prefill_pending:
            upstream.prefill_done(num_prefill_tokens)
        upstream.end()


async def _read_whole(base_url: str, answer: aiohttp.ClientResponse) -> bytes:
    # Nothing was sent to the client yet: a broken answer is an UpstreamFailed, retried when it broke.
    try:
        return await answer.read()
    except TimeoutError as exc:
        raise UpstreamFailed(base_url, f"no answer: {type(exc).__name__} {exc}", unreachable=False) from exc
    except aiohttp.ClientError as exc:
        raise UpstreamFailed(base_url, f"answer broken off: {type(exc).__name__} {exc}", True) from exc


def _outcome(route: Route, turn: Turn, capture: AnswerCapture) -> TurnOutcome:
    usage = capture.usage or {}
    prompt_tokens = usage.get("prompt_tokens")
    output_tokens = usage.get("completion_tokens")
    return TurnOutcome(
        holder_url=route.target_url,
        num_prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else turn.num_prompt_tokens,
        num_output_tokens=output_tokens if isinstance(output_tokens, int) else capture.num_content_chunks,
        answer_text=capture.text if capture.capture_text else None,
    )
