"""Request parsing and response shapes of vLLM's OpenAI server, for the sim.

Bodies are validated field by field with the messages a client can act on; anything malformed is an
ApiError(400). Streaming chunks are byte templates built once per request, so emitting a token costs
one bytes concatenation, not a json.dumps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ppd.openai_api import ApiError
from ppd.tokens import VOCAB_SIZE, encode, render_chat

COMPLETION = "completion"
CHAT = "chat"


@dataclass(frozen=True)
class GenerateParams:
    """What the engine needs from a /v1/completions or /v1/chat/completions body."""

    kind: str  # COMPLETION | CHAT
    model: str | None
    prompt_token_ids: list[int]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    kv_transfer_params: Any


def parse_completion(body: Any) -> GenerateParams:
    """Validate a /v1/completions body."""
    body = _require_object(body)
    return GenerateParams(
        kind=COMPLETION,
        model=_optional(body, "model", str),
        prompt_token_ids=_prompt_token_ids(body.get("prompt")),
        max_tokens=_max_tokens(body, ("max_tokens",), default_if_absent=16),
        stream=bool(_optional(body, "stream", bool)),
        include_usage=_include_usage(body),
        kv_transfer_params=body.get("kv_transfer_params"),
    )


def parse_chat(body: Any) -> GenerateParams:
    """Validate a /v1/chat/completions body; messages are rendered by the fixed template."""
    body = _require_object(body)
    return GenerateParams(
        kind=CHAT,
        model=_optional(body, "model", str),
        prompt_token_ids=encode(render_chat(_messages(body.get("messages")))),
        max_tokens=_max_tokens(body, ("max_completion_tokens", "max_tokens"), default_if_absent=None),
        stream=bool(_optional(body, "stream", bool)),
        include_usage=_include_usage(body),
        kv_transfer_params=body.get("kv_transfer_params"),
    )


def parse_tokenize(body: Any) -> list[int]:
    """Token ids of a /tokenize body: {"prompt": str} or {"messages": [...]}."""
    body = _require_object(body)
    if "messages" in body:
        return encode(render_chat(_messages(body["messages"]), _optional(body, "add_generation_prompt", bool)
                                  is not False))
    return _prompt_token_ids(body.get("prompt"))


def resolve_max_tokens(num_prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> int:
    """The output length to generate; ApiError(400) in vLLM's words when the context is too long."""
    if num_prompt_tokens > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{num_prompt_tokens} input tokens. Please reduce the length of the input messages.",
        )
    room = max_model_len - num_prompt_tokens
    if max_tokens is None:
        if room < 1:
            raise ApiError(400, f"The prompt ({num_prompt_tokens} tokens) leaves no room to generate "
                                f"within max_model_len {max_model_len}.")
        return room
    if max_tokens > room:
        raise ApiError(
            400,
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
            f"context length is {max_model_len} tokens and your request has {num_prompt_tokens} input "
            f"tokens ({max_tokens} > {max_model_len} - {num_prompt_tokens}).",
            "max_tokens",
        )
    return max_tokens


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def _optional(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ApiError(400, f"'{name}' must be of type {kind.__name__}, got {type(value).__name__}.", name)
    return value


def _prompt_token_ids(prompt: Any) -> list[int]:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        token_ids = encode(prompt)
    elif isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        token_ids = list(prompt)
        if any(not 0 <= t < VOCAB_SIZE for t in token_ids):
            raise ApiError(400, f"Token ids in 'prompt' must be in [0, {VOCAB_SIZE}).", "prompt")
    elif prompt is None:
        raise ApiError(400, "'prompt' is required.", "prompt")
    else:
        raise ApiError(400, "'prompt' must be a string, a list of token ids, or a batch of one of those "
                            "(batches of several prompts are not supported by ppd sim).", "prompt")
    if not token_ids:
        raise ApiError(400, "The prompt is empty: it must contain at least one token.", "prompt")
    return token_ids


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects.", "messages")
    rendered = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, f"messages[{index}] must be an object with a string 'role'.", "messages")
        rendered.append({"role": message["role"], "content": _content_text(message.get("content"), index)})
    return rendered


