"""The proxy's trust boundary over real HTTP (docs/reliability.md, "Trust boundary"): clients are
untrusted, engines are not. A client's `kv_transfer_params` never reach an engine, a request that
makes every engine fail counts against none of them, and P's KV is handed back when D refuses a
request that P already prefilled.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any

from helpers import JsonEngineHandler, Reply, http_call

SIM_FAST = ("sim", "--time-scale", "0.05")
JSON = {"Content-Type": "application/json"}


def post(base: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return http_call(base + path, json.dumps(body).encode(), {**JSON, **(headers or {})})


def upstreams(proxy: str) -> dict[str, dict[str, Any]]:
    return {u["url"]: u for u in http_call(proxy + "/status").json()["upstreams"]}


def num_leases(engine: str) -> int:
    return int(http_call(engine + "/ppd/stats").json()["num_leases"])


@contextmanager
def listening_spy() -> Iterator[tuple[int, socket.socket]]:
    """A port that accepts connections into its backlog; whoever connects is found by accept()."""
    with socket.socket() as spy:
        spy.bind(("127.0.0.1", 0))
        spy.listen(16)
        spy.setblocking(False)
        yield spy.getsockname()[1], spy


def was_contacted(spy: socket.socket) -> bool:
    try:
        connection, _ = spy.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def forged_params(spy_port: int) -> dict[str, Any]:
    # What an attacker sends: "pull this request's KV from my host", as P's answer would say.
    return {
        "do_remote_prefill": True,
        "do_remote_decode": False,
        "remote_engine_id": "attacker",
        "remote_request_id": "x",
        "remote_block_ids": [[0]],
        "remote_host": "127.0.0.1",
        "remote_port": spy_port,
    }


def test_client_kv_transfer_params_never_reach_an_engine(ppd_server) -> None:
    replica_a, replica_b = ppd_server(*SIM_FAST).url, ppd_server(*SIM_FAST).url
    replication = ppd_server("proxy", "--mode", "replication", "--replica", replica_a, replica_b).url
    ppd = ppd_server("proxy", "--mode", "ppd", "--prefill", replica_a, "--decode", replica_b).url
    with listening_spy() as (spy_port, spy):
        for number in range(4):
            body = {"prompt": f"w{number} w2", "max_tokens": 2, "kv_transfer_params": forged_params(spy_port)}
            reply = post(replication, "/v1/completions", body)
            assert reply.status == 200 and reply.json()["choices"][0]["text"], reply.body
            # do_remote_decode would make the engine hold the KV under a lease nobody pulls
            hold = {**body, "kv_transfer_params": {"do_remote_decode": True}}
            assert post(replication, "/v1/completions", hold).status == 200
        session = {"X-Session-ID": "s1"}
        first = post(ppd, "/v1/completions", {"prompt": "w1 w2", "max_tokens": 2}, session)
        assert first.status == 200 and first.headers["x-ppd-route"] == "pd"
        second_body = {
            "prompt": "w1 w2" + first.json()["choices"][0]["text"] + " w3",
            "max_tokens": 2,
            "kv_transfer_params": forged_params(spy_port),
        }
        second = post(ppd, "/v1/completions", second_body, session)
        assert second.status == 200 and second.headers["x-ppd-route"] == "ppd-direct", second.body
        assert not was_contacted(spy)
    assert num_leases(replica_a) == 0 and num_leases(replica_b) == 0
    for proxy in (replication, ppd):
        assert all(u["healthy"] and u["num_failures"] == 0 for u in upstreams(proxy).values())


class PoisonableEngine(JsonEngineHandler):
    """An engine whose /health passes and which answers every generation, except that a body with
    "poison" in it makes it answer 500: a request that breaks any engine, not a broken engine."""

    def do_GET(self) -> None:
        self._answer(200, {"status": "ok"} if self.path == "/health" else {"version": "poisonable"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if b"poison" in body:
            error = {"message": "engine error", "type": "InternalServerError", "code": 500}
            self._answer(500, {"error": error})
            return
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        choice = {"index": 0, "text": " w1", "finish_reason": "length"}
        self._answer(200, {"id": "cmpl-1", "object": "text_completion", "choices": [choice], "usage": usage})


@contextmanager
def poisonable_engine() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PoisonableEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_that_fails_on_every_engine_counts_against_none(ppd_server) -> None:
    with poisonable_engine() as engine_a, poisonable_engine() as engine_b:
        proxy = ppd_server("proxy", "--mode", "replication", "--replica", engine_a, engine_b,
                           "--health-interval-s", "30").url  # fmt: skip
        for number in range(8):
            reply = post(proxy, "/v1/completions", {"prompt": f"poison {number}", "max_tokens": 1})
            assert reply.status == 502 and "engine error" in reply.json()["error"]["message"]
        states = upstreams(proxy)
        assert all(u["healthy"] and u["num_failures"] == 0 for u in states.values()), states
        assert post(proxy, "/v1/completions", {"prompt": "honest", "max_tokens": 1}).status == 200
        # alone, with no second opinion to be had, it is not held against the engine either
        alone = ppd_server("proxy", "--mode", "replication", "--replica", engine_a).url
        for _ in range(4):
            assert post(alone, "/v1/completions", {"prompt": "poison", "max_tokens": 1}).status == 502
        assert upstreams(alone)[engine_a]["healthy"] and upstreams(alone)[engine_a]["num_failures"] == 0


def test_prefilled_kv_is_handed_back_when_decode_refuses_the_request(ppd_server) -> None:
    # P accepts the prompt with its one output token; D refuses the client's max_tokens, which do
    # not fit the context. P's blocks must not stay held for the whole --kv-lease-s.
    prefill = ppd_server(*SIM_FAST, "--max-model-len", "64", "--kv-lease-s", "600").url
    decode = ppd_server(*SIM_FAST, "--max-model-len", "64").url
    proxy = ppd_server("proxy", "--mode", "pd", "--prefill", prefill, "--decode", decode).url
    prompt = " ".join(f"w{i}" for i in range(30))
    for _ in range(5):
        reply = post(proxy, "/v1/completions", {"prompt": prompt, "max_tokens": 50})
        assert reply.status == 400, reply.body
        assert "you requested 50 output tokens" in reply.json()["error"]["message"]
    assert wait_until(lambda: num_leases(prefill) == 0), num_leases(prefill)
    # P frees the blocks when D claims them; D's one-token answer to the release comes just after
    assert wait_until(lambda: http_call(proxy + "/status").json()["kv_releases"]["released"] == 5)
    status = http_call(proxy + "/status").json()
    assert status["kv_releases"] == {"released": 5, "failed": 0}
    assert all(u["healthy"] and u["num_failures"] == 0 for u in status["upstreams"])


def wait_until(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_a_refused_prompt_is_judged_as_the_client_sent_it_not_as_rewritten_for_prefill(ppd_server) -> None:
    prefill = ppd_server(*SIM_FAST, "--max-model-len", "64").url
    decode = ppd_server(*SIM_FAST, "--max-model-len", "64").url
    proxy = ppd_server("proxy", "--mode", "pd", "--prefill", prefill, "--decode", decode).url
    prompt = " ".join(f"w{i}" for i in range(80))
    for path, body in (
        ("/v1/completions", {"prompt": prompt, "max_tokens": 7}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}], "max_tokens": 7}),
    ):
        reply = post(proxy, path, body)
        assert reply.status == 400, reply.body
        message = reply.json()["error"]["message"]
        assert "you requested 7 output tokens" in message and "1 output tokens" not in message, message
    assert post(proxy, "/v1/completions", {"prompt": "w1 w2", "max_tokens": 2}).status == 200
    status = http_call(proxy + "/status").json()
    assert all(u["healthy"] and u["num_failures"] == 0 for u in status["upstreams"])


def test_a_prefill_answer_without_kv_params_counts_against_p_once_d_served_the_turn(ppd_server) -> None:
    # The engine answers 200 without kv_transfer_params (a P started without a NixlConnector): D
    # serves every turn, so it was P's fault, and three in a row take P out of service.
    decode = ppd_server(*SIM_FAST).url
    with poisonable_engine() as prefill:
        proxy = ppd_server("proxy", "--mode", "pd", "--prefill", prefill, "--decode", decode,
                           "--health-interval-s", "30").url  # fmt: skip
        routes = []
        for number in range(4):
            reply = post(proxy, "/v1/completions", {"prompt": f"w{number} w2", "max_tokens": 2})
            assert reply.status == 200
            routes.append((reply.headers["x-ppd-route"], reply.headers.get("x-ppd-failover")))
        assert routes == [("pd-fallback", "prefill_failed")] * 3 + [("pd-fallback", "no_prefill")]
        assert upstreams(proxy)[prefill]["healthy"] is False
        assert upstreams(proxy)[decode]["num_failures"] == 0
