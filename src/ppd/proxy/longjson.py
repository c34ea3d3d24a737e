"""A large JSON request body, parsed and re-encoded in steps so the event loop turns in between.

`json.loads` and `json.dumps` are each one C call that holds the GIL from start to end, so moving
them to a worker thread does not help: the event loop's thread waits for the GIL just as long
(benchmarks/large_body_stall.py measures it). On the quiet machine a 10 MB prompt took 15-25 ms to
parse and 50-60 ms to encode again for P, and every other stream on the proxy waited that long.

A body is large because of long strings (a prompt, a message's content). Those are found by their
quotes (`bytes.find`, C speed), and each is decoded on its own, a piece of about STEP_BYTES at a
time, every piece cut just before a space: no JSON escape contains a space, so each piece is valid
JSON string content exactly when the whole string is, and decodes to its part of it (a surrogate
pair `\\ud83d\\ude00` is never cut). The rest of the body, each long string replaced by a short
placeholder, is parsed in one call. A body re-encoded from it (P's one-token request) is the rest
encoded by `json.dumps` with the client's own bytes of each long string put back in place of its
placeholder, as D's body already is (relay.decode_request_bytes).

What still runs in one step: a long object key, long strings in lists nested in lists, and every
string under LONG_STRING_BYTES, all decoded with the rest in one call (correct, not stepped): a
body near the size limit made of many medium strings, or of many small values (bounded by
--max-json-elements), still costs one json.loads of all of it.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ppd.openai_api import ApiError
from ppd.proxy.body import LARGE_BODY_BYTES, collector_paused, parse_json_object

# A string literal this long (bytes, quotes included) is decoded on its own, in steps.
LONG_STRING_BYTES = 64 * 1024
# About how many bytes of a long string are decoded between two turns of the event loop (~1 ms
# each on the quiet machine; a turn of the loop costs some µs).
STEP_BYTES = 256 * 1024
# Quotes looked at between two turns of the event loop while long strings are searched for.
_QUOTES_PER_STEP = 16384
_BACKSLASH = ord("\\")
_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_UTF8_BOM = b"\xef\xbb\xbf"
_PLACEHOLDER_PREFIX = "\x00ppd-long-string:"


@dataclass(frozen=True, slots=True, repr=False)
class JsonBody:
    """A client's JSON object, and how to encode a body made from it without re-encoding its long
    strings (`encode`)."""

    value: dict[str, Any]  # the body as parsed
    skeleton: dict[str, Any]  # the same, each long string a placeholder (the value itself when none)
    literals: tuple[bytes | memoryview, ...]  # each long string as the client sent it, quotes included
    marker: str = ""  # the placeholders' common prefix, unique to this body

    def __repr__(self) -> str:
        # Short: asyncio writes the repr of a task's result into its own repr, and this holds megabytes.
        return f"JsonBody(<{len(self.value)} members>, {len(self.literals)} long strings)"

    def without(self, keys: tuple[str, ...]) -> JsonBody:
        """The same body without these top-level members."""
        value = {key: item for key, item in self.value.items() if key not in keys}
        if self.skeleton is self.value:
            return JsonBody(value, value, self.literals, self.marker)
        skeleton = {key: item for key, item in self.skeleton.items() if key not in keys}
        return JsonBody(value, skeleton, self.literals, self.marker)

    def encode(self, derive: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
        """The JSON bytes of `derive(body)`, `derive` a function that copies or sets members but
        never looks into the long strings (it is given the skeleton, placeholders in them)."""
        text = json.dumps(derive(self.skeleton)).encode()
        if not self.literals:
            return text
        # json.dumps writes each placeholder as `"\u0000ppd-long-string:MARKER:I"`.
        escaped = json.dumps(self.marker).encode()[:-1]  # the opening quote and the escaped marker
        parts: list[bytes | memoryview] = list(re.split(re.escape(escaped) + rb'(\d+)"', text))
        for index in range(1, len(parts), 2):
            parts[index] = self.literals[int(parts[index])]
        return b"".join(parts)


def plain_body(value: dict[str, Any]) -> JsonBody:
    """A JsonBody without long strings: encode is json.dumps."""
    return JsonBody(value, value, ())


async def parse_in_steps(raw: bytes, num_containers: int) -> JsonBody:
    """The JSON object in `raw` (within the element bounds; `num_containers` its opening brackets),
    its long strings decoded in steps with the event loop turning in between; ApiError 400 as
    body.parse_json_object when it is not valid."""
    spans = (
        await long_string_spans(raw, LONG_STRING_BYTES)
        if len(raw) > LARGE_BODY_BYTES and _is_utf8(raw)
        else []
    )
    if not spans:
        return plain_body(parse_json_object(raw, num_containers))
    marker = f"{_PLACEHOLDER_PREFIX}{secrets.token_hex(8)}:"
    strings: dict[str, str] = {}
    rest: list[bytes] = []
    end = 0
    for index, (start, stop) in enumerate(spans):
        placeholder = f"{marker}{index}"
        strings[placeholder] = await decode_string_in_steps(raw, start, stop)
        rest += [raw[end:start], json.dumps(placeholder).encode()]
        end = stop
    rest.append(raw[end:])
    skeleton_raw = b"".join(rest)
    skeleton = parse_json_object(skeleton_raw, num_containers)
    await asyncio.sleep(0)
    value = _with_strings(skeleton_raw, strings)
    if value is None:  # a placeholder where the substitution does not look (lists in lists)
        value = parse_json_object(raw, num_containers)
    view = memoryview(raw)  # the literals are spliced into P's body as they are: no copies
    literals = tuple(view[start:stop] for start, stop in spans)
    return JsonBody(value, skeleton, literals, marker)


def _is_utf8(raw: bytes) -> bool:
    # json.loads also reads UTF-16 and UTF-32 (and a BOM): those are parsed in one step, as before.
    return not raw.startswith(_UTF8_BOM) and json.detect_encoding(raw) == "utf-8"


async def long_string_spans(raw: bytes, min_bytes: int) -> list[tuple[int, int]]:
    """(start, stop) of each string value of at least min_bytes bytes in a JSON text, its quotes
    included (raw[start:stop] is the literal). Object keys are left out. Outside a string every
    quote opens one; inside, a quote after an odd number of backslashes is part of the string."""
    spans: list[tuple[int, int]] = []
    find = raw.find
    opened = -1  # the opening quote of the string being read; -1 outside strings
    position = 0
    num_quotes = 0
    while (quote := find(b'"', position)) >= 0:
        position = quote + 1
        num_quotes += 1
        if num_quotes % _QUOTES_PER_STEP == 0:
            await asyncio.sleep(0)
        if opened < 0:
            opened = quote
        elif raw[quote - 1] != _BACKSLASH or not _escaped(raw, quote):
            if position - opened >= min_bytes and not _is_key(raw, position):
                spans.append((opened, position))
            opened = -1
    return spans


def _escaped(raw: bytes, quote: int) -> bool:
    index = quote - 1
    while raw[index] == _BACKSLASH:
        index -= 1
    return (quote - 1 - index) % 2 == 1


def _is_key(raw: bytes, after: int) -> bool:
    match = _WHITESPACE.match(raw, after)
    position = match.end() if match else after
    return raw[position : position + 1] == b":"


async def decode_string_in_steps(raw: bytes, start: int, stop: int) -> str:
    """The string of the literal raw[start:stop], decoded about STEP_BYTES at a time, each piece cut
    before a space; ApiError 400 when it is not a valid JSON string."""
    parts: list[str] = []
    position, end = start + 1, stop - 1
    while position < end:
        cut = raw.find(b" ", min(position + STEP_BYTES, end), end)
        cut = end if cut < 0 else cut
        try:
            piece = raw[position:cut].decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
            parts.append(json.loads('"' + piece + '"'))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(
                400, f"request body is not valid JSON: in a string at byte {start}: {exc}"
            ) from exc
        position = cut
        await asyncio.sleep(0)
    return "".join(parts)


def _with_strings(skeleton_raw: bytes, strings: dict[str, str]) -> dict[str, Any] | None:
    """The skeleton parsed with each placeholder replaced by its string: the values of objects and
    the items of lists that are values of objects (a prompt, a message's content, a content part's
    text, a list of prompts). None when a placeholder was elsewhere."""
    num_found = 0

    def put_back(value: Any) -> Any:
        nonlocal num_found
        if isinstance(value, str) and value in strings:
            num_found += 1
            return strings[value]
        return value

    def object_hook(members: dict[str, Any]) -> dict[str, Any]:
        for key, value in members.items():
            if isinstance(value, list):
                members[key] = [put_back(item) for item in value]
            else:
                members[key] = put_back(value)
        return members

    with collector_paused():
        value = json.loads(skeleton_raw, object_hook=object_hook)
    return value if num_found == len(strings) else None
