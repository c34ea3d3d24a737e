"""Capture the answer text and usage from the bytes the proxy relays, cheaply.

The relay forwards upstream bytes untouched; this reads them on the side. Chunks are only appended
as they pass; every `_SCAN_BYTES` (and at the end) one regular-expression pass over the complete SSE
lines collects the `"text":"..."` (completions) or `"content":"..."` (chat) strings, so the cost per
relayed chunk is a list append, not a JSON parse. Only a string with a backslash escape is decoded as
JSON, and only an event carrying usage is parsed. The answer text lets the proxy recognise the
conversation's next turn by its history; usage gives exact token counts when the client asked for it.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A JSON string body: runs of plain characters and backslash escapes.
_COMPLETION_TEXT = re.compile(rb'"text":"([^"\\]*(?:\\.[^"\\]*)*)"')
_CHAT_CONTENT = re.compile(rb'"content":"([^"\\]*(?:\\.[^"\\]*)*)"')
_USAGE_MARKS = (b'"usage":{', b'"usage": {')
_SCAN_BYTES = 64 * 1024  # scan in batches: bounded memory, few Python-level calls


class AnswerCapture:
    """Feed it the relayed bytes of one answer (SSE stream or JSON body); read text and usage."""

    def __init__(self, is_chat: bool, capture_text: bool = True) -> None:
        self.is_chat = is_chat
        self.capture_text = capture_text
        self.usage: dict[str, Any] | None = None
        self.num_content_chunks = 0
        self._pattern = _CHAT_CONTENT if is_chat else _COMPLETION_TEXT
        self._parts: list[str] = []
        self._pending: list[bytes] = []
        self._num_pending_bytes = 0

    @property
    def text(self) -> str:
        """The answer text captured so far (complete after `finish`)."""
        return "".join(self._parts)

    def feed(self, data: bytes) -> None:
        """Take the next relayed bytes of an SSE stream (any split across lines is fine)."""
        self._pending.append(data)
        self._num_pending_bytes += len(data)
        if self._num_pending_bytes >= _SCAN_BYTES:
            self._scan(final=False)

    def finish(self) -> None:
        """The stream ended: scan what is left."""
        self._scan(final=True)

    def _scan(self, final: bool) -> None:
        buffer = b"".join(self._pending)
        end = len(buffer) if final else buffer.rfind(b"\n") + 1
        self._pending = [buffer[end:]] if end < len(buffer) else []
        self._num_pending_bytes = len(buffer) - end
        lines = buffer[:end]
        texts = self._pattern.findall(lines)
        if texts:
            self._add_texts(texts)
        for mark in _USAGE_MARKS:
            at = lines.rfind(mark)
            if at >= 0:
                self._read_usage(lines, at)

    def _read_usage(self, lines: bytes, at: int) -> None:
        line_start = lines.rfind(b"\n", 0, at) + 1
        line_end = lines.find(b"\n", at)
        payload = _parse_data_line(lines[line_start : line_end if line_end >= 0 else len(lines)])
        usage = payload.get("usage") if payload else None
        if isinstance(usage, dict):
            self.usage = usage

    def _add_texts(self, raws: list[bytes]) -> None:
        # The JSON string bodies of one scan, joined and decoded once: each holds whole characters and
        # whole escapes, so the join decodes to the texts' join (one call per scan, not per chunk).
        self.num_content_chunks += len(raws) - raws.count(b"")
        if self.capture_text:
            joined = b"".join(raws)
            if b"\\" in joined:
                self._parts.append(json.loads(b'"' + joined + b'"'))
            elif joined:
                self._parts.append(joined.decode("utf-8", "replace"))

    def feed_json_body(self, body: bytes) -> None:
        """Read a whole non-streamed JSON answer."""
        try:
            payload = json.loads(body)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        text = _first_choice_text(payload, "message" if self.is_chat else None)
        if text:
            self._parts.append(text)
            self.num_content_chunks += 1


def _parse_data_line(line: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(line[5:])
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _first_choice_text(payload: dict[str, Any], chat_field: str | None) -> str:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    if chat_field is not None:
        message = choice.get(chat_field)
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""
