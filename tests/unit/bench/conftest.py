"""A tiny OpenAI-style SSE engine, in-process on port 0, for testing the bench's client and runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from ppd.openai_api import SSE_DONE, error_response, sse_event

# A behaviour per request: "ok", "http500", "http400", "drop" (close mid-stream), "hang" (never
# answer), "error_event" (an error chunk in the stream), "no_done" (end without [DONE]).
Behaviour = Callable[[dict[str, Any]], str]


class FakeEngine:
    """`async with FakeEngine() as engine:` serves at engine.url; engine.requests holds what came."""

    def __init__(
        self, behaviour: Behaviour = lambda body: "ok", token_delay_s: float = 0.0, linger_s: float = 0.0
    ) -> None:
        self.behaviour = behaviour
        self.token_delay_s = token_delay_s
        self.linger_s = linger_s  # pause between [DONE] and the end of the body, as a proxy may
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.admin_calls: list[tuple[str, str | None]] = []
        self.peers: list[object] = []  # the client address of each generate request
        self.probe_peers: list[object] = []  # the client address of each /v1/models or /version
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeEngine:
        app = web.Application()
        app.router.add_post("/v1/completions", self._generate)
        app.router.add_post("/v1/chat/completions", self._generate)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/version", self._version)
        app.router.add_post("/mode/pd", self._admin)
        app.router.add_post("/mode/ppd", self._admin)
        app.router.add_post("/conversations/clear", self._admin)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        self.probe_peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response({"object": "list", "data": [{"id": "fake-model"}]})

    async def _version(self, request: web.Request) -> web.Response:
        self.probe_peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response({"version": "fake-1"})

    async def _admin(self, request: web.Request) -> web.Response:
        self.admin_calls.append((request.path, request.headers.get("Authorization")))
        return web.json_response({"ok": True})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body, dict(request.headers)))
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        behaviour = self.behaviour(body)
        if behaviour == "http500":
            return error_response(500, "engine exploded")
        if behaviour == "http400":
            return error_response(400, "bad prompt")
        if behaviour == "hang":
            await asyncio.sleep(3600)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "x-ppd-route": "fake-route",
                "x-ppd-upstream": "http://up",
                "x-ppd-prefill-ms": "1.5",
            }
        )
        await response.prepare(request)
        chat = request.path.endswith("chat/completions")
        num_tokens = int(body.get("max_tokens", 4))
        for index in range(num_tokens):
            if behaviour == "drop" and index == 1:
                assert request.transport is not None
                request.transport.close()
                return response
            if behaviour == "error_event" and index == 1:
                await response.write(sse_event({"error": {"message": "boom", "code": 500}}))
                await response.write(SSE_DONE)
                return response
            await response.write(sse_event(_chunk(chat, ("" if index == 0 else " ") + f"w{index + 7}")))
            if self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
        prompt_words = len(_prompt_text(body).split())
        usage = {
            "prompt_tokens": prompt_words,
            "completion_tokens": num_tokens,
            "prompt_tokens_details": {"cached_tokens": 3},
        }
        await response.write(sse_event({"choices": [], "usage": usage}))
        if behaviour != "no_done":
            await response.write(SSE_DONE)
        await asyncio.sleep(self.linger_s)
        return response


def _chunk(chat: bool, text: str) -> dict[str, Any]:
    if chat:
        return {"choices": [{"index": 0, "delta": {"content": text}}], "usage": None}
    return {"choices": [{"index": 0, "text": text}], "usage": None}


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return " ".join(message["content"] for message in body["messages"])
    return str(body["prompt"])


@pytest.fixture
def fake_engine() -> type[FakeEngine]:
    """The FakeEngine class: `async with fake_engine(behaviour) as engine: ...`."""
    return FakeEngine
