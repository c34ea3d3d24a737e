"""Reading a client's request: body size and JSON, the checks the proxy itself needs, and identity.

The proxy checks only what it relies on (the prompt or messages, `stream`, the token limits it
rewrites for P, the session id); everything else is the engine's to judge, and its 4xx answer is
passed through to the client.
"""

from __future__ import annotations

import asyncio
import gc
import json
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ppd.jsonshape import JsonSizeError, check_json_size, nests_deeper_than
from ppd.openai_api import ApiError
from ppd.proxy.conversations import SESSION_BODY_FIELD, SESSION_HEADER, Identity, session_id_of


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One parsed client request, ready to route."""

    is_chat: bool
    body: dict[str, Any]  # without conversation_id
    raw_body: bytes  # what to forward when no hop rewrites the body
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
# Deeper JSON is refused: the proxy's own walks over a body (digests, re-encoding) must not recurse
# into a RecursionError. Real requests nest a handful of levels.
MAX_JSON_DEPTH = 64
# Content-Encodings the proxy decodes itself, with their zlib window bits. aiohttp's own decoding
# is off: it took any other value for identity and answered what it could not decode in text/plain.
_DECODER_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_IDENTITY = ("", "identity")


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """What a client's request body may be: bytes (after decoding), arrival time, JSON elements."""

    max_body_bytes: int
    body_timeout_s: float
    max_json_elements: int


async def read_json_body(request: web.Request, limits: BodyLimits) -> tuple[dict[str, Any], bytes]:
    """The request's JSON object and its raw (decoded) bytes: ApiError 413 when too large, 408 when
    it does not arrive whole within the timeout, 415 for a Content-Encoding other than identity,
    gzip or deflate, 400 when it is broken, too big in elements or depth, or not a JSON object.

    Every check before json.loads is linear in the body's bytes, and json.loads runs only on a body
    whose number of elements is bounded (ppd.jsonshape), so no body holds the event loop for long.
    """
    max_bytes = limits.max_body_bytes
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, f"request body of {request.content_length} bytes exceeds {max_bytes}")
    encoding = content_encoding(request.headers.get("Content-Encoding", ""))
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, f"request body exceeds {max_bytes} bytes") from exc
    except TimeoutError as exc:
        raise ApiError(408, f"request body did not arrive within {limits.body_timeout_s:g} s") from exc
    except (HttpProcessingError, RequestPayloadError) as exc:
        raise ApiError(400, f"request body is malformed: {' '.join(str(exc).split())}") from exc
    if encoding not in _IDENTITY:
        raw = decoded_body(raw, encoding, max_bytes)
    return parse_json_object(raw, limits.max_json_elements), raw


def content_encoding(header: str) -> str:
    """The one Content-Encoding the proxy can decode, lower case; ApiError 415 for anything else."""
    encoding = header.strip().lower()
    if encoding in _IDENTITY or encoding in _DECODER_WBITS:
        return encoding
    allowed = "identity, gzip, deflate"
    raise ApiError(415, f"Content-Encoding {header!r} is not supported; send one of: {allowed}")


def decoded_body(raw: bytes, encoding: str, max_body_bytes: int) -> bytes:
    """`raw` decompressed, never beyond max_body_bytes (ApiError 413); ApiError 400 when broken."""
    wbits = _DECODER_WBITS[encoding]
    attempts = (wbits, -zlib.MAX_WBITS) if encoding == "deflate" else (wbits,)  # zlib, or raw deflate
    for attempt_wbits in attempts:
        decompressor = zlib.decompressobj(attempt_wbits)
        try:
            data = decompressor.decompress(raw, max_body_bytes + 1)
        except zlib.error:
            continue
        if len(data) > max_body_bytes:
            raise ApiError(413, f"request body exceeds {max_body_bytes} bytes once decoded ({encoding})")
        if decompressor.eof:
            return data
    raise ApiError(400, f"request body is not valid {encoding} (corrupt or cut short)")


def parse_json_object(raw: bytes, max_json_elements: int) -> dict[str, Any]:
    """A JSON object from bytes, within max_json_elements and MAX_JSON_DEPTH; ApiError 400 otherwise."""
    try:
        num_containers = check_json_size(raw, max_json_elements)
    except JsonSizeError as exc:
        raise ApiError(400, f"request body has {exc} (raise --max-json-elements to allow it)") from exc
    try:
        with _collector_paused():
            body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    # Only a body with many brackets can nest deeply; the walk is bounded by the element count.
    if num_containers > MAX_JSON_DEPTH and nests_deeper_than(body, MAX_JSON_DEPTH):
        raise ApiError(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


@contextmanager
def _collector_paused() -> Iterator[None]:
    # json.loads allocates every container at once: the cyclic collector's passes over them would
    # only add time (nothing parsed can be garbage yet).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_turn_request(
    headers: Mapping[str, str], body: dict[str, Any], raw_body: bytes, is_chat: bool
) -> TurnRequest:
    """Check the fields the proxy relies on and work out the request's identity."""
    _check_common_fields(body)
    if len(headers.get(SESSION_HEADER, "")) > MAX_SESSION_ID_CHARS:
        raise ApiError(400, f"{SESSION_HEADER} is longer than {MAX_SESSION_ID_CHARS} characters")
    session_id = session_id_of(headers, body)
    if any(name in body for name in PROXY_OWNED_FIELDS):
        body = {key: value for key, value in body.items() if key not in PROXY_OWNED_FIELDS}
        raw_body = json.dumps(body).encode()
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
