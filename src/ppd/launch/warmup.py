"""Warm every P/D pair with a few NIXL handshakes before anything is measured.

The first P→D transfer of a pair pays ~1 s of NIXL connection setup on real vLLM; a measurement
that starts cold would charge it to the first conversation. The handshake is exactly the one the
proxy makes (DESIGN.md): P with do_remote_decode and max_tokens 1, then D with P's kv_transfer_params.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from ppd.launch.readiness import LaunchError
from ppd.openai_api import PREFILL_KV_TRANSFER_PARAMS
from ppd.tokens import random_words

WARMUP_PROMPT_TOKENS = 64
_REQUEST_TIMEOUT_S = 120.0  # a cold vLLM may compile kernels on its first requests


@dataclass(frozen=True)
class PairWarmup:
    """The handshakes of one P/D pair, in order (the first one includes connection setup)."""

    prefill_url: str
    decode_url: str
    durations_ms: tuple[float, ...]


def prefill_body(model: str, prompt: str) -> dict[str, Any]:
    """Request to P: prefill only, and keep the KV blocks for a remote decode."""
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": 1,
        "stream": False,
        "kv_transfer_params": dict(PREFILL_KV_TRANSFER_PARAMS),
    }


def decode_body(model: str, prompt: str, kv_transfer_params: dict[str, Any]) -> dict[str, Any]:
    """Request to D: the same prompt plus P's kv_transfer_params, so D pulls the blocks."""
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": 2,
        "ignore_eos": True,
        "stream": False,
        "kv_transfer_params": kv_transfer_params,
    }


def warm_pairs(prefill_urls: list[str], decode_urls: list[str], num_handshakes: int) -> list[PairWarmup]:
    """Run num_handshakes P→D handshakes on every (P, D) pair, one pair after another."""
    return asyncio.run(_warm_pairs(prefill_urls, decode_urls, num_handshakes))


async def _warm_pairs(
    prefill_urls: list[str], decode_urls: list[str], num_handshakes: int
) -> list[PairWarmup]:
    results = []
    timeout = aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        model = await served_model(session, prefill_urls[0])
        for pair_index, (prefill_url, decode_url) in enumerate(_pairs(prefill_urls, decode_urls)):
            rng = random.Random(f"ppd-warmup-{pair_index}")
            durations = []
            for _ in range(num_handshakes):
                prompt = random_words(WARMUP_PROMPT_TOKENS, rng)
                durations.append(await handshake(session, prefill_url, decode_url, model, prompt))
            results.append(PairWarmup(prefill_url, decode_url, tuple(durations)))
    return results


def _pairs(prefill_urls: list[str], decode_urls: list[str]) -> list[tuple[str, str]]:
    return [(p, d) for p in prefill_urls for d in decode_urls if p != d]


async def served_model(session: aiohttp.ClientSession, url: str) -> str:
    """The first model id an engine serves (GET /v1/models)."""
    payload = await _request(session, "GET", f"{url}/v1/models", None, {})
    try:
        return str(payload["data"][0]["id"])
    except (KeyError, IndexError, TypeError) as exc:
        raise LaunchError(f"{url}/v1/models lists no model: {payload!r:.300}") from exc


async def handshake(
    session: aiohttp.ClientSession, prefill_url: str, decode_url: str, model: str, prompt: str
) -> float:
    """One P→D request pair; returns its wall time in ms."""
    headers = {"X-Request-Id": f"ppd-warmup-{uuid.uuid4().hex}"}
    start = time.perf_counter()
    answer = await _request(
        session, "POST", f"{prefill_url}/v1/completions", prefill_body(model, prompt), headers
    )
    params = answer.get("kv_transfer_params")
    if not isinstance(params, dict):
        raise LaunchError(
            f"{prefill_url} answered a prefill without kv_transfer_params: is it started with NixlConnector?"
        )
    await _request(
        session, "POST", f"{decode_url}/v1/completions", decode_body(model, prompt, params), headers
    )
    return (time.perf_counter() - start) * 1000.0


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> dict[str, Any]:
    try:
        async with session.request(method, url, json=body, headers=headers) as response:
            text = await response.text()
            if response.status != 200:
                raise LaunchError(f"warm-up: {method} {url} answered {response.status}: {text[:300]}")
            payload = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise LaunchError(f"warm-up: {method} {url} failed: {exc!r}") from exc
    if not isinstance(payload, dict):
        raise LaunchError(f"warm-up: {method} {url} answered non-object JSON: {text[:300]}")
    return payload
