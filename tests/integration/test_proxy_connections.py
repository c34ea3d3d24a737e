"""The proxy counts the TCP connections it opens to engines: per upstream in /metrics, and per turn
in the decision log (a turn that finds an idle kept-alive connection in the pool opens none)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp

from helpers import http_call

SIM_REAL_TIME = ("sim", "--time-scale", "1")


async def stream_turns(proxy: str, sessions: list[str]) -> None:
    """One streamed completion per session id, all at once; each read to its end."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:

        async def turn(session_id: str) -> None:
            body = {"model": "llama", "prompt": "w1 w2 w3", "max_tokens": 40, "stream": True}
            async with client.post(
                proxy + "/v1/completions", json=body, headers={"X-Session-ID": session_id}
            ) as reply:
                assert reply.status == 200
                await reply.read()

        await asyncio.gather(*(turn(session_id) for session_id in sessions))


def test_turns_at_once_open_connections_and_a_later_turn_reuses_one(ppd_server, tmp_path: Path) -> None:
    sim = ppd_server(*SIM_REAL_TIME).url
    log_path = tmp_path / "decisions.jsonl"
    proxy = ppd_server("proxy", "--mode", "replication", "--replica", sim, "--decision-log", str(log_path),
                       "--health-interval-s", "30").url  # fmt: skip
    asyncio.run(stream_turns(proxy, ["a", "b", "c"]))  # three streams open at once: three connections
    asyncio.run(stream_turns(proxy, ["d"]))  # the pool has idle ones now
    deadline = time.monotonic() + 10.0  # a turn's line is written once the proxy has finished it
    while len(log_path.read_text().splitlines()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    opened = {line["conversation"]: line["connections_opened"] for line in lines}
    assert opened["s:d"] == 0
    # The health checker's connection may have been idle for one of the three; the others opened one.
    assert sum(opened[f"s:{s}"] for s in "abc") >= 2 and all(opened[f"s:{s}"] <= 1 for s in "abc")
    metrics = http_call(proxy + "/metrics").body.decode()
    [total] = re.findall(rf'ppd_proxy_upstream_connections_opened_total{{url="{sim}"}} (\d+)', metrics)
    assert int(total) >= sum(opened.values())  # and the health checks' own
