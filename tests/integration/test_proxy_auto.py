"""`ppd proxy --mode auto` over real HTTP in front of two `ppd sim` engines (1P1D, both replicas)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

SIM = ("sim", "--time-scale", "0.05")


def call(base: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=headers or {},
                                     method="GET" if body is None else "POST")  # fmt: skip
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def turn(proxy: str, prompt: str, session: str) -> tuple[dict, str]:
    body = {"model": "llama", "prompt": prompt, "max_tokens": 6, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    status, headers, raw = call(proxy, "/v1/completions", body, {"X-Session-ID": session})
    assert status == 200
    events = [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]
    return headers, "".join(c["text"] for e in events for c in e.get("choices", []))


def words(start: int, count: int) -> str:
    return " ".join(f"w{i}" for i in range(start, start + count))


def test_auto_serves_conversations_and_reports_every_decision(ppd_server) -> None:
    prefill, decode = ppd_server(*SIM).url, ppd_server(*SIM).url
    proxy = ppd_server("proxy", "--mode", "pd", "--prefill", prefill, "--decode", decode,
                       "--slo-ttft-ms", "5000", "--slo-tpot-ms", "500").url  # fmt: skip
    assert call(proxy, "/mode/auto", {})[0] == 200

    homes = {}
    for session in ("a", "b", "c", "d"):
        headers, answer = turn(proxy, words(0, 64), session)
        assert (headers["x-ppd-route"], headers["x-ppd-decision"]) == ("replica", "auto-replica")
        homes[session] = (headers["x-ppd-upstream"], answer)
    assert {upstream for upstream, _ in homes.values()} == {prefill, decode}  # an idle pool is spread

    for session, (upstream, answer) in homes.items():
        headers, _ = turn(proxy, words(0, 64) + answer + " " + words(500, 32), session)
        assert headers["x-ppd-turn"] == "2"
        assert (headers["x-ppd-route"], headers["x-ppd-decision"]) == ("ppd-direct", "auto-direct")
        assert headers["x-ppd-upstream"] == upstream  # the holder's prefix cache serves the history

    metrics = call(proxy, "/metrics")[2].decode()
    assert 'ppd_proxy_auto_decisions_total{decision="auto-replica"} 4' in metrics
    assert 'ppd_proxy_auto_decisions_total{decision="auto-direct"} 4' in metrics
    status = json.loads(call(proxy, "/status")[2])
    assert status["mode"] == "auto"
    assert status["options"]["slo_ttft_ms"] == 5000.0
    assert status["auto"]["decisions"] == {"auto-replica": 4, "auto-direct": 4}
    learnt = status["auto"]["estimates"]
    assert learnt["observations"]["prefill"] == 8 and learnt["observations"]["outputs"] == 8
    assert learnt["mean_output_tokens"] < 128.0  # moving from the prior (128) toward the 6 observed
    assert all(upstream["running_decodes"] == 0 for upstream in status["upstreams"])
