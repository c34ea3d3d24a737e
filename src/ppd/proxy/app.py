"""The proxy's aiohttp application: routes, admin endpoints, and the lifespan of its HTTP client.

    POST /v1/completions, /v1/chat/completions    routed and relayed (turns.py)
    GET  /mode                                    {"mode": ...}
    POST /mode/{pd|ppd|replication|auto}          switch at runtime (admin)
    POST /conversations/clear                     forget every conversation (admin)
    GET  /status                                  mode, options, upstreams, conversations, routes
    GET  /metrics, POST /metrics/clear (admin)    Prometheus text; zero the counters
    GET  /health, /version, /v1/models
    GET  /openapi.json                            the OpenAPI description of all of the above

Admin endpoints need `Authorization: Bearer <token>` when the config has an admin token; with
`protect_status`, so do GET /status and /metrics (they show upstream URLs and load).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from ppd import __version__
from ppd.modes import MODES, is_mode
from ppd.openai_api import ApiError, api_error_response, error_response
from ppd.proxy.config import UPSTREAM_KEEPALIVE_S, ProxyConfig, mode_unavailable
from ppd.proxy.metrics import DecisionLog
from ppd.proxy.openapi import openapi_description
from ppd.proxy.relay import TURN_CONNECTIONS
from ppd.proxy.state import STATE, ProxyState
from ppd.proxy.turns import CHAT_PATH, COMPLETIONS_PATH, handle_chat_completions, handle_completions
from ppd.proxy.upstreams import HealthChecker
from ppd.serve import CONNECTIONS
from ppd.turn_trace import TurnTrace

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(config: ProxyConfig) -> web.Application:
    """An aiohttp app routing for `config`; its HTTP client and health checks run while it runs."""
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_json_errors])
    app[STATE] = ProxyState.from_config(config)
    app.cleanup_ctx.append(_lifespan)
    app.router.add_post(COMPLETIONS_PATH, handle_completions)
    app.router.add_post(CHAT_PATH, handle_chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/mode", get_mode)
    app.router.add_post("/mode/{mode}", set_mode)
    app.router.add_post("/conversations/clear", clear_conversations)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/metrics/clear", clear_metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_get("/openapi.json", openapi)
    return app


def connection_counting(state: ProxyState) -> aiohttp.TraceConfig:
    """The client session's hook on each new upstream connection: counted per upstream in the
    metrics (ppd_proxy_upstream_connections_opened_total) and for the turn whose request opened it
    (its decision-log line's connections_opened)."""
    trace_config = aiohttp.TraceConfig()

    async def on_request_start(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
        context.upstream = str(params.url.origin())

    async def on_connection_create_end(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
        state.metrics.connections_opened[context.upstream] += 1
        turn = TURN_CONNECTIONS.get()
        if turn is not None:
            turn.opened += 1

    trace_config.on_request_start.append(on_request_start)
    trace_config.on_connection_create_end.append(on_connection_create_end)
    return trace_config


async def _lifespan(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    # One client for every upstream: unlimited pooled keep-alive connections, no per-request setup.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE_S, ttl_dns_cache=300)
    state.client_session = aiohttp.ClientSession(
        connector=connector, timeout=state.upstream_timeout, trace_configs=[connection_counting(state)]
    )
    state.decision_log = DecisionLog(state.config.decision_log_path)
    state.turn_trace = TurnTrace.from_env("proxy")
    checker = HealthChecker(state.pool, state.client_session, state.config)
    health_task = asyncio.create_task(checker.run_forever())
    try:
        yield
    finally:
        health_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await health_task
        await state.cancel_background()
        await state.client_session.close()
        state.client_session = None
        state.decision_log.close()
        if state.turn_trace is not None:
            state.turn_trace.close()


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Every error, the router's 404/405/413 included, reaches the client as OpenAI-style JSON. One
    # middleware, not one per concern: every await of a streamed answer resumes each frame around it.
    state = request.app[STATE]
    try:
        _check_authorization(request)
        return await handler(request)
    except ApiError as exc:
        if exc.status < 500:
            state.note_rejection(request, exc.status, exc.message)
        return api_error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.text is None else exc.text.strip()
        state.note_rejection(request, exc.status, message)
        return error_response(exc.status, message)


def _check_authorization(request: web.Request) -> None:
    # An Authorization header is compared, and forwarded to the engines, as bytes: one that is not
    # printable ASCII (aiohttp hands undecodable bytes over as surrogates) can be no valid token.
    authorization = request.headers.get("Authorization")
    if authorization is not None and not (authorization.isascii() and authorization.isprintable()):
        raise ApiError(401, "the Authorization header must be printable ASCII, e.g. 'Bearer <token>'")


def check_admin(request: web.Request) -> None:
    """Raise ApiError 401 unless the request carries the admin token (when one is configured)."""
    token = request.app[STATE].config.admin_token
    if token is None:
        return
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
        raise ApiError(401, "admin endpoint: send 'Authorization: Bearer <admin token>'")


def check_status_access(request: web.Request) -> None:
    """With --protect-status, /status and /metrics are admin endpoints (ApiError 401 otherwise)."""
    if request.app[STATE].config.protect_status:
        check_admin(request)


async def get_mode(request: web.Request) -> web.Response:
    """GET /mode."""
    return web.json_response({"mode": request.app[STATE].mode})


async def set_mode(request: web.Request) -> web.Response:
    """POST /mode/{mode}: later turns, of new and running conversations, route the new way."""
    check_admin(request)
    mode = request.match_info["mode"]
    if not is_mode(mode):
        raise ApiError(400, f"unknown mode {mode!r}; allowed: {', '.join(MODES)}", "mode")
    state = request.app[STATE]
    problem = mode_unavailable(mode, state.config)
    if problem:
        raise ApiError(409, problem, "mode")
    previous = state.router.set_mode(mode)
    return web.json_response({"mode": mode, "previous": previous})


async def clear_conversations(request: web.Request) -> web.Response:
    """POST /conversations/clear: every conversation starts over as turn 1."""
    check_admin(request)
    cleared = request.app[STATE].conversations.clear()
    return web.json_response({"cleared": cleared})


async def status(request: web.Request) -> web.Response:
    """GET /status."""
    check_status_access(request)
    connections = request.app.get(CONNECTIONS)
    extra = {"connections": dataclasses.asdict(connections)} if connections is not None else {}
    return web.json_response(request.app[STATE].status() | extra)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics (Prometheus text format)."""
    check_status_access(request)
    state = request.app[STATE]
    text = state.metrics.render(state.mode, state.pool.status(), len(state.conversations))
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def clear_metrics(request: web.Request) -> web.Response:
    """POST /metrics/clear: zero counters and histograms (live load is kept)."""
    check_admin(request)
    state = request.app[STATE]
    state.metrics.clear()
    state.pool.clear_counters()
    return web.json_response({"cleared": True})


async def health(request: web.Request) -> web.Response:
    """GET /health: the proxy itself is up (upstream health is in /status)."""
    state = request.app[STATE]
    num_healthy = sum(upstream.healthy for upstream in state.pool.by_url.values())
    return web.json_response({"status": "ok", "healthy_upstreams": num_healthy})


async def version(request: web.Request) -> web.Response:
    """GET /version."""
    return web.json_response({"version": f"ppd-proxy-{__version__}"})


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(openapi_description(request.app[STATE].config.max_body_bytes))


async def models(request: web.Request) -> web.Response:
    """GET /v1/models: asked of the first healthy instance (all serve the same model)."""
    state = request.app[STATE]
    timeout = aiohttp.ClientTimeout(total=state.config.health_timeout_s)
    for upstream in state.pool.by_url.values():
        if not upstream.healthy:
            continue
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with state.session.get(upstream.url + "/v1/models", timeout=timeout) as answer:
                body = await answer.read()
                if answer.status == 200:
                    return web.Response(body=body, content_type="application/json")
    raise ApiError(503, "no healthy instance answered GET /v1/models")
