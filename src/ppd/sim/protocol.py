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

from ppd import __version__
from ppd.openai_api import ApiError
from ppd.tokens import VOCAB_SIZE, encode, render_chat

COMPLETION = "completion"
CHAT = "chat"
# vLLM answers with "vllm-<version>-<hash>"; a sim says what it is (results tell a sim from vLLM).
SYSTEM_FINGERPRINT = f"ppd-sim-{__version__}"


class ValidationError(ApiError):
    """A 400 that vLLM raises while validating the body's schema (pydantic), before its own checks:
    its error type is the HTTP phrase "Bad Request" and its param the location, e.g. "body.max_tokens"
    (tests/fixtures/vllm-0.25.1/error_max_tokens_type.json). Checks vLLM makes after parsing the body
    (max_tokens < 1, context too long) are plain ApiErrors, typed "BadRequestError"."""

    error_type = "Bad Request"


def validation_message(kind: str, location: tuple[str | int, ...], message: str, value: Any) -> str:
    """A pydantic-style message in vLLM's words: what was wrong, where, and the value given."""
    detail = {"type": kind, "loc": ("body", *location), "msg": message, "input": value}
    return f"1 validation error:\n  {detail!r}"


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
        return encode(
            render_chat(
                _messages(body["messages"]), _optional(body, "add_generation_prompt", bool) is not False
            )
        )
    return _prompt_token_ids(body.get("prompt"))


def resolve_max_tokens(num_prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> int:
    """The output length to generate; ApiError(400, param "input_tokens") in vLLM's words when the
    context is too long (tests/fixtures/vllm-0.25.1/error_too_long.json)."""
    if max_tokens is None:
        if num_prompt_tokens >= max_model_len:
            raise ApiError(
                400,
                f"This model's maximum context length is {max_model_len} tokens. However, your request has "
                f"{num_prompt_tokens} input tokens. Please reduce the length of the input messages. "
                f"(parameter=input_tokens, value={num_prompt_tokens})",
                "input_tokens",
            )
        return max_model_len - num_prompt_tokens
    if num_prompt_tokens + max_tokens > max_model_len:
        # vLLM tokenizes at most max_model_len - max_tokens + 1 tokens of a prompt, so past that it
        # can only say "at least".
        cap = max_model_len - max_tokens + 1
        seen = min(num_prompt_tokens, cap) if cap > 0 else num_prompt_tokens
        at_least = "at least " if seen == cap else ""
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{max_tokens} output tokens and your prompt contains {at_least}{seen} input tokens, for a total "
            f"of {at_least}{seen + max_tokens} tokens. Please reduce the length of the input prompt or the "
            f"number of requested output tokens. (parameter=input_tokens, value={seen})",
            "input_tokens",
        )
    return max_tokens


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        message = validation_message("model_attributes_type", (), "Input should be a valid dictionary", body)
        raise ValidationError(400, message, "body")
    return body


_TYPE_WORDS = {
    int: "a valid integer",
    bool: "a valid boolean",
    str: "a valid string",
    dict: "a valid dictionary",
}


def _optional(body: dict[str, Any], name: str, kind: type, where: tuple[str, ...] = ()) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        location = (*where, name)
        words = _TYPE_WORDS.get(kind, f"of type {kind.__name__}")
        if isinstance(value, str) and kind in (int, bool):
            # pydantic's wording for a string it could not read as a number or boolean
            error, text = f"{kind.__name__}_parsing", f"Input should be {words}, unable to interpret input"
            if kind is int:
                text = f"Input should be {words}, unable to parse string as an integer"
        else:
            error, text = f"{kind.__name__}_type", f"Input should be {words}"
        message = validation_message(error, location, text, value)
        raise ValidationError(400, message, ".".join(("body", *location)))
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
        token_ids = []
    else:
        raise ValidationError(
            400,
            "'prompt' must be a string, a list of token ids, or a batch of one of "
            "those (batches of several prompts are not supported by ppd sim).",
            "body.prompt",
        )
    if not token_ids:
        message = validation_message(
            "value_error",
            (),
            "Value error, Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
            prompt,
        )
        raise ValidationError(400, message, "prompt")
    return token_ids


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValidationError(
            400, "'messages' must be a non-empty list of {role, content} objects.", "body.messages"
        )
    rendered = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ValidationError(
                400, f"messages[{index}] must be an object with a string 'role'.", f"body.messages.{index}"
            )
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
    raise ValidationError(
        400,
        f"messages[{index}].content must be a string or a list of text parts.",
        f"body.messages.{index}.content",
    )


