"""The NIXL P/D handshake between two real sims (the PD and PPD paths of the proxy)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from helpers import Server

REMOTE_DECODE = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
TIME_SCALE = 0.1
# Default profile: 17.06 ms handshake + bytes / 7.48 GB/s; the first pull of a pair adds 1,100 ms.
HANDSHAKE_MS, BANDWIDTH_GBPS, FIRST_CONNECT_MS = 17.06, 7.4825, 1100.0


def post_json(url: str, body: Any) -> tuple[int, Any, None]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response), None
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc), None


def words(n: int, offset: int = 0) -> str:
    return " ".join(f"w{i + offset + 1}" for i in range(n))


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)}{{[^}}]*}} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def prefill_on(p_url: str, prompt: str) -> dict[str, Any]:
    status, answer, _ = post_json(
        f"{p_url}/v1/completions",
        {"model": "llama", "prompt": prompt, "max_tokens": 1, "kv_transfer_params": REMOTE_DECODE},
    )
    assert status == 200, answer
    return answer


def decode_on(d_url: str, prompt: str, params: dict[str, Any] | None) -> tuple[int, dict[str, Any], float]:
    body: dict[str, Any] = {"model": "llama", "prompt": prompt, "max_tokens": 1}
    if params is not None:
        body["kv_transfer_params"] = params
    sent = time.perf_counter()
    status, answer, _ = post_json(f"{d_url}/v1/completions", body)
    return status, answer, (time.perf_counter() - sent) * 1e3


def pull_ms(num_tokens: int, first: bool = False) -> float:
    """The modeled pull of num_tokens (whole blocks), scaled."""
    transfer_ms = num_tokens * 131072 / (BANDWIDTH_GBPS * 1e9) * 1e3
    return (HANDSHAKE_MS + transfer_ms + (FIRST_CONNECT_MS if first else 0.0)) * TIME_SCALE


def test_p_to_d_then_turn2_direct_then_turn2_through_p(ppd_server: Callable[..., Server]) -> None:
    p_url = ppd_server("sim", "--time-scale", str(TIME_SCALE), "--engine-id", "P").url
    d_url = ppd_server("sim", "--time-scale", str(TIME_SCALE), "--engine-id", "D").url
    prompt = words(2000)
    answer = prefill_on(p_url, prompt)
    params = answer["kv_transfer_params"]
    assert params["do_remote_prefill"] is True and params["do_remote_decode"] is False
    assert (
        params["remote_engine_id"] == "P" and params["tp_size"] == 1 and params["remote_num_tokens"] == 2000
    )
    assert len(params["remote_block_ids"][0]) == 125 and params["remote_port"] == int(p_url.rsplit(":", 1)[1])
    assert answer["usage"]["completion_tokens"] == 1

    status, turn1, elapsed_ms = decode_on(d_url, prompt, params)
    assert status == 200
    assert turn1["usage"]["prompt_tokens_details"]["cached_tokens"] == 2000  # pulled blocks count as cached
    assert elapsed_ms >= pull_ms(2000, first=True)  # D's TTFT includes the modeled first pull
    assert metric(d_url, "ppd_sim:kv_pulled_blocks_total") == 125
    assert metric(p_url, "ppd_sim:kv_leases") == 0

    # PPD turn 2 straight to D: D's own prefix cache holds the history; no transfer.
    turn2 = f"{prompt} {turn1['choices'][0]['text']} {words(100, 3000)}"
    status, direct, _ = decode_on(d_url, turn2, None)
    assert status == 200 and direct["usage"]["prompt_tokens_details"]["cached_tokens"] == 2000
    assert metric(d_url, "ppd_sim:kv_pulls_total") == 1

    # PD turn 3 through P to the same D: D pulls only the blocks it lacks.
    turn3 = f"{turn2} {direct['choices'][0]['text']} {words(60, 5000)}"
    params3 = prefill_on(p_url, turn3)["kv_transfer_params"]
    num_blocks = len(params3["remote_block_ids"][0])
    status, third, _ = decode_on(d_url, turn3, params3)
    assert status == 200 and third["usage"]["prompt_tokens_details"]["cached_tokens"] == len(turn3.split())
    pulled = metric(d_url, "ppd_sim:kv_pulled_blocks_total") - 125
    num_local = 2101 // 16  # D computed turn 2's 2,101 prompt tokens: 131 whole blocks are cached
    assert pulled == num_blocks - num_local


def test_unknown_pulled_twice_or_expired_lease_is_an_error(ppd_server: Callable[..., Server]) -> None:
    p_url = ppd_server("sim", "--time-scale", str(TIME_SCALE), "--engine-id", "P", "--kv-lease-s", "0.3").url
    d_url = ppd_server("sim", "--time-scale", str(TIME_SCALE), "--engine-id", "D").url
    prompt = words(100)
    params = prefill_on(p_url, prompt)["kv_transfer_params"]
    assert decode_on(d_url, prompt, params)[0] == 200
    status, error, _ = decode_on(d_url, prompt, params)  # already pulled
    assert status == 400 and "holds no KV blocks" in error["error"]["message"]

    params = prefill_on(p_url, words(100, 7))["kv_transfer_params"]
    assert metric(p_url, "ppd_sim:kv_leases") == 1
    time.sleep(0.6)
    assert metric(p_url, "ppd_sim:kv_leases_expired_total") == 1
    status, error, _ = decode_on(d_url, words(100, 7), params)
    assert status == 400 and "lease expired" in error["error"]["message"]

    wrong_size = dict(prefill_on(p_url, prompt)["kv_transfer_params"])
    status, error, _ = decode_on(d_url, words(300), wrong_size)
    assert status == 400 and "remote_block_ids" in error["error"]["message"]
    unreachable = {**wrong_size, "remote_port": 1}
    status, error, _ = decode_on(d_url, prompt, unreachable)
    assert status == 503 and error["error"]["code"] == 503
    assert decode_on(d_url, prompt, None)[0] == 200  # still serving
    assert json.loads(json.dumps(error))["error"]["type"] == "ServiceUnavailableError"
