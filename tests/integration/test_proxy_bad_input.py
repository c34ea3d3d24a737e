"""`ppd proxy` against malformed and hostile requests, sent as raw bytes over a socket.

Every request the HTTP parser accepts gets a 4xx with an OpenAI-style JSON error within a timeout;
requests that are not HTTP at all get aiohttp's own 400 (plain text: its parser answers before any
application code runs). Afterwards the proxy still serves.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

TOKEN = "s3cret"
MAX_BODY_BYTES = 65536
MAX_JSON_ELEMENTS = 2000
BODY_TIMEOUT_S = 1.0
REPLY_TIMEOUT_S = 10.0


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    seconds: float

    def error(self) -> dict[str, Any]:
        error = json.loads(self.body).get("error")
        return error if isinstance(error, dict) else {}


def exchange(url: str, data: bytes, more: bytes = b"") -> Reply:
    """Send raw bytes (then `more` from a thread, unanswered), and read one HTTP response."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    started_s = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=REPLY_TIMEOUT_S) as sock:
        sock.sendall(data)
        if more:
            threading.Thread(target=_send_quietly, args=(sock, more), daemon=True).start()
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        content_type = response.getheader("Content-Type", "")
        return Reply(response.status, content_type, body, time.monotonic() - started_s)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the proxy answered and closed before reading it all
        sock.sendall(data)


def http_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                 length: int | None = None) -> bytes:  # fmt: skip
    lines = [f"{method} {path} HTTP/1.1", "Host: proxy", "Connection: close"]
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if "Transfer-Encoding" not in all_headers:
        all_headers["Content-Length"] = str(len(body) if length is None else length)
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def post(path: str, body: Any, headers: dict[str, str] | None = None) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http_request("POST", path, data, headers)


def with_raw_header(request: bytes, header: bytes) -> bytes:
    """The request with one more header line, given as bytes (which need not be UTF-8)."""
    return request.replace(b"\r\nHost: proxy\r\n", b"\r\nHost: proxy\r\n" + header + b"\r\n", 1)


def nested(depth: int) -> bytes:
    return b'{"prompt": ' + b"[" * depth + b"1" + b"]" * depth + b"}"


def chunked(*chunks: bytes, end: bool = True) -> bytes:
    framed = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for chunk in chunks)
    return framed + (b"0\r\n\r\n" if end else b"")


