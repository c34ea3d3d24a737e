"""A client that disconnects before its first token: the sim aborts the request at once, as vLLM's API
server does, instead of prefilling it to the end. One real `ppd sim` whose prefill of a 2000-token
prompt lasts ~43 s (16-token budget per step: 125 steps, time-scale 20), so an abort seen within
15 s of the disconnect cannot be the request finishing on its own."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from helpers import Server

PROMPT_WORDS = 2000
ABORT_DEADLINE_S = 15.0  # the prefill would need ~43 s more


def metrics(url: str) -> dict[str, float]:
    """/metrics as {name: value} (the sim labels each series once, except request_success_total)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^([\w:]+)\{[^}]*\} (\S+)$", text, re.MULTILINE)}


def wait_until(url: str, condition: Callable[[dict[str, float]], bool], timeout_s: float) -> dict[str, float]:
    """Poll /metrics until condition holds; returns the last page (whether or not it held)."""
    deadline_s = time.monotonic() + timeout_s
    page = metrics(url)
    while not condition(page) and time.monotonic() < deadline_s:
        time.sleep(0.05)
        page = metrics(url)
    return page


def open_request(url: str, body: dict[str, object]) -> socket.socket:
    """Send a completions request over a raw socket, so the test decides when the connection ends."""
    parts = urlsplit(url)
    raw = json.dumps(body).encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    )
    sock.sendall(head.encode() + raw)
    return sock


def prefilling(page: dict[str, float]) -> bool:
    return page["vllm:num_requests_running"] == 1 and page["vllm:kv_cache_usage_perc"] > 0


def aborted(count: int) -> Callable[[dict[str, float]], bool]:
    def check(page: dict[str, float]) -> bool:
        return (
            page["ppd_sim:aborted_requests_total"] == count
            and page["vllm:num_requests_running"] == 0
            and page["vllm:num_requests_waiting"] == 0
            and page["vllm:kv_cache_usage_perc"] == 0
        )

    return check


def test_disconnect_before_first_token_aborts_streamed_and_whole_requests(
    ppd_server: Callable[..., Server],
) -> None:
    url = ppd_server("sim", "--time-scale", "20", "--max-num-batched-tokens", "16").url
    prompt = " ".join(f"w{i + 1}" for i in range(PROMPT_WORDS))
    for number, stream in enumerate([True, False], start=1):
        sock = open_request(url, {"prompt": prompt, "max_tokens": 4, "stream": stream})
        try:
            if stream:  # a stream's headers go out once the request is in the engine
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            assert prefilling(wait_until(url, prefilling, 10.0)), f"request {number} never started"
        finally:
            sock.close()
        closed_s = time.monotonic()
        page = wait_until(url, aborted(number), ABORT_DEADLINE_S)
        assert aborted(number)(page), (time.monotonic() - closed_s, page)
        # No first token: nothing generated, no prompt counted, nothing finished (vLLM counts an
        # aborted request in neither request_success_total nor prompt_tokens_total).
        assert page["vllm:generation_tokens_total"] == page["vllm:prompt_tokens_total"] == 0
        assert page["vllm:request_success_total"] == 0
    # The engine serves on: a 2-token prompt waits only for the step in flight.
    request = urllib.request.Request(
        f"{url}/v1/completions",
        json.dumps({"prompt": "w1 w2", "max_tokens": 1}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["usage"]["completion_tokens"] == 1
    page = metrics(url)
    assert page["vllm:request_success_total"] == 1 and page["ppd_sim:aborted_requests_total"] == 2
