"""`ppd sim` against input that broke it: JSON nested 5,000 deep and compressed bodies (500 text/plain),
a 50 MB prompt tokenized on the event loop (30 s without a step), and P's KV held for the whole
lease when D refused or abandoned the request that was to pull it."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import time
import urllib.request
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp

from helpers import Reply, Server, http_call

REMOTE_DECODE = {"do_remote_decode": True, "do_remote_prefill": False, "remote_engine_id": None,
                 "remote_block_ids": None, "remote_host": None, "remote_port": None}  # fmt: skip
JSON = {"Content-Type": "application/json"}


def post(url: str, data: bytes, headers: dict[str, str] | None = None) -> Reply:
    return http_call(url + "/v1/completions", data, {**JSON, **(headers or {})})


def words(n: int, offset: int = 0) -> str:
    return " ".join(f"w{i + offset + 1}" for i in range(n))


def num_leases(url: str) -> int:
    with urllib.request.urlopen(url + "/ppd/stats", timeout=10) as response:
        return int(json.load(response)["num_leases"])


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_deep_and_compressed_bodies_are_400_json(ppd_server: Callable[..., Server]) -> None:
    url = ppd_server("sim", "--time-scale", "0.05").url
    body = json.dumps({"prompt": "w1 w2", "max_tokens": 2}).encode()
    cases = [
        (b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}),
        (gzip.compress(body), {"Content-Encoding": "gzip"}),  # read as sent, as vLLM does: not JSON
        (zlib.compress(body), {"Content-Encoding": "deflate"}),
        (b"\x1f\x8b not gzip", {"Content-Encoding": "gzip"}),
        (b"x\x9c not deflate", {"Content-Encoding": "deflate"}),
    ]
    for data, headers in cases:
        reply = post(url, data, headers)
        assert reply.status == 400 and reply.headers["Content-Type"].startswith("application/json"), reply
        assert reply.json()["error"]["code"] == 400
    assert post(url, body).status == 200  # still serving


def test_a_huge_prompt_is_tokenized_off_the_event_loop(ppd_server: Callable[..., Server]) -> None:
    url = ppd_server("sim", "--time-scale", "0.05").url
    huge = json.dumps({"prompt": words(800_000), "max_tokens": 2}).encode()  # 6.4 MB, over the context

    async def probe() -> tuple[int, float]:
        async with aiohttp.ClientSession() as session:
            big = asyncio.create_task(
                session.post(url + "/v1/completions", data=io.BytesIO(huge), headers=JSON)
            )
            await asyncio.sleep(0.3)  # sent and being tokenized
            worst_s = 0.0
            while not big.done():
                started_s = time.perf_counter()
                async with session.get(url + "/health") as health:
                    assert health.status == 200
                worst_s = max(worst_s, time.perf_counter() - started_s)
                await asyncio.sleep(0.05)
            answer = await big
            return answer.status, worst_s

    status, worst_health_s = asyncio.run(probe())
    assert status == 400  # too long for the context, answered after tokenizing
    assert worst_health_s < 1.0  # on the loop, tokenizing 6.4 MB held it for seconds


def test_p_frees_its_kv_when_d_refuses_or_abandons_the_pull(ppd_server: Callable[..., Server]) -> None:
    prefill = ppd_server("sim", "--time-scale", "0.1", "--engine-id", "P", "--kv-lease-s", "600").url
    decode = ppd_server("sim", "--time-scale", "0.1", "--engine-id", "D").url
    prompt = words(100)

    def prefilled() -> dict[str, Any]:
        body = {"prompt": prompt, "max_tokens": 1, "kv_transfer_params": REMOTE_DECODE}
        reply = post(prefill, json.dumps(body).encode())
        assert reply.status == 200
        return dict(reply.json()["kv_transfer_params"])

    # refused: D's prompt does not match the blocks P holds
    params = prefilled()
    assert num_leases(prefill) == 1
    refused = post(
        decode, json.dumps({"prompt": words(300), "max_tokens": 1, "kv_transfer_params": params}).encode()
    )
    assert refused.status == 400 and "remote_block_ids" in refused.json()["error"]["message"]
    assert wait_until(lambda: num_leases(prefill) == 0)

    # abandoned: the client goes away before D pulled (D's API overhead, at --time-scale 2000, is long)
    slow_decode = ppd_server("sim", "--time-scale", "2000", "--engine-id", "D2").url
    params = prefilled()
    body = {"prompt": prompt, "max_tokens": 1, "kv_transfer_params": params}

    async def send_and_leave() -> None:
        async with aiohttp.ClientSession() as session:
            with_timeout = aiohttp.ClientTimeout(total=0.5)
            with contextlib.suppress(TimeoutError):
                await session.post(slow_decode + "/v1/completions", json=body, timeout=with_timeout)

    asyncio.run(send_and_leave())
    assert wait_until(lambda: num_leases(prefill) == 0)
    assert post(decode, json.dumps({"prompt": prompt, "max_tokens": 1}).encode()).status == 200
