"""Record golden transcripts of an OpenAI-compatible server (real vLLM, or `ppd sim` for comparison).

Usage: python tools/record_transcripts.py --prefill URL --decode URL --out DIR

Sends a fixed set of requests — completions and chat, streamed and not, a repeated prompt (cached
tokens), one P->D NIXL exchange, and bad inputs — and writes one JSON file per exchange: the request,
the status, the content type and the raw body (SSE kept byte for byte). Tests compare the sim's
answers with these files field by field.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ppd.openai_api import PREFILL_KV_TRANSFER_PARAMS

TIMEOUT_S = 60.0


def words(start: int, count: int) -> str:
    """`count` distinct vocabulary words from w<start>."""
    return " ".join(f"w{start + i}" for i in range(count))


def exchange(
    base_url: str, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> dict[str, Any]:
    """One HTTP exchange, recorded whole."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base_url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    request.add_header("X-Request-Id", f"golden-{path.strip('/').replace('/', '-')}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status, headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, payload = exc.code, exc.headers, exc.read()
    text = payload.decode("utf-8", "replace")
    content_type = headers.get("Content-Type", "")
    parsed: Any = None
    if "json" in content_type:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
    return {
        "request": {"method": method, "path": path, "body": body, "raw": raw.decode() if raw else None},
        "status": status,
        "content_type": content_type,
        "json": parsed,
        "text": None if parsed is not None else text,
    }


def completion(prompt: str, max_tokens: int, stream: bool, **extra: Any) -> dict[str, Any]:
    """A completions body with the bench's conventions."""
    body = {
        "model": "llama",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    body.update(extra)
    return body


def record(prefill: str, decode: str) -> dict[str, dict[str, Any]]:
    """Every exchange, by name."""
    base = words(1000, 64)
    out: dict[str, dict[str, Any]] = {}
    out["models"] = exchange(prefill, "GET", "/v1/models")
    out["version"] = exchange(prefill, "GET", "/version")
    out["tokenize"] = exchange(prefill, "POST", "/tokenize", {"model": "llama", "prompt": words(5, 8)})
    out["completion"] = exchange(prefill, "POST", "/v1/completions", completion(base, 8, False))
    out["completion_cached"] = exchange(
        prefill, "POST", "/v1/completions", completion(base + " w7", 8, False)
    )
    out["completion_stream"] = exchange(
        prefill, "POST", "/v1/completions", completion(words(3000, 40), 8, True)
    )
    out["completion_token_ids"] = exchange(
        prefill,
        "POST",
        "/v1/completions",
        completion([11, 12, 13, 14], 4, False),  # type: ignore[arg-type]
    )
    chat = {
        "model": "llama",
        "messages": [{"role": "user", "content": words(4000, 20)}],
        "max_completion_tokens": 6,
        "ignore_eos": True,
    }
    out["chat"] = exchange(prefill, "POST", "/v1/chat/completions", {**chat, "stream": False})
    out["chat_stream"] = exchange(
        prefill,
        "POST",
        "/v1/chat/completions",
        {**chat, "stream": True, "stream_options": {"include_usage": True}},
    )
    pd_prompt = words(6000, 100)
    p_body = completion(pd_prompt, 1, False)
    p_body["kv_transfer_params"] = dict(PREFILL_KV_TRANSFER_PARAMS)
    out["pd_prefill"] = exchange(prefill, "POST", "/v1/completions", p_body)
    params = (out["pd_prefill"]["json"] or {}).get("kv_transfer_params")
    d_body = completion(pd_prompt, 8, True, kv_transfer_params=params)
    out["pd_decode"] = exchange(decode, "POST", "/v1/completions", d_body)
    out["pd_turn2_direct"] = exchange(
        decode, "POST", "/v1/completions", completion(pd_prompt + " " + words(7000, 40), 8, False)
    )
    out["error_bad_json"] = exchange(prefill, "POST", "/v1/completions", raw=b'{"model": "llama", "prompt": ')
    out["error_missing_prompt"] = exchange(
        prefill, "POST", "/v1/completions", {"model": "llama", "max_tokens": 4}
    )
    out["error_max_tokens_zero"] = exchange(prefill, "POST", "/v1/completions", completion("w1 w2", 0, False))
    out["error_max_tokens_type"] = exchange(
        prefill,
        "POST",
        "/v1/completions",
        completion("w1 w2", "many", False),  # type: ignore[arg-type]
    )
    out["error_unknown_model"] = exchange(
        prefill, "POST", "/v1/completions", {**completion("w1 w2", 4, False), "model": "nope"}
    )
    out["error_too_long"] = exchange(
        prefill, "POST", "/v1/completions", completion(words(0, 40000), 4, False)
    )
    out["error_not_found"] = exchange(prefill, "GET", "/v1/nothing")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", required=True)
    parser.add_argument("--decode", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in record(args.prefill.rstrip("/"), args.decode.rstrip("/")).items():
        (args.out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(name, data["status"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
