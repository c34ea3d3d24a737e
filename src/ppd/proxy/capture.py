"""Capture the answer text and usage from the bytes the proxy relays, cheaply.

The relay forwards upstream bytes untouched; this scanner reads them on the side. It splits them
into SSE lines and finds the text of each chunk with a byte search for `"text":"` (completions) or
`"content":"` (chat) instead of parsing the JSON. Only a chunk whose text contains a backslash
escape, or that carries usage, is parsed as JSON. The answer text lets the proxy recognise the
conversation's next turn by its history; usage gives exact token counts when the client asked for it.
"""

from __future__ import annotations

import json
from typing import Any

_COMPLETION_KEY = b'"text":"'
_CHAT_KEY = b'"content":"'
_MAX_PENDING_BYTES = 4 * 1024 * 1024  # an SSE line longer than this is not an answer chunk


class AnswerCapture:
    """Feed it the relayed bytes of one answer (SSE stream or JSON body); read text and usage."""

    def __init__(self, is_chat: bool, capture_text: bool = True) -> None:
        self.is_chat = is_chat
        self.capture_text = capture_text
        self.usage: dict[str, Any] | None = None
        self.num_content_chunks = 0
        self._key = _CHAT_KEY if is_chat else _COMPLETION_KEY
        self._parts: list[str] = []
        self._pending = b""

    @property
    def text(self) -> str:
        """The answer text captured so far."""
        return "".join(self._parts)

    def feed(self, data: bytes) -> None:
        """Scan the next relayed bytes of an SSE stream (any split across lines is fine)."""
        buffer = self._pending + data if self._pending else data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if buffer.startswith(b"data:", start):
                self._scan_event(buffer[start:end])
            start = end + 1
        self._pending = buffer[start:]
        if len(self._pending) > _MAX_PENDING_BYTES:
            self._pending = b""

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

    def _scan_event(self, line: bytes) -> None:
        key_at = line.find(self._key)
        if key_at >= 0:
            text_start = key_at + len(self._key)
            text_end = line.find(b'"', text_start)
            segment = line[text_start:text_end]
            if b"\\" in segment or text_end < 0:
                self._add_text(_parsed_text(line, self.is_chat))
            elif segment:
                self._add_text(segment.decode("utf-8", "replace"))
        if b'"usage"' in line and b'"usage":null' not in line:
            payload = _parse_data_line(line)
            usage = payload.get("usage") if payload else None
            if isinstance(usage, dict):
                self.usage = usage

    def _add_text(self, text: str) -> None:
        if text:
            self.num_content_chunks += 1
            if self.capture_text:
                self._parts.append(text)


def _parse_data_line(line: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(line[5:])
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _parsed_text(line: bytes, is_chat: bool) -> str:
    payload = _parse_data_line(line)
    return _first_choice_text(payload, "delta" if is_chat else None) if payload else ""


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