def _max_tokens(body: dict[str, Any], names: tuple[str, ...], default_if_absent: int | None) -> int | None:
    for name in names:
        value = _optional(body, name, int)
        if value is not None:
            if value < 1:
                message = f"{name} must be at least 1, got {value}. (parameter={name}, value={value})"
                raise ApiError(400, message, name)
            return int(value)
    return default_if_absent


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        message = validation_message(
            "model_type", ("stream_options",), "Input should be a valid dictionary", options
        )
        raise ValidationError(400, message, "body.stream_options")
    return bool(_optional(options, "include_usage", bool, ("stream_options",)))


def usage(
    num_prompt_tokens: int, num_completion_tokens: int, num_cached_tokens: int, streamed: bool = False
) -> dict[str, Any]:
    """vLLM's usage object with prompt_tokens_details (--enable-prompt-tokens-details); a whole answer's
    details also carry "multimodal_tokens": null, a stream's usage chunk does not (as vLLM 0.25.1)."""
    details: dict[str, Any] = {"cached_tokens": max(0, num_cached_tokens)}
    if not streamed:
        details["multimodal_tokens"] = None
    return {
        "prompt_tokens": num_prompt_tokens,
        "total_tokens": num_prompt_tokens + num_completion_tokens,
        "completion_tokens": num_completion_tokens,
        "prompt_tokens_details": details,
    }


def answer_text(words: str) -> str:
    """The answer's text as vLLM detokenizes it: every generated word after a space (" w12 w34")."""
    return " " + words if words else words


def completion_body(
    response_id: str, model: str, text: str, usage_info: dict[str, Any], kv_transfer_params: Any
) -> dict[str, Any]:
    """A non-streaming /v1/completions answer."""
    return {
        "id": response_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": "length",
                "stop_reason": None,
                "token_ids": None,
                "prompt_logprobs": None,
                "prompt_token_ids": None,
                "routed_experts": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": usage_info,
        "kv_transfer_params": kv_transfer_params,
        "metrics": None,
    }


def chat_body(
    response_id: str, model: str, text: str, usage_info: dict[str, Any], kv_transfer_params: Any
) -> dict[str, Any]:
    """A non-streaming /v1/chat/completions answer."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "reasoning": None,
    }
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "length",
                "stop_reason": None,
                "token_ids": None,
                "routed_experts": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": usage_info,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "prompt_text": None,
        "kv_transfer_params": kv_transfer_params,
        "metrics": None,
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
            # Field order and nulls as vLLM 0.25.1 (tests/fixtures/vllm-0.25.1/completion_stream.json).
            self.prefix = f'data: {self.head_json},"choices":[{{"index":0,"text":"'.encode()
            tail = b'"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}\n\n'
            self.suffix = b'","logprobs":null,"finish_reason":null,' + tail
            self.last_suffix = b'","logprobs":null,"finish_reason":"length",' + tail
            self.opening = b""
        else:
            # As tests/fixtures/vllm-0.25.1/chat_stream.json: the role chunk carries the prompt fields.
            self.prefix = f'data: {self.head_json},"choices":[{{"index":0,"delta":{{"content":"'.encode()
            self.suffix = b'"},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
            self.last_suffix = (
                b'"},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}]}\n\n'
            )
            self.opening = (
                f'data: {self.head_json},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},'
                f'"logprobs":null,"finish_reason":null}}],"prompt_token_ids":null,"prompt_text":null}}\n\n'
            ).encode()

    def usage_chunk(self, usage_info: dict[str, Any]) -> bytes:
        """The final chunk with empty choices that stream_options.include_usage asks for."""
        tail = json.dumps(usage_info, separators=(",", ":"))
        fingerprint = json.dumps(SYSTEM_FINGERPRINT)
        chunk = f'data: {self.head_json},"choices":[],"usage":{tail},"system_fingerprint":{fingerprint}}}\n\n'
        return chunk.encode()