C, CHAT = "/v1/completions", "/v1/chat/completions"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CHUNKED = {"Transfer-Encoding": "chunked"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HUGE_PROMPT = b'{"prompt": "' + b"w " * MAX_BODY_BYTES + b'"}'
MODE_PD = "/mode/pd"
POST_C = b"POST /v1/completions HTTP/1.1\r\nHost: p\r\n"

# (name, raw request, expected status, words the error message must contain)
CASES: list[tuple[str, bytes, int, str]] = [
    ("bad json", post(C, b"{nope"), 400, "not valid JSON"),
    ("empty body", post(C, b""), 400, "not valid JSON"),
    ("json array", post(C, b"[1]"), 400, "JSON object"),
    ("json string", post(C, b'"prompt"'), 400, "JSON object"),
    ("json null", post(C, b"null"), 400, "JSON object"),
    ("json number", post(C, b"123"), 400, "JSON object"),
    ("trailing garbage", post(C, b'{"prompt": "a"} x'), 400, "not valid JSON"),
    ("invalid utf-8", post(C, b'{"prompt": "\xff\xfe"}'), 400, "not valid JSON"),
    ("form encoded", post(C, b"prompt=a", FORM), 400, "JSON"),
    ("missing prompt", post(C, {"max_tokens": 3}), 400, "prompt"),
    ("null prompt", post(C, {"prompt": None}), 400, "prompt"),
    ("empty prompt", post(C, {"prompt": ""}), 400, "prompt"),
    ("empty prompt list", post(C, {"prompt": []}), 400, "prompt"),
    ("number prompt", post(C, {"prompt": 5}), 400, "prompt"),
    ("object prompt", post(C, {"prompt": {"text": "a"}}), 400, "prompt"),
    ("stream as string", post(C, {"prompt": "a", "stream": "yes"}), 400, "stream"),
    ("stream as number", post(C, {"prompt": "a", "stream": 1}), 400, "stream"),
    ("stream null", post(C, {"prompt": "a", "stream": None}), 400, "stream"),
    ("negative max_tokens", post(C, {"prompt": "a", "max_tokens": -1}), 400, "max_tokens"),
    ("zero max_tokens", post(C, {"prompt": "a", "max_tokens": 0}), 400, "max_tokens"),
    ("string max_tokens", post(C, {"prompt": "a", "max_tokens": "10"}), 400, "max_tokens"),
    ("float max_tokens", post(C, {"prompt": "a", "max_tokens": 1.5}), 400, "max_tokens"),
    ("bool max_tokens", post(C, {"prompt": "a", "max_tokens": True}), 400, "max_tokens"),
    ("infinite max_tokens", post(C, b'{"prompt": "a", "max_tokens": 1e400}'), 400, "max_tokens"),
    ("NaN max_tokens", post(C, b'{"prompt": "a", "max_tokens": NaN}'), 400, "max_tokens"),
    ("5000-digit max_tokens", post(C, b'{"prompt": "a", "max_tokens": 1' + b"0" * 5000 + b"}"), 400, "JSON"),
    ("huge max_tokens", post(C, {"prompt": "a b", "max_tokens": 10**9}), 400, ""),
    ("astronomic max_tokens", post(C, {"prompt": "a b", "max_tokens": 10**30}), 400, ""),
    ("unknown model", post(C, {"prompt": "a", "model": "nope"}), 404, "nope"),
    ("number conversation_id", post(C, {"prompt": "a", "conversation_id": 5}), 400, "conversation_id"),
    ("empty conversation_id", post(C, {"prompt": "a", "conversation_id": ""}), 400, "conversation_id"),
    ("long conversation_id", post(C, {"prompt": "a", "conversation_id": "c" * 600}), 400, "conversation_id"),
    ("nesting 100 deep", post(C, nested(100)), 400, "nests deeper"),
    ("nesting 30k deep", post(C, nested(30_000)), 400, "more than"),
    ("300 empty objects", post(C, b'{"prompt": [' + b",".join([b"{}"] * 300) + b"]}"), 400,
     f"more than {MAX_JSON_ELEMENTS // 10} arrays and objects"),
    ("3000 numbers", post(C, b'{"prompt": [' + b",".join([b"1"] * 3000) + b"]}"), 400,
     f"more than {MAX_JSON_ELEMENTS} elements"),
    ("600 one-word messages", post(CHAT, {"messages": [{"role": "user", "content": "w"}] * 600}), 400,
     f"more than {MAX_JSON_ELEMENTS} elements"),
    ("chat messages string", post(CHAT, {"messages": "hi"}), 400, "messages"),
    ("chat messages empty", post(CHAT, {"messages": []}), 400, "messages"),
    ("chat message number", post(CHAT, {"messages": [1]}), 400, "message"),
    ("chat message without role", post(CHAT, {"messages": [{"content": "x"}]}), 400, "role"),
    ("chat role number", post(CHAT, {"messages": [{"role": 5, "content": "x"}]}), 400, "role"),
    ("chat missing messages", post(CHAT, {"model": "llama"}), 400, "messages"),
    ("chat negative max_completion_tokens",
     post(CHAT, {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -5}), 400,
     "max_completion_tokens"),
    ("chat deep content", post(CHAT, b'{"messages": [{"role": "user", "content": ' + b"[" * 5000 + b"]" * 5000
                                     + b"}]}"), 400, "more than"),
    ("chat content 150 deep", post(CHAT, b'{"messages": [{"role": "user", "content": '
                                         + b"[" * 150 + b"]" * 150 + b"}]}"), 400, "nests deeper"),
    ("long session header", post(C, {"prompt": "a"}, {"X-Session-ID": "s" * 600}), 400, "X-Session-ID"),
    ("content-encoding lie", post(C, {"prompt": "a"}, {"Content-Encoding": "gzip"}), 400, "not valid gzip"),
    ("deflate lie", post(C, {"prompt": "a"}, {"Content-Encoding": "deflate"}), 400, "not valid deflate"),
    ("gzip cut short", post(C, gzip.compress(b'{"prompt": "a"}')[:12], {"Content-Encoding": "gzip"}), 400,
     "not valid gzip"),
    ("gzip bomb", post(C, gzip.compress(b" " * (8 * MAX_BODY_BYTES)), {"Content-Encoding": "gzip"}), 413,
     "once decoded"),
    *[(f"content-encoding {value}", post(C, {"prompt": "a"}, {"Content-Encoding": value}), 415,
       "not supported") for value in ("zstdx", "compress", "gzip, br", "*", "br", "zstd")],
    ("non-UTF-8 Authorization", with_raw_header(post(C, {"prompt": "a"}), b"Authorization: Bearer \xff\xfe"),
     401, "printable ASCII"),
    ("non-UTF-8 admin token", with_raw_header(http_request("POST", MODE_PD), b"Authorization: Bearer \xe9"),
     401, "printable ASCII"),
    ("declared body too large", http_request("POST", C, b"", length=MAX_BODY_BYTES + 1), 413, "exceeds"),
    ("sent body too large", post(C, {"prompt": "w " * MAX_BODY_BYTES}), 413, "exceeds"),
    ("chunked body too large", http_request("POST", C, chunked(HUGE_PROMPT), CHUNKED), 413, "exceeds"),
    ("GET completions", http_request("GET", C), 405, ""),
    ("PUT chat", http_request("PUT", CHAT, b"{}"), 405, ""),
    ("DELETE mode", http_request("DELETE", "/mode"), 405, ""),
    ("GET mode switch", http_request("GET", "/mode/pd"), 405, ""),
    ("unknown mode", http_request("POST", "/mode/fast", b"", ADMIN), 400, "unknown mode"),
    ("mode switch without token", http_request("POST", MODE_PD), 401, "Bearer"),
    ("mode switch wrong token", http_request("POST", MODE_PD, b"", {"Authorization": "Bearer no"}), 401, ""),
    ("token without Bearer", http_request("POST", MODE_PD, b"", {"Authorization": TOKEN}), 401, ""),
    ("clear without token", http_request("POST", "/conversations/clear"), 401, ""),
    ("metrics clear basic auth", http_request("POST", "/metrics/clear", b"", {"Authorization": "Basic eDp5"}),
     401, ""),
    ("unknown path", http_request("GET", "/nothing"), 404, ""),
    ("path traversal", http_request("GET", "/v1/../../etc/passwd"), 404, ""),
    ("embeddings", post("/v1/embeddings", {"input": "a"}), 404, ""),
    ("status subpath", http_request("GET", "/status/extra"), 404, ""),
]  # fmt: skip

# Not HTTP the parser accepts: aiohttp itself answers 400 (plain text) and closes the connection.
PROTOCOL_CASES: list[tuple[str, bytes]] = [
    ("content-length not a number", POST_C + b"Content-Length: abc\r\n\r\n"),
    ("negative content-length", POST_C + b"Content-Length: -5\r\n\r\n"),
    ("request line garbage", b"HELLO\r\n\r\n"),
    ("header line of 10 KB", b"GET /health HTTP/1.1\r\nHost: p\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"),
    ("broken chunk framing", http_request("POST", C, b"5\r\n{\"pro\r\nzz\r\n", CHUNKED)),
    ("length and chunked", POST_C + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
]  # fmt: skip


@pytest.fixture(scope="module")
def proxy() -> Any:
    from helpers import start_ppd

    engine = start_ppd("sim", "--time-scale", "0.05", "--port", "0")
    proxy = start_ppd("proxy", "--mode", "ppd", "--prefill", engine.url, "--decode", engine.url,
                      "--port", "0", "--admin-token", TOKEN, "--max-body-bytes", str(MAX_BODY_BYTES),
                      "--body-timeout-s", str(BODY_TIMEOUT_S),
                      "--max-json-elements", str(MAX_JSON_ELEMENTS))  # fmt: skip
    yield proxy.url
    proxy.stop()
    engine.stop()


def assert_still_serving(url: str) -> None:
    health = exchange(url, http_request("GET", "/health"))
    assert health.status == 200 and json.loads(health.body)["healthy_upstreams"] == 1
    good = exchange(url, post(C, {"prompt": "w1 w2", "max_tokens": 2}))
    assert good.status == 200 and json.loads(good.body)["choices"][0]["text"]


def test_at_least_fifty_malformed_requests_are_each_an_openai_error(proxy: str) -> None:
    assert len(CASES) >= 50
    problems = []
    for name, data, status, words in CASES:
        reply = exchange(proxy, data)
        error = reply.error() if reply.content_type.startswith("application/json") else {}
        if reply.status != status or error.get("code") != status or words not in error.get("message", ""):
            problems.append((name, reply.status, reply.body[:200]))
        if not {"message", "type", "code"} <= set(error) or reply.seconds > REPLY_TIMEOUT_S:
            problems.append((name, "not an OpenAI error in time", reply.body[:200]))
    assert problems == [], "\n".join(map(repr, problems))
    assert_still_serving(proxy)


def test_a_body_that_never_finishes_is_408_within_the_body_timeout(proxy: str) -> None:
    declared = http_request("POST", C, b'{"prompt": "a', length=1000)
    stalled_chunks = http_request("POST", C, chunked(b'{"prompt": ', end=False), CHUNKED)
    for data in (declared, stalled_chunks):
        reply = exchange(proxy, data)
        assert reply.status == 408 and reply.error()["code"] == 408
        assert BODY_TIMEOUT_S <= reply.seconds < BODY_TIMEOUT_S + 5.0
    assert_still_serving(proxy)


def test_non_http_bytes_get_the_parsers_400_and_the_proxy_keeps_serving(proxy: str) -> None:
    for name, data in PROTOCOL_CASES:
        reply = exchange(proxy, data)
        assert 400 <= reply.status < 500, (name, reply.status)
    assert_still_serving(proxy)


def test_non_loopback_bind_without_admin_token_exits_2_with_one_line() -> None:
    command = [sys.executable, "-m", "ppd", "proxy", "--mode", "replication", "--replica", "http://127.0.0.1:9",
               "--host", "0.0.0.0", "--port", "0"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") <= 1 and "--admin-token" in done.stderr and "--insecure" in done.stderr
