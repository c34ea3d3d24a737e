"""`ppd proxy`'s client connections and what it tells whom: header and idle timeouts, the connection
cap, rate-limited one-line logs of rejected requests, --protect-status and --no-upstream-header."""

from __future__ import annotations

import json
import socket
import time

from helpers import Reply, http_call

SIM_FAST = ("sim", "--time-scale", "0.05")
TOKEN = "s3cret"


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def closed_within(sock: socket.socket, timeout_s: float) -> float | None:
    """Seconds until the server closed `sock` (None if it stayed open for timeout_s)."""
    started_s = time.monotonic()
    sock.settimeout(timeout_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started_s


def get(url: str, path: str, headers: dict[str, str] | None = None) -> Reply:
    return http_call(url + path, headers=headers)


def test_slow_headers_idle_connections_and_the_cap(ppd_server) -> None:
    engine = ppd_server(*SIM_FAST).url
    proxy = ppd_server("proxy", "--mode", "replication", "--replica", engine, "--header-timeout-s", "1",
                       "--idle-timeout-s", "1.5", "--max-connections", "20").url  # fmt: skip
    # headers never finished: closed after --header-timeout-s, though bytes keep trickling in
    slow = connect(proxy)
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: p\r\n")
    time.sleep(0.5)
    slow.sendall(b"X-A: 1\r\n")
    waited_s = closed_within(slow, 8.0)
    assert waited_s is not None and waited_s < 5.0  # without the deadline: open for good
    # a kept-alive connection with nothing more to ask: closed after --idle-timeout-s
    idle = connect(proxy)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: p\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    waited_s = closed_within(idle, 8.0)
    assert waited_s is not None and 1.0 < waited_s < 6.0  # aiohttp's default: an hour
    # the 21st open connection is answered 503 JSON and closed; the first 20 are served
    held = [connect(proxy) for _ in range(20)]
    time.sleep(0.2)
    over = connect(proxy)
    answer = over.recv(4096)
    assert answer.startswith(b"HTTP/1.1 503")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == 503
    held[0].sendall(b"GET /health HTTP/1.1\r\nHost: p\r\n\r\n")
    assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
    for sock in [*held, over, slow, idle]:
        sock.close()
    time.sleep(0.2)
    connections = get(proxy, "/status").json()["connections"]
    assert connections["num_refused"] == 1 and connections["num_header_timeouts"] >= 1
    assert connections["num_open"] <= 1  # only the /status request's own


def test_rejected_requests_are_logged_one_line_each_and_rate_limited(ppd_server) -> None:
    engine = ppd_server(*SIM_FAST).url
    server = ppd_server("proxy", "--mode", "replication", "--replica", engine)
    bad_json = b"POST /v1/completions HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\n{nope"
    not_http = b"POST /v1/completions HTTP/1.1\r\nHost: p\r\nContent-Length: abc\r\n\r\n"  # aiohttp's parser
    started_s = time.monotonic()
    for number in range(100):
        sock = connect(server.url)
        sock.sendall(not_http if number % 2 else bad_json)
        sock.recv(4096)
        sock.close()
    elapsed_s = time.monotonic() - started_s
    time.sleep(0.3)
    log = [line for line in server.log if "listening on" not in line]
    assert not any("Traceback" in line or line.startswith(" ") for line in log), log
    assert any("rejected 400 POST /v1/completions" in line and "not valid JSON" in line for line in log)
    assert any("Error handling request" in line and "Content-Length" in line for line in log)
    assert 20 <= len(log) <= 20 + 10 * elapsed_s + 1 < 100, (len(log), elapsed_s)  # burst 20, 10/s


def test_protect_status_and_no_upstream_header(ppd_server) -> None:
    engine = ppd_server(*SIM_FAST).url
    proxy = ppd_server("proxy", "--mode", "replication", "--replica", engine, "--admin-token", TOKEN,
                       "--protect-status", "--no-upstream-header").url  # fmt: skip
    for path in ("/status", "/metrics"):
        assert get(proxy, path).status == 401
        assert get(proxy, path, {"Authorization": f"Bearer {TOKEN}"}).status == 200
    for path in ("/health", "/version", "/mode", "/openapi.json"):
        assert get(proxy, path).status == 200  # what stays public
    body = json.dumps({"prompt": "w1 w2", "max_tokens": 2}).encode()
    reply = http_call(proxy + "/v1/completions", body, {"Content-Type": "application/json"})
    assert reply.status == 200 and "x-ppd-route" in reply.headers
    assert not any(name.lower() == "x-ppd-upstream" for name in reply.headers)
    assert engine not in json.dumps(reply.headers)


def connect_from(url: str, source_host: str) -> socket.socket:
    """A connection from another loopback address (127.0.0.0/8): another client, as the proxy sees it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10, source_address=(source_host, 0))


def test_one_client_over_its_cap_is_refused_429_and_others_are_still_served(ppd_server) -> None:
    engine = ppd_server(*SIM_FAST).url
    proxy = ppd_server("proxy", "--mode", "replication", "--replica", engine, "--max-connections", "20",
                       "--max-connections-per-client", "3").url  # fmt: skip
    held = [connect_from(proxy, "127.0.0.2") for _ in range(3)]
    time.sleep(0.2)
    over = connect_from(proxy, "127.0.0.2")
    answer = over.recv(4096)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 429") and b"Retry-After: 1" in head
    error = json.loads(body)["error"]
    assert error["code"] == 429 and "per client" in error["message"]
    assert closed_within(over, 5.0) is not None
    # another client is served meanwhile, and so is the capped one on the connections it holds
    other = connect_from(proxy, "127.0.0.3")
    other.sendall(b"GET /health HTTP/1.1\r\nHost: p\r\n\r\n")
    assert other.recv(4096).startswith(b"HTTP/1.1 200")
    held[0].sendall(b"GET /health HTTP/1.1\r\nHost: p\r\n\r\n")
    assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
    # one closed: the client may open one again
    held.pop().close()
    time.sleep(0.2)
    again = connect_from(proxy, "127.0.0.2")
    again.sendall(b"GET /health HTTP/1.1\r\nHost: p\r\n\r\n")
    assert again.recv(4096).startswith(b"HTTP/1.1 200")
    for sock in [*held, over, other, again]:
        sock.close()
    time.sleep(0.2)
    status = get(proxy, "/status").json()
    assert status["connections"]["num_refused_per_client"] == 1 and status["connections"]["num_refused"] == 0
    assert status["options"]["max_connections_per_client"] == 3
