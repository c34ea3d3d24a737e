"""The sim's HTTP server: vLLM's OpenAI API on top of one Engine, plus the internal KV-pull endpoint.

`build_app(config)` returns an aiohttp Application whose engine starts and stops with the app, so
tests and benchmarks can run a sim in-process as well as through `ppd sim`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ppd import __version__
from ppd.openai_api import SSE_DONE, ApiError, error_body
from ppd.sim.config import SimConfig
from ppd.sim.core import Step
from ppd.sim.engine import TIMER_EARLY_S, Engine, model_now_s
from ppd.sim.kv_transfer import PULL_PATH, KVPuller, RemotePrefill, parse_kv_transfer_params
from ppd.sim.metrics import render_metrics
from ppd.sim.protocol import (
    CHAT,
    COMPLETION,
    GenerateParams,
    StreamTemplates,
    ValidationError,
    answer_text,
    chat_body,
    completion_body,
    parse_chat,
    parse_completion,
    parse_tokenize,
    resolve_max_tokens,
    usage,
    validation_message,
)
from ppd.sim.request import Request, RequestStatus
from ppd.tokens import NUM_WORD_TOKENS, decode
from ppd.turn_trace import TurnTrace
from ppd.turn_trace import now_s as trace_now_s

SIM_VERSION = f"ppd-sim-{__version__}"


# Bodies larger than this are tokenized off the event loop.
OFF_LOOP_BODY_BYTES = 1 << 20


@dataclass
class SimState:
    config: SimConfig
    engine: Engine
    puller: KVPuller
    started_s: float
    background: set[asyncio.Task[None]] = field(default_factory=set)
    trace: TurnTrace | None = None  # per-request stamps (PPD_TURN_TRACE), None unless asked for

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background; the app's stop cancels it."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


STATE = web.AppKey("ppd_sim_state", SimState)


def build_app(config: SimConfig) -> web.Application:
    """An aiohttp app serving one simulated engine; the engine runs while the app runs."""
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_route_errors_as_json])
    app.cleanup_ctx.append(_engine_lifespan(config))
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/version", version)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/reset_prefix_cache", reset_prefix_cache)
    app.router.add_post(PULL_PATH, kv_pull)
    app.router.add_get("/ppd/stats", stats)
    app.router.add_post("/ppd/stats/reset", reset_stats)
    return app


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as vLLM sends it: Content-Type "application/json", no charset parameter."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json", headers=headers
    )


def api_error_response(exc: ApiError) -> web.Response:
    """vLLM's error JSON; schema violations are typed "Bad Request" like vLLM's validation errors."""
    body = error_body(exc.status, exc.message, exc.param)
    if isinstance(exc, ValidationError):
        body["error"]["type"] = exc.error_type
    return json_response(body, exc.status)


def error_response(status: int, message: str, param: str | None = None) -> web.Response:
    return api_error_response(ApiError(status, message, param))


@web.middleware
async def _route_errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An unknown path or method answers like vLLM's FastAPI: {"detail": "Not Found"} as JSON."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response({"detail": exc.reason}, exc.status)


def _engine_lifespan(config: SimConfig) -> Any:
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        engine = Engine(config)
        puller = KVPuller(config.profile, config.time_scale)
        state = app[STATE] = SimState(config, engine, puller, time.time(), trace=TurnTrace.from_env("sim"))
        if state.trace is not None:
            engine.on_step = StepTrace(state.trace, engine, config.engine_id)
        await engine.start()
        yield
        await engine.stop()
        for task in list(state.background):
            task.cancel()
        await asyncio.gather(*state.background, return_exceptions=True)
        await puller.close()
        if state.trace is not None:
            state.trace.close()

    return lifespan


async def completions(http_request: web.Request) -> web.StreamResponse:
    return await _generate(http_request, COMPLETION)


async def chat_completions(http_request: web.Request) -> web.StreamResponse:
    return await _generate(http_request, CHAT)


async def _generate(http_request: web.Request, kind: str) -> web.StreamResponse:
    state = http_request.app[STATE]
    handler_s = trace_now_s() if state.trace is not None else 0.0
    config = state.config
    x_request_id = http_request.headers.get("X-Request-Id")
    headers = {"x-request-id": x_request_id} if x_request_id else {}
    try:
        body, num_body_bytes = await _json_body(http_request)
        parse = parse_completion if kind == COMPLETION else parse_chat
        if num_body_bytes > OFF_LOOP_BODY_BYTES:
            # Tokenizing a long prompt is Python work (~0.6 s per MB): off the loop, which keeps
            # stepping the engine (a 50 MB prompt held it ~30 s, and the proxy ejected this D).
            params = await asyncio.to_thread(parse, body)
        else:
            params = parse(body)
        _check_model(params.model, config.served_model_name)
        max_tokens = resolve_max_tokens(len(params.prompt_token_ids), params.max_tokens, config.max_model_len)
        act_as_prefill, remote = parse_kv_transfer_params(params.kv_transfer_params)
    except ApiError as exc:
        return _with_headers(api_error_response(exc), headers)
    prefix = "cmpl" if kind == COMPLETION else "chatcmpl"
    response_id = f"{prefix}-{x_request_id or uuid.uuid4().hex}"
    engine = state.engine
    request = engine.new_request(
        response_id, params.prompt_token_ids, max_tokens, hold_kv_on_finish=act_as_prefill
    )
    api_s = engine.core.api_ready_s(request.arrival_s, request) - request.arrival_s
    arrival_s = trace_now_s() if state.trace is not None else 0.0
    try:
        await asyncio.sleep(max(0.0, api_s - TIMER_EARLY_S))
        if remote is not None:
            await _pull_remote_kv(state, request, remote)
    except ApiError as exc:
        return _with_headers(api_error_response(exc), headers)
    except asyncio.CancelledError:
        if remote is not None and request.num_external_tokens == 0:
            # The client left before this D took P's KV: tell P to free it (vLLM's abort does).
            state.spawn(state.puller.release(remote))
        raise
    engine.submit(request)
    if state.trace is not None:
        trace_intake(state.trace, state, request, (handler_s, arrival_s), pulled=remote is not None)
    try:
        if params.stream:
            return await _stream(http_request, request, params, response_id, headers)
        return await _respond_whole(http_request, request, params, response_id, headers)
    finally:
        # No-op once finished. A client that went away cancels this handler (`ppd sim` runs with
        # aiohttp's handler_cancellation), wherever it waits: the blocks and batch slot free at once.
        engine.abort(request)


async def _pull_remote_kv(state: SimState, request: Request, remote: RemotePrefill) -> None:
    """Act as D: pull from P the prompt blocks this engine lacks; they count as computed."""
    block_size = state.config.block_size
    num_prompt_blocks = -(-request.num_prompt_tokens // block_size)
    if len(remote.remote_block_ids) != num_prompt_blocks:
        state.spawn(state.puller.release(remote))  # refused: P need not hold them for the lease
        raise ApiError(
            400,
            f"kv_transfer_params.remote_block_ids has {len(remote.remote_block_ids)} blocks but this prompt "
            f"of {request.num_prompt_tokens} tokens needs {num_prompt_blocks} blocks of {block_size} tokens.",
            "kv_transfer_params",
        )
    engine = state.engine
    num_cached = engine.core.count_cached_prompt_blocks(request)
    await state.puller.pull(remote, num_cached, engine.core.plan_pull, engine.occupy)
    await state.engine.after_next_step()  # vLLM learns of the finished read with a step's output
    request.num_external_tokens = request.num_prompt_tokens
    request.ready_s = model_now_s()


async def _respond_whole(
    http_request: web.Request,
    request: Request,
    params: GenerateParams,
    response_id: str,
    headers: dict[str, str],
) -> web.StreamResponse:
    while not request.is_finished:
        await request.output_ready.wait()
        request.output_ready.clear()
    if request.status is not RequestStatus.FINISHED:
        return _with_headers(error_response(500, "The request was aborted."), headers)
    state = http_request.app[STATE]
    text = answer_text(decode(request.output_token_ids, skip_special_tokens=True))
    usage_info = usage(request.num_prompt_tokens, request.num_output_tokens, request.num_cached_tokens)
    kv_params = _kv_transfer_params(http_request, state, request)
    build = completion_body if params.kind == COMPLETION else chat_body
    model = state.config.served_model_name
    return json_response(build(response_id, model, text, usage_info, kv_params), headers=headers)


def _kv_transfer_params(http_request: web.Request, state: SimState, request: Request) -> Any:
    """P's answer to a do_remote_decode request: where D can pull the prompt's blocks."""
    if request.lease_id is None:
        return None
    host, port = _advertised_address(http_request, state.config.host)
    num_prompt_blocks = -(-request.num_prompt_tokens // state.config.block_size)
    return {
        "do_remote_prefill": True,
        "do_remote_decode": False,
        "remote_block_ids": [request.block_ids[:num_prompt_blocks]],
        "remote_engine_id": state.config.engine_id,
        "remote_request_id": request.lease_id,
        "remote_host": host,
        "remote_port": port,
        "tp_size": 1,
        "remote_num_tokens": request.num_prompt_tokens,
    }


def _advertised_address(http_request: web.Request, configured_host: str) -> tuple[str, int]:
    # The local end of this connection is an address the caller reached us on, and carries the real
    # port even when the server was started with --port 0.
    sockname = http_request.transport.get_extra_info("sockname") if http_request.transport else None
    local_host, local_port = (sockname[0], sockname[1]) if sockname else (configured_host, 0)
    host = local_host if configured_host in ("0.0.0.0", "::", "") else configured_host
    return host, int(local_port)


async def _stream(
    http_request: web.Request,
    request: Request,
    params: GenerateParams,
    response_id: str,
    headers: dict[str, str],
) -> web.StreamResponse:
    state = http_request.app[STATE]
    templates = StreamTemplates(params.kind, response_id, state.config.served_model_name)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8", **headers})
    response.enable_chunked_encoding()
    try:
        await response.prepare(http_request)  # a StreamResponse sends its headers here
    except ConnectionResetError:
        return response  # the client left before the first token; the caller aborts the request
    transport = http_request.transport
    if transport is None:
        return response
    sink = TokenSink(transport, templates, request.max_tokens)
    request.on_token = sink if state.trace is None else FirstTokenTrace(sink, state.trace, state.engine)
    try:
        while not request.is_finished and not sink.closed:
            await request.output_ready.wait()
            request.output_ready.clear()
        if request.status is RequestStatus.FINISHED and not sink.closed:
            tail = (
                [
                    templates.usage_chunk(
                        usage(
                            request.num_prompt_tokens,
                            request.num_output_tokens,
                            request.num_cached_tokens,
                            streamed=True,
                        )
                    )
                ]
                if params.include_usage
                else []
            )
            await response.write_eof(b"".join([*tail, SSE_DONE]))
    except ConnectionResetError:
        pass  # the client went away; the caller aborts the request
    return response


class TokenSink:
    """Writes a streamed request's new tokens straight to its socket, called by the engine after each
    step: one chunked-encoding write per stream per step and no task switch per token, which is what
    lets one process stream tens of thousands of tokens per second (benchmarks/sim_throughput.py).
    The headers are already sent and the response is chunked, so each write is one HTTP chunk."""

    __slots__ = (
        "closed",
        "last_index",
        "last_suffix",
        "num_sent",
        "opening",
        "prefix",
        "suffix",
        "transport",
    )

    def __init__(
        self, transport: asyncio.Transport | Any, templates: StreamTemplates, max_tokens: int
    ) -> None:
        self.transport = transport
        self.opening = templates.opening
        self.prefix, self.suffix, self.last_suffix = templates.prefix, templates.suffix, templates.last_suffix
        self.last_index = max_tokens - 1
        self.num_sent = 0
        self.closed = False

    def __call__(self, request: Request) -> None:
        token_ids = request.output_token_ids
        num_out = len(token_ids)
        parts = [self.opening] if self.num_sent == 0 else []
        for index in range(self.num_sent, num_out):
            token_id = token_ids[index]
            # vLLM's detokenizer puts the space before every word; a special token's chunk is empty
            word = b" w%d" % token_id if token_id < NUM_WORD_TOKENS else b""
            parts.append(self.prefix + word + (self.last_suffix if index == self.last_index else self.suffix))
        self.num_sent = num_out
        if self.transport.is_closing():
            self.closed = True
            request.output_ready.set()  # the handler returns and aborts the request
            return
        body = b"".join(parts)
        self.transport.write(b"%x\r\n%b\r\n" % (len(body), body))


def trace_intake(
    trace: TurnTrace, state: SimState, request: Request, stamps_s: tuple[float, float], pulled: bool
) -> None:
    """A request handed to the engine: when its handler started and its body was parsed (stamps_s),
    its arrival and API-ready times on the loop's clock, now on both clocks, and how many steps the
    engine had completed."""
    trace.write(
        "intake",
        rid=request.request_id,
        eng=state.config.engine_id,
        handler=stamps_s[0],
        arrival=stamps_s[1],
        arrival_loop=request.arrival_s,
        ready_loop=request.ready_s,
        submit=trace_now_s(),
        submit_loop=asyncio.get_running_loop().time(),
        steps=state.engine.stats.num_steps,
        prompt=request.num_prompt_tokens,
        pulled=pulled,
    )


class StepTrace:
    """Engine.on_step while tracing: each step that yields a request's first token, as it is decided
    (and when the step before it was decided: a request submitted in between could join it)."""

    def __init__(self, trace: TurnTrace, engine: Engine, engine_id: str) -> None:
        self.trace, self.engine, self.engine_id = trace, engine, engine_id
        self.last_decided_s = 0.0

    def __call__(self, step: Step, start_s: float, end_s: float) -> None:
        decided_s, self.last_decided_s = self.last_decided_s, trace_now_s()
        first = [
            item.request.request_id
            for item in step.scheduled
            if item.completes_prompt and item.request.num_output_tokens == 0
        ]
        if not first:
            return
        self.trace.write(
            "step",
            eng=self.engine_id,
            i=self.engine.stats.num_steps,
            t=self.last_decided_s,
            prev_t=decided_s,
            t_loop=asyncio.get_running_loop().time(),
            start_loop=start_s,
            end_loop=end_s,
            n=len(step.scheduled),
            first=first,
        )


class FirstTokenTrace:
    """A stream's on_token while tracing: stamps the first token's write, then hands the stream to
    its TokenSink for good. The stamp is taken before the write: the proxy, another process, may
    read the chunk before this one runs again, and its receipt must not precede the send."""

    def __init__(self, sink: TokenSink, trace: TurnTrace, engine: Engine) -> None:
        self.sink, self.trace, self.engine = sink, trace, engine

    def __call__(self, request: Request) -> None:
        written_s = trace_now_s()
        request.on_token = self.sink
        self.sink(request)
        self.trace.write("first", rid=request.request_id, t=written_s, steps=self.engine.stats.num_steps)


def _check_model(model: str | None, served_model_name: str) -> None:
    if model is not None and model != served_model_name:
        raise ApiError(404, f"The model `{model}` does not exist.", "model")


async def _json_body(http_request: web.Request) -> tuple[Any, int]:
    """The parsed body and its size in bytes; ValidationError 400 in vLLM's words when it is not JSON.

    The bytes are read as sent (`ppd sim` does not decode Content-Encoding, as vLLM's server does
    not): a gzip body is not JSON. JSON nested too deeply for the parser is a 400 too, as in vLLM
    (pydantic's parser stops at its recursion limit), not a 500.
    """
    raw = await http_request.read()
    try:
        return json.loads(raw), len(raw)
    except RecursionError as exc:
        message = validation_message("json_invalid", (0,), "JSON decode error: recursion limit exceeded", {})
        raise ValidationError(400, message, "body") from exc
    except json.JSONDecodeError as exc:
        message = validation_message("json_invalid", (exc.pos,), "JSON decode error", {})
        raise ValidationError(400, f"{message} ({exc.msg})", f"body.{exc.pos}") from exc
    except UnicodeDecodeError as exc:
        message = validation_message("json_invalid", (exc.start,), "JSON decode error", {})
        raise ValidationError(400, f"{message} (not UTF-8)", f"body.{exc.start}") from exc


def _with_headers(response: web.Response, headers: dict[str, str]) -> web.Response:
    response.headers.update(headers)
    return response


async def models(http_request: web.Request) -> web.Response:
    config = http_request.app[STATE].config
    created = int(time.time())
    card = {
        "id": config.served_model_name,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": config.served_model_name,
        "parent": None,
        "max_model_len": config.max_model_len,
        "permission": [
            {
                "id": f"modelperm-{uuid.uuid4().hex[:16]}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }
    return json_response({"object": "list", "data": [card]})


async def health(http_request: web.Request) -> web.Response:
    return web.Response(status=200)


async def version(http_request: web.Request) -> web.Response:
    return json_response({"version": SIM_VERSION})


async def tokenize(http_request: web.Request) -> web.Response:
    config = http_request.app[STATE].config
    try:
        body, num_body_bytes = await _json_body(http_request)
        if isinstance(body, dict):
            _check_model(
                body.get("model") if isinstance(body.get("model"), str) else None, config.served_model_name
            )
        if num_body_bytes > OFF_LOOP_BODY_BYTES:
            token_ids = await asyncio.to_thread(parse_tokenize, body)  # as for a generation
        else:
            token_ids = parse_tokenize(body)
    except ApiError as exc:
        return api_error_response(exc)
    return json_response(
        {
            "count": len(token_ids),
            "max_model_len": config.max_model_len,
            "tokens": token_ids,
            "token_strs": None,
        }
    )


async def metrics(http_request: web.Request) -> web.Response:
    state = http_request.app[STATE]
    text = render_metrics(state.engine, state.puller.stats, state.config.served_model_name)
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def reset_prefix_cache(http_request: web.Request) -> web.Response:
    http_request.app[STATE].engine.kv_cache.reset_prefix_cache()
    return web.Response(status=200)


async def kv_pull(http_request: web.Request) -> web.Response:
    """Internal (sim to sim): hand the blocks held under a lease to the D that pulls them."""
    state = http_request.app[STATE]
    try:
        body, _ = await _json_body(http_request)
        lease_id = body.get("remote_request_id") if isinstance(body, dict) else None
        if not isinstance(lease_id, str):
            raise ApiError(400, "remote_request_id (string) is required.")
    except ApiError as exc:
        return api_error_response(exc)
    lease = state.engine.take_lease(lease_id)
    if lease is None:
        return error_response(
            404,
            f"Engine {state.config.engine_id} holds no KV blocks for request {lease_id!r}: unknown, "
            f"already pulled, or its {state.config.kv_lease_s:g} s lease expired.",
        )
    return json_response(
        {
            "engine_id": state.config.engine_id,
            "num_blocks": len(lease.block_ids),
            "num_tokens": lease.num_tokens,
        }
    )


async def stats(http_request: web.Request) -> web.Response:
    """Engine figures for benchmarks: drift of real time behind the modeled clock, steps, tokens."""
    engine = http_request.app[STATE].engine
    s = engine.stats
    return json_response(
        {
            "num_steps": s.num_steps,
            "last_drift_ms": s.last_drift_s * 1e3,
            "max_drift_ms": s.max_drift_s * 1e3,
            "mean_drift_ms": s.sum_drift_s * 1e3 / s.num_drift_samples if s.num_drift_samples else 0.0,
            "num_generation_tokens": s.num_generation_tokens,
            "num_running": len(engine.scheduler.running),
            "num_waiting": engine.core.num_waiting_requests,
            "num_preemptions": engine.scheduler.num_preemptions,
            "num_aborted_requests": s.num_aborted_requests,
            "kv_cache_usage": engine.kv_cache.usage,
            "num_leases": len(engine.leases),
            "num_kv_pull_stalls": s.num_stalls,
            "kv_pull_stall_ms": s.stall_s * 1e3,
        }
    )


async def reset_stats(http_request: web.Request) -> web.Response:
    http_request.app[STATE].engine.stats.reset_drift()
    return web.Response(status=200)


__all__ = ["STATE", "SimState", "build_app"]