def _content_text(content: Any, index: int) -> str:
    """A message's text: a string, or the text parts of a content-part list joined by newlines."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) == len(content) and all(isinstance(text, str) for text in texts):
            return "\n".join(texts)  # type: ignore[arg-type]
    raise ApiError(400, f"messages[{index}].content must be a string or a list of text parts.", "messages")


def _max_tokens(body: dict[str, Any], names: tuple[str, ...], default_if_absent: int | None) -> int | None:
    for name in names:
        value = _optional(body, name, int)
        if value is not None:
            if value < 1:
                raise ApiError(400, f"{name} must be at least 1, got {value}.", name)
            return int(value)
    return default_if_absent


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object.", "stream_options")
    return bool(_optional(options, "include_usage", bool))


def usage(num_prompt_tokens: int, num_completion_tokens: int, num_cached_tokens: int) -> dict[str, Any]:
    """vLLM's usage object with prompt_tokens_details (--enable-prompt-tokens-details)."""
    return {
        "prompt_tokens": num_prompt_tokens,
        "total_tokens": num_prompt_tokens + num_completion_tokens,
        "completion_tokens": num_completion_tokens,
        "prompt_tokens_details": {"cached_tokens": max(0, num_cached_tokens)},
    }


def completion_body(
    response_id: str, model: str, text: str, usage_info: dict[str, Any], kv_transfer_params: Any
) -> dict[str, Any]:
    """A non-streaming /v1/completions answer."""
    return {
        "id": response_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length",
                     "stop_reason": None, "prompt_logprobs": None}],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_info,
        "kv_transfer_params": kv_transfer_params,
    }


def chat_body(
    response_id: str, model: str, text: str, usage_info: dict[str, Any], kv_transfer_params: Any
) -> dict[str, Any]:
    """A non-streaming /v1/chat/completions answer."""
    message: dict[str, Any] = {
        "role": "assistant", "content": text, "refusal": None, "annotations": None, "audio": None,
        "function_call": None, "tool_calls": [], "reasoning_content": None,
    }
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "length",
                     "stop_reason": None}],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_info,
        "prompt_logprobs": None,
        "kv_transfer_params": kv_transfer_params,
    }


class StreamTemplates:
    """Pre-encoded SSE chunks of one streamed answer; a token's chunk is prefix + text + suffix."""

    def __init__(self, kind: str, response_id: str, model: str) -> None:
        created = int(time.time())
        self.kind = kind
        obj = "text_completion" if kind == COMPLETION else "chat.completion.chunk"
        head = {"id": response_id, "object": obj, "created": created, "model": model}
        self.head_json = json.dumps(head, separators=(",", ":"))[:-1]  # without the closing brace
        if kind == COMPLETION:
            self.prefix = f'data: {self.head_json},"choices":[{{"index":0,"text":"'.encode()
            self.suffix = b'","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}\n\n'
            self.last_suffix = (
                b'","logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":null}\n\n'
            )
            self.opening = b""
        else:
            self.prefix = f'data: {self.head_json},"choices":[{{"index":0,"delta":{{"content":"'.encode()
            self.suffix = b'"},"logprobs":null,"finish_reason":null}]}\n\n'
            self.last_suffix = b'"},"logprobs":null,"finish_reason":"length","stop_reason":null}]}\n\n'
            self.opening = (
                f'data: {self.head_json},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},'
                f'"logprobs":null,"finish_reason":null}}]}}\n\n'
            ).encode()

    def usage_chunk(self, usage_info: dict[str, Any]) -> bytes:
        """The final chunk with empty choices that stream_options.include_usage asks for."""
        tail = json.dumps(usage_info, separators=(",", ":"))
        return f'data: {self.head_json},"choices":[],"usage":{tail}}}\n\n'.encode()
