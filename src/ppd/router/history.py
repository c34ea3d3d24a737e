"""Recognising a continuing conversation from its history, when the client sends no session id.

chat:        a request continues a conversation when its earlier messages (all but the last) equal
             that conversation's last request's messages plus the answer the proxy relayed. One
             16-byte digest per conversation.
completions: a request continues a conversation when the conversation's last prompt + answer text
             is a prefix of the new prompt; the longest such prefix wins. Each conversation keeps a
             digest of that text, bucketed by its first HEAD_BYTES bytes, so a lookup hashes only
             the new prompt's head plus one prefix per candidate length in its bucket.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

HEAD_BYTES = 256
DIGEST_BYTES = 16


def chat_digest(messages: Sequence[Any], answer: str | None = None) -> bytes:
    """Digest of chat messages (role and content; whitespace at the ends ignored), plus an answer."""
    hasher = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for message in messages:
        role, content = _role_and_content(message)
        hasher.update(role.encode("utf-8", "surrogatepass") + b"\x00")
        hasher.update(content.encode("utf-8", "surrogatepass") + b"\x01")
    if answer is not None:
        hasher.update(b"assistant\x00" + answer.strip().encode("utf-8", "surrogatepass") + b"\x01")
    return hasher.digest()


def _role_and_content(message: Any) -> tuple[str, str]:
    if not isinstance(message, dict):
        return "", json.dumps(message, sort_keys=True)
    role = str(message.get("role", ""))
    content = message.get("content")
    if isinstance(content, str):
        return role, content.strip()
    return role, json.dumps(content, sort_keys=True)  # content parts, tool calls, null


def completion_history_text(prompt: bytes, answer: str) -> bytes:
    """The text a continuing completions prompt starts with: the prompt, then the answer.

    When neither side has whitespace where they meet (an answer of words like `w12 w34`), a client
    must put a separator between them to keep the words apart; the usual one is a single space, so
    that is what the known history holds. Otherwise the two are joined as they are.
    """
    answer_bytes = answer.encode("utf-8", "surrogatepass")
    if prompt and answer_bytes and not prompt[-1:].isspace() and not answer_bytes[:1].isspace():
        return prompt + b" " + answer_bytes
    return prompt + answer_bytes


def text_digest(data: bytes | memoryview) -> bytes:
    """Digest of a (prefix of a) prompt, as bytes."""
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


@dataclass(frozen=True, slots=True)
class _KnownText:
    num_bytes: int
    digest: bytes


class PrefixIndex:
    """Known texts (prompt + answer) of conversations; finds the longest one prefixing a prompt."""

    def __init__(self) -> None:
        # Texts of at least HEAD_BYTES bytes: bucket by their head, then by full-text digest.
        self._long: dict[bytes, dict[Hashable, _KnownText]] = {}
        # Shorter texts: the text itself is the key; their lengths are counted to probe each once.
        self._short: dict[bytes, Hashable] = {}
        self._short_lengths: Counter[int] = Counter()
        self._text_of: dict[Hashable, bytes] = {}  # owner -> its head (long) or whole text (short)

    def __len__(self) -> int:
        return len(self._text_of)

    def add(self, owner: Hashable, text: bytes) -> None:
        """Remember `text` as the known history of `owner`, replacing what it had."""
        self.remove(owner)
        if len(text) >= HEAD_BYTES:
            head = text[:HEAD_BYTES]
            self._long.setdefault(head, {})[owner] = _KnownText(len(text), text_digest(text))
            self._text_of[owner] = head
        else:
            previous_owner = self._short.get(text)
            if previous_owner is not None:
                self.remove(previous_owner)  # two owners of one exact text: the newer wins
            self._short[text] = owner
            self._short_lengths[len(text)] += 1
            self._text_of[owner] = text

    def remove(self, owner: Hashable) -> None:
        """Forget `owner`'s known text, if any."""
        key = self._text_of.pop(owner, None)
        if key is None:
            return
        bucket = self._long.get(key)
        if bucket is not None and owner in bucket:
            del bucket[owner]
            if not bucket:
                del self._long[key]
            return
        del self._short[key]
        self._short_lengths[len(key)] -= 1
        if not self._short_lengths[len(key)]:
            del self._short_lengths[len(key)]

    def clear(self) -> None:
        """Forget everything."""
        self._long.clear()
        self._short.clear()
        self._short_lengths.clear()
        self._text_of.clear()

    def longest_prefix_owner(self, prompt: bytes) -> Hashable | None:
        """The owner of the longest known text that is a prefix of `prompt`, or None."""
        owner = self._longest_long_prefix(prompt)
        if owner is not None:
            return owner
        for length in sorted(self._short_lengths, reverse=True):
            if length <= len(prompt):
                owner = self._short.get(prompt[:length])
                if owner is not None:
                    return owner
        return None

    def _longest_long_prefix(self, prompt: bytes) -> Hashable | None:
        if len(prompt) < HEAD_BYTES:
            return None
        bucket = self._long.get(prompt[:HEAD_BYTES])
        if not bucket:
            return None
        lengths = sorted({known.num_bytes for known in bucket.values() if known.num_bytes <= len(prompt)})
        digest_by_length = prefix_digests(prompt, lengths)
        best_owner: Hashable | None = None
        best_length = -1
        for owner, known in bucket.items():
            if (
                best_length < known.num_bytes <= len(prompt)
                and digest_by_length[known.num_bytes] == known.digest
            ):
                best_owner, best_length = owner, known.num_bytes
        return best_owner


def prefix_digests(data: bytes, lengths: list[int]) -> dict[int, bytes]:
    """text_digest of data[:n] for each n of `lengths` (ascending), in one pass over data.

    Hashing each prefix on its own cost the sum of the lengths: conversations sharing a head with
    many different lengths (one system prompt, or a client making them on purpose) made each lookup
    hash the prompt once per length. Extending one hash and copying it at each length costs one pass.
    """
    hasher = hashlib.blake2b(digest_size=DIGEST_BYTES)
    view = memoryview(data)
    digests: dict[int, bytes] = {}
    done = 0
    for length in lengths:
        hasher.update(view[done:length])
        done = length
        digests[length] = hasher.copy().digest()
    return digests
