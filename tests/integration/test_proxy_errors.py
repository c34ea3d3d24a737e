"""`ppd proxy` failure paths over real HTTP: bad input, dead or slow engines, disconnects, admin."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp

from helpers import Reply, http_call

SIM_FAST = ("sim", "--time-scale", "0.05")
SIM_REAL_TIME = ("sim", "--time-scale", "1")
TOKEN = "s3cret"


def call(base: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> Reply:  # fmt: skip
    return http_call(base + path, data, headers, method)


def post_json(base: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return call(
        base, path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def assert_openai_error(reply: Reply, status: int) -> str:
    assert reply.status == status, (reply.status, reply.body)
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["code"] == status
    return str(error["message"])


def running_requests(engine_url: str) -> float:
    text = call(engine_url, "/metrics").body.decode()
    match = re.search(r"^vllm:num_requests_running\{[^}]*\} (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def wait_until(condition, timeout_s: float = 15.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_bad_inputs_are_openai_errors_and_engine_4xx_pass_through(ppd_server) -> None:
    engine = ppd_server(*SIM_FAST).url
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", engine, "--decode", engine,
                       "--max-body-bytes", "2000").url  # fmt: skip
    json_headers = {"Content-Type": "application/json"}
    assert "JSON" in assert_openai_error(call(proxy, "/v1/completions", b"{nope", json_headers), 400)
    assert "object" in assert_openai_error(call(proxy, "/v1/completions", b"[1]", json_headers), 400)
    assert_openai_error(post_json(proxy, "/v1/completions", {"max_tokens": 3}), 400)
    assert_openai_error(post_json(proxy, "/v1/completions", {"prompt": "w1", "stream": "yes"}), 400)
    assert_openai_error(post_json(proxy, "/v1/chat/completions", {"messages": "hi"}), 400)
    assert_openai_error(post_json(proxy, "/v1/completions", {"prompt": "w1 " * 1000}), 413)
    assert_openai_error(call(proxy, "/v1/nothing-here"), 404)
    assert_openai_error(call(proxy, "/v1/completions"), 405)
    # the engine's own 4xx answers reach the client unchanged (P rejects first on the pd route)
    message = assert_openai_error(post_json(proxy, "/v1/completions", {"model": "nope", "prompt": "w1"}), 404)
    assert "nope" in message
    assert_openai_error(post_json(proxy, "/v1/completions", {"prompt": "w1", "max_tokens": 10**9}), 400)
    ok = post_json(proxy, "/v1/completions", {"prompt": "w1 w2", "max_tokens": 2})
    assert ok.status == 200 and ok.json()["choices"][0]["text"]  # still serving


def test_no_healthy_upstream_is_503(ppd_server) -> None:
    dead = closed_port_url()
    proxy = ppd_server("proxy", "--mode", "replication", "--replica", dead, "--health-interval-s", "0.1").url
    assert wait_until(lambda: not call(proxy, "/status").json()["upstreams"][0]["healthy"])
    assert "no healthy replica" in assert_openai_error(
        post_json(proxy, "/v1/completions", {"prompt": "w1"}), 503
    )
    assert call(proxy, "/health").json() == {"status": "ok", "healthy_upstreams": 0}


def test_engine_gone_before_streaming_is_502_then_out_of_service(ppd_server) -> None:
    # The only D is gone: nowhere to fail over to (tests/integration/test_proxy_failover.py has that).
    prefill, decode = ppd_server(*SIM_FAST), ppd_server(*SIM_FAST)
    proxy = ppd_server("proxy", "--mode", "pd", "--prefill", prefill.url, "--decode", decode.url,
                       "--health-interval-s", "60").url  # fmt: skip
    assert wait_until(lambda: all(u["version"] for u in call(proxy, "/status").json()["upstreams"]))
    decode.stop()
    body = {"prompt": "w1 w2", "max_tokens": 2, "stream": True}
    assert "cannot connect" in assert_openai_error(post_json(proxy, "/v1/completions", body), 502)
    assert "no healthy decode" in assert_openai_error(post_json(proxy, "/v1/completions", body), 503)
    upstreams = {u["url"]: u for u in call(proxy, "/status").json()["upstreams"]}
    assert upstreams[decode.url]["healthy"] is False and upstreams[prefill.url]["healthy"] is True
    failed = upstreams[decode.url]
    assert failed["num_failures"] == 1 and "cannot connect" in failed["last_error"]


def test_first_byte_timeout_is_502(ppd_server) -> None:
    engine = ppd_server(*SIM_REAL_TIME).url
    proxy = ppd_server(
        "proxy", "--mode", "replication", "--replica", engine, "--first-byte-timeout-s", "0.3"
    ).url
    body = {
        "prompt": "w1 w2",
        "max_tokens": 2000,
        "ignore_eos": True,
    }  # not streamed: seconds to the first byte
    started_s = time.monotonic()
    assert "no answer" in assert_openai_error(post_json(proxy, "/v1/completions", body), 502)
    assert time.monotonic() - started_s < 10.0


def test_client_disconnect_cancels_the_requests_on_the_engines(ppd_server) -> None:
    prefill, decode = ppd_server(*SIM_REAL_TIME).url, ppd_server(*SIM_REAL_TIME).url
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", prefill, "--decode", decode).url
    body = {"prompt": "w1 " * 40, "max_tokens": 4000, "ignore_eos": True, "stream": True}  # ~30 s to finish

    async def read_a_little_then_leave() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(proxy + "/v1/completions", json=body) as reply,
        ):
            assert reply.status == 200 and reply.headers["x-ppd-route"] == "pd"
            await reply.content.readline()

    asyncio.run(read_a_little_then_leave())
    assert wait_until(
        lambda: running_requests(decode) == 0 and running_requests(prefill) == 0, timeout_s=10.0
    )
    status = call(proxy, "/status").json()
    assert wait_until(lambda: call(proxy, "/status").json()["client_disconnects"] == 1)
    assert all(u["outstanding_requests"] == 0 for u in status["upstreams"])


def test_admin_token_status_metrics_and_decision_log(ppd_server, tmp_path: Path) -> None:
    engine = ppd_server(*SIM_FAST).url
    log_path = tmp_path / "decisions.jsonl"
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", engine, "--decode", engine,
                       "--admin-token", TOKEN, "--decision-log", str(log_path)).url  # fmt: skip
    reply = post_json(proxy, "/v1/completions", {"prompt": "w1 w2", "max_tokens": 2}, {"X-Session-ID": "s"})
    assert reply.status == 200
    for path in ("/mode/pd", "/conversations/clear", "/metrics/clear"):
        assert_openai_error(call(proxy, path, b"", method="POST"), 401)
        assert_openai_error(call(proxy, path, b"", {"Authorization": "Bearer wrong"}, "POST"), 401)
    assert call(proxy, "/mode").json() == {"mode": "ppd"}
    metrics = call(proxy, "/metrics").body.decode()
    assert 'ppd_proxy_requests_total{route="pd",status="200"} 1' in metrics
    assert 'ppd_proxy_ttft_seconds_count{route="pd"} 1' in metrics
    status = call(proxy, "/status").json()
    assert (
        status["mode"] == "ppd" and status["conversations"] == 1 and status["options"]["admin_token_required"]
    )
    assert status["upstreams"][0]["roles"] == ["prefill", "decode", "replica"]
    record = json.loads(log_path.read_text().splitlines()[0])
    assert (record["route"], record["turn"], record["status"], record["conversation"]) == (
        "pd",
        1,
        200,
        "s:s",
    )
    assert call(proxy, "/metrics/clear", b"", {"Authorization": f"Bearer {TOKEN}"}, "POST").status == 200
    assert "ppd_proxy_requests_total{" not in call(proxy, "/metrics").body.decode()
