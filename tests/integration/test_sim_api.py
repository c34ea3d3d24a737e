"""The sim's OpenAI API as vLLM serves it: shapes, usage with cached tokens, errors, and that the
engine keeps serving after bad input. One real `ppd sim` process per test, time-scale 0.05."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from helpers import Server

TIME_SCALE = "0.05"


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, raw, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def post_json(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    status, raw, response_headers = post(url, body, headers)
    return status, json.loads(raw), response_headers


def sse_payloads(raw: bytes) -> list[Any]:
    lines = [line[6:] for line in raw.split(b"\n\n") if line.startswith(b"data: ")]
    assert lines[-1] == b"[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def words(n: int, offset: int = 0) -> str:
    return " ".join(f"w{i + offset + 1}" for i in range(n))


def test_completions_usage_cached_tokens_and_streaming(ppd_server: Callable[..., Server]) -> None:
    url = ppd_server("sim", "--time-scale", TIME_SCALE).url
    prompt = words(40)
    status, first, headers = post_json(
        f"{url}/v1/completions",
        {"model": "llama", "prompt": prompt, "max_tokens": 5},
        {"X-Request-Id": "abc"},
    )
    assert status == 200 and headers["x-request-id"] == "abc"
    assert first["id"] == "cmpl-abc" and first["object"] == "text_completion"
    text = first["choices"][0]["text"]
    # vLLM's detokenizer puts a space before every word, the first included: " w12 w34 ..."
    assert text.startswith(" ") and len(text.split()) == 5 and all(w.startswith("w") for w in text.split())
    assert first["usage"] == {
        "prompt_tokens": 40,
        "total_tokens": 45,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0, "multimodal_tokens": None},
    }
    # Same prompt again, streamed: the prefix cache answers in whole 16-token blocks.
    status, raw, _ = post(
        f"{url}/v1/completions",
        {"prompt": prompt, "max_tokens": 5, "stream": True, "stream_options": {"include_usage": True}},
    )
    chunks = sse_payloads(raw)
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"]]
    assert "".join(texts) == text  # deterministic answer; deltas " w12", " w34", ...
    assert texts[0] == " " + text.split()[0] and texts[1].startswith(" w")
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 32
    # A follow-up turn (prompt + answer + new words) hits the answer's full blocks too.
    turn2 = f"{prompt}{text} {words(20, 500)}"
    _, second, _ = post_json(f"{url}/v1/completions", {"prompt": turn2, "max_tokens": 2})
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == 32  # 44 computed tokens -> 2 blocks
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] % 16 == 0


def test_chat_models_tokenize_metrics(ppd_server: Callable[..., Server]) -> None:
    url = ppd_server("sim", "--time-scale", TIME_SCALE, "--served-model-name", "m").url
    messages = [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": [{"type": "text", "text": "w5 w6"}]},
    ]
    status, answer, _ = post_json(
        f"{url}/v1/chat/completions", {"model": "m", "messages": messages, "max_completion_tokens": 3}
    )
    assert status == 200 and answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["usage"]["prompt_tokens"] == 7  # "user hello there assistant w5 w6 assistant"
    assert len(answer["choices"][0]["message"]["content"].split()) == 3
    status, raw, _ = post(
        f"{url}/v1/chat/completions", {"messages": messages, "max_tokens": 2, "stream": True}
    )
    chunks = sse_payloads(raw)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:]]
    assert len(contents) == 2 and contents[0].startswith(" w") and contents[1].startswith(" w")
    _, tokens, _ = post_json(f"{url}/tokenize", {"prompt": "w1 w2 hello"})
    assert tokens["count"] == 3 and tokens["tokens"][:2] == [1, 2]
    with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as response:
        assert json.load(response)["data"][0]["id"] == "m"
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'vllm:generation_tokens_total{model_name="m",engine="0"} 5.0' in metrics
    assert "ppd_sim:max_step_drift_ms" in metrics


def test_bad_inputs_get_openai_errors_and_the_engine_keeps_serving(ppd_server: Callable[..., Server]) -> None:
    url = ppd_server("sim", "--time-scale", TIME_SCALE, "--max-model-len", "64").url
    cases: list[tuple[Any, int]] = [
        (b"{not json", 400),
        ([1, 2], 400),
        ({"max_tokens": 3}, 400),
        ({"prompt": "", "max_tokens": 3}, 400),
        ({"prompt": "w1", "max_tokens": 0}, 400),
        ({"prompt": "w1", "max_tokens": "3"}, 400),
        ({"prompt": words(65), "max_tokens": 1}, 400),
        ({"prompt": words(60), "max_tokens": 10}, 400),
        ({"prompt": "w1", "model": "gpt-4"}, 404),
        ({"prompt": "w1", "kv_transfer_params": {"do_remote_prefill": True}}, 400),
        ({"prompt": "w1", "kv_transfer_params": "yes"}, 400),
    ]
    for body, expected in cases:
        status, error, _ = post_json(f"{url}/v1/completions", body)
        assert status == expected, body
        assert (
            set(error["error"]) == {"message", "type", "param", "code"} and error["error"]["code"] == expected
        )
    _, too_long, _ = post_json(f"{url}/v1/completions", {"prompt": words(65), "max_tokens": 1})
    assert "maximum context length is 64 tokens" in too_long["error"]["message"]
    status, chat_error, _ = post_json(f"{url}/v1/chat/completions", {"messages": "hi"})
    assert status == 400 and "messages" in chat_error["error"]["message"]
    status, ok, _ = post_json(f"{url}/v1/completions", {"prompt": "w1 w2", "max_tokens": 2})
    assert status == 200 and ok["usage"]["completion_tokens"] == 2


def test_special_tokens_are_counted_but_left_out_of_the_text(ppd_server: Callable[..., Server]) -> None:
    # --special-token-rate mimics a dummy-weight model: some answer tokens are special tokens, which
    # vLLM's text leaves out, so the client's next turn re-tokenizes to a different history.
    url = ppd_server("sim", "--time-scale", TIME_SCALE, "--special-token-rate", "0.3").url
    prompt = words(32)
    _, whole, _ = post_json(f"{url}/v1/completions", {"prompt": prompt, "max_tokens": 64})
    text = whole["choices"][0]["text"]
    assert whole["usage"]["completion_tokens"] == 64
    assert 0 < len(text.split()) < 64 and all(w.startswith("w") for w in text.split())
    status, raw, _ = post(f"{url}/v1/completions", {"prompt": prompt, "max_tokens": 64, "stream": True})
    texts = [c["choices"][0]["text"] for c in sse_payloads(raw) if c["choices"]]
    assert status == 200 and len(texts) == 64  # one chunk per token, empty for a special one
    assert "".join(texts) == text and texts.count("") == 64 - len(text.split())
    # The history the client sends back matches the engine's tokens only up to the first special one.
    turn2 = f"{prompt}{text} {words(20, 500)}"
    _, second, _ = post_json(f"{url}/v1/completions", {"prompt": turn2, "max_tokens": 2})
    first_special = next(i for i, t in enumerate(texts) if t == "")
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == (32 + first_special) // 16 * 16
