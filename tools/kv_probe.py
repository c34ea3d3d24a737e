"""Probe one P/D pair directly: what a PD turn 1 and a PD turn 2 move over NIXL, and how long it takes.

Usage: python tools/kv_probe.py --prefill URL --decode URL [--lengths 512,4096,8192] [--repeats 3]

For each prompt length: a PD turn 1 (P prefill with do_remote_decode, then D with P's
kv_transfer_params), a PD turn 2 to the same D (history + answer + 192 new words, through P again),
and the same turn 2 sent straight to D (PPD). Around every request it reads D's and P's /metrics and
reports the change of every NIXL/KV-transfer series, so the bytes and descriptors moved come from
the engine itself, not from our arithmetic. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from typing import Any

import aiohttp

from ppd.openai_api import PREFILL_KV_TRANSFER_PARAMS
from ppd.prometheus import Sample, series_diff, series_values

TIMEOUT = aiohttp.ClientTimeout(total=120)
NEW_WORDS_TURN2 = 192


def words(rng: random.Random, count: int) -> str:
    return " ".join(f"w{rng.randrange(128000)}" for _ in range(count))


def _is_transfer_series(sample: Sample) -> bool:
    lowered = sample.series.lower()
    return "nixl" in lowered or "kv_transfer" in lowered or "kv_connector" in lowered


async def transfer_series(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Every /metrics sample whose series (name or labels) mentions nixl or kv transfer, by its full
    series text."""
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    return series_values(text, _is_transfer_series)


async def stream_ttft(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], request_id: str
) -> dict[str, Any]:
    """Send a streaming completion; TTFT at the first content chunk, usage and answer text at the end."""
    sent = time.perf_counter()
    ttft_ms = None
    text_parts: list[str] = []
    usage = None
    async with session.post(
        url + "/v1/completions", json=body, headers={"X-Request-Id": request_id}
    ) as response:
        if response.status != 200:
            return {"status": response.status, "error": await response.text()}
        async for line in response.content:
            line = line.strip()
            if not line.startswith(b"data:") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                if choice.get("text"):
                    if ttft_ms is None:
                        ttft_ms = (time.perf_counter() - sent) * 1000
                    text_parts.append(choice["text"])
    return {
        "status": 200,
        "ttft_ms": ttft_ms,
        "e2e_ms": (time.perf_counter() - sent) * 1000,
        "usage": usage,
        "text": "".join(text_parts),
    }


async def pd_turn(session: aiohttp.ClientSession, prefill: str, decode: str, prompt: str) -> dict[str, Any]:
    """One P->D turn with the exact DESIGN.md protocol; times at P and at D, NIXL series diffs."""
    request_id = f"probe-{uuid.uuid4().hex}"
    p_body = {
        "model": "llama",
        "prompt": prompt,
        "max_tokens": 1,
        "stream": False,
        "ignore_eos": True,
        "kv_transfer_params": dict(PREFILL_KV_TRANSFER_PARAMS),
    }
    d_before = await transfer_series(session, decode)
    p_before = await transfer_series(session, prefill)
    sent = time.perf_counter()
    async with session.post(
        prefill + "/v1/completions", json=p_body, headers={"X-Request-Id": request_id}
    ) as r:
        p_answer = await r.json()
    prefill_ms = (time.perf_counter() - sent) * 1000
    params = p_answer.get("kv_transfer_params") or {}
    d_body = {
        "model": "llama",
        "prompt": prompt,
        "max_tokens": 16,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
        "kv_transfer_params": params,
    }
    decoded = await stream_ttft(session, decode, d_body, request_id)
    await asyncio.sleep(0.2)  # let the engines publish their transfer stats
    return {
        "prefill_ms": round(prefill_ms, 2),
        "decode_ttft_ms": decoded.get("ttft_ms"),
        "total_ttft_ms": round(prefill_ms + (decoded.get("ttft_ms") or 0), 2),
        "num_remote_blocks": sum(len(g) for g in params.get("remote_block_ids") or []),
        "usage": decoded.get("usage"),
        "text": decoded.get("text", ""),
        "decode_nixl_diff": series_diff(d_before, await transfer_series(session, decode)),
        "prefill_nixl_diff": series_diff(p_before, await transfer_series(session, prefill)),
    }


async def probe(prefill: str, decode: str, lengths: list[int], repeats: int, tag: str) -> None:
    rng = random.Random(12345)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for length in lengths:
            for repeat in range(repeats):
                prompt = words(rng, length)
                turn1 = await pd_turn(session, prefill, decode, prompt)
                prompt2 = prompt + " " + turn1.pop("text") + " " + words(rng, NEW_WORDS_TURN2)
                turn2 = await pd_turn(session, prefill, decode, prompt2)
                turn2.pop("text")
                prompt3 = prompt2 + " " + words(rng, NEW_WORDS_TURN2)
                direct = await stream_ttft(
                    session,
                    decode,
                    {
                        "model": "llama",
                        "prompt": prompt3,
                        "max_tokens": 16,
                        "stream": True,
                        "ignore_eos": True,
                        "stream_options": {"include_usage": True},
                    },
                    f"probe-{uuid.uuid4().hex}",
                )
                direct.pop("text", None)
                for name, result in (
                    ("pd_turn1", turn1),
                    ("pd_turn2_same_d", turn2),
                    ("ppd_turn3_direct", direct),
                ):
                    print(
                        json.dumps({"tag": tag, "length": length, "repeat": repeat, "what": name, **result}),
                        flush=True,
                    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", required=True)
    parser.add_argument("--decode", required=True)
    parser.add_argument("--lengths", default="512,4096,8192")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    asyncio.run(probe(args.prefill.rstrip("/"), args.decode.rstrip("/"), lengths, args.repeats, args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
