"""Reading a client's request (its body was read by body.py): the checks the proxy itself needs, and identity.

The proxy checks only what it relies on (the prompt or messages, `stream`, the token limits it
rewrites for P, the session id); everything else is the engine's to judge, and its 4xx answer is
passed through to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ppd.openai_api import ApiError
from ppd.proxy.longjson import JsonBody, plain_body
from ppd.router.conversations import SESSION_BODY_FIELD, SESSION_HEADER, Identity, session_id_of


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One parsed client request, ready to route."""

    is_chat: bool
    body: dict[str, Any]  # without conversation_id
    raw_body: bytes  # what to forward when no hop rewrites the body
    parsed: JsonBody  # body, and how to encode one made from it (P's) without re-encoding long strings
    identity: Identity
    stream: bool
    num_prompt_tokens: int  # estimate: whitespace-separated words (the sim's and GPU kit's tokens)
    capture_answer: bool  # whether the answer text is needed to recognise the next turn


# Fields only the proxy may set. `kv_transfer_params` tells an engine where to pull KV from (any
# host and port: against vLLM a NIXL side-channel connection into the cluster network) and whether
# to hold its blocks for a remote decode; a client's is removed on every route, and the proxy sets
# its own on the two-hop route only (relay.prefill_body, relay.decode_body).
PROXY_OWNED_FIELDS = (SESSION_BODY_FIELD, "kv_transfer_params")

# Longer session ids are refused: each is kept as a conversation key, up to --max-conversations.
MAX_SESSION_ID_CHARS = 512


def parse_turn_request(
    headers: Mapping[str, str], parsed: JsonBody | dict[str, Any], raw_body: bytes, is_chat: bool
) -> TurnRequest:
    """Check the fields the proxy relies on and work out the request's identity."""
    if isinstance(parsed, dict):
        parsed = plain_body(parsed)
    body = parsed.value
    _check_common_fields(body)
    if len(headers.get(SESSION_HEADER, "")) > MAX_SESSION_ID_CHARS:
        raise ApiError(400, f"{SESSION_HEADER} is longer than {MAX_SESSION_ID_CHARS} characters")
    session_id = session_id_of(headers, body)
    if any(name in body for name in PROXY_OWNED_FIELDS):
        parsed = parsed.without(PROXY_OWNED_FIELDS)
        body = parsed.value
        raw_body = parsed.encode(dict)
    single_answer = body.get("n") in (None, 1)
    if is_chat:
        messages = _checked_messages(body)
        identity = Identity(session_id, chat_messages=None if session_id else messages)
        num_prompt_tokens = sum(_estimate_tokens(message.get("content")) + 1 for message in messages)
    else:
        prompt = _checked_prompt(body)
        recognisable = isinstance(prompt, str) and session_id is None
        prompt_bytes = (
            prompt.encode("utf-8", "surrogatepass") if isinstance(prompt, str) and recognisable else None
        )
        identity = Identity(session_id, prompt_bytes=prompt_bytes)
        num_prompt_tokens = _estimate_tokens(prompt)
    return TurnRequest(
        is_chat=is_chat,
        body=body,
        raw_body=raw_body,
        parsed=parsed,
        identity=identity,
        stream=body.get("stream") is True,
        num_prompt_tokens=num_prompt_tokens,
        capture_answer=session_id is None and single_answer,
    )


def _check_common_fields(body: Mapping[str, Any]) -> None:
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "'stream' must be true or false", "stream")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ApiError(400, f"'{name}' must be a positive integer", name)
    conversation_id = body.get(SESSION_BODY_FIELD)
    if conversation_id is not None and (not isinstance(conversation_id, str) or not conversation_id):
        raise ApiError(400, f"'{SESSION_BODY_FIELD}' must be a non-empty string", SESSION_BODY_FIELD)
    if isinstance(conversation_id, str) and len(conversation_id) > MAX_SESSION_ID_CHARS:
        raise ApiError(400, f"'{SESSION_BODY_FIELD}' is longer than {MAX_SESSION_ID_CHARS} characters")


def _checked_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of messages", "messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, "each message must be an object with a string 'role'", "messages")
    return messages


def _checked_prompt(body: Mapping[str, Any]) -> str | list[Any]:
    prompt = body.get("prompt")
    if isinstance(prompt, (str, list)) and prompt:
        return prompt
    raise ApiError(400, "'prompt' must be a non-empty string or list", "prompt")


def _estimate_tokens(content: Any) -> int:
    # Counting separators is a C-speed scan; splitting a long prompt into words would cost ~ms.
    if isinstance(content, str):
        return content.count(" ") + content.count("\n") + 1 if content else 0
    if isinstance(content, list):
        if content and isinstance(content[0], int):
            return len(content)  # token ids
        return sum(_estimate_tokens(part) for part in content)
    if isinstance(content, dict):
        return _estimate_tokens(content.get("text"))
    return 0
