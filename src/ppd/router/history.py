"""Recognising a continuing conversation from its history, when the client sends no session id.

chat:        a request continues a conversation when its earlier messages (all but the last) equal
             that conversation's last request's messages plus the answer the proxy relayed. One
             16-byte digest per conversation.
completions: a request continues a conversation when the conversation's last prompt + answer text
             is a prefix of the new prompt; the longest such prefix wins. Each conversation keeps a
             digest of that text. A text of at least one chunk (chunks.CHUNK_BYTES) is bucketed by
             the key of its last whole chunk (chunks.chunk_keys: a chained digest naming the whole
             prefix), so a lookup walks the new prompt's chunk keys (which recognise() computes
             anyway) and hashes only the candidates of the buckets it meets: its cost follows the
             prompt's length, not the number of conversations. Bucketing by the first HEAD_BYTES
             bytes alone made every conversation sharing a system prompt a candidate of every
             lookup (the Mooncake trace, 2,000 conversations: 2.2 ms per lookup on average, 12 ms
             p99). Shorter texts keep that bucketing (their lengths are few), the shortest are
             looked up whole.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from ppd.router.chunks import CHUNK_BYTES, prefix_key

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
    digest: bytes  # of the text past what its bucket's key proves (chunked: its whole chunks)


class PrefixIndex:
    """Known texts (prompt + answer) of conversations; finds the longest one prefixing a prompt."""

    def __init__(self, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.chunk_bytes = chunk_bytes
        # Texts of at least one chunk: by the key of their last whole chunk, then by owner.
        self._chunked: dict[bytes, dict[Hashable, _KnownText]] = {}
        # Texts of HEAD_BYTES up to a chunk: bucket by their head, then by owner.
        self._long: dict[bytes, dict[Hashable, _KnownText]] = {}
        # Shorter texts: the text itself is the key; their lengths are counted to probe each once.
        self._short: dict[bytes, Hashable] = {}
        self._short_lengths: Counter[int] = Counter()
        self._text_of: dict[Hashable, tuple[str, bytes]] = {}  # owner -> (tier, its bucket key)

    def __len__(self) -> int:
        return len(self._text_of)

    def add(self, owner: Hashable, text: bytes) -> None:
        """Remember `text` as the known history of `owner`, replacing what it had."""
        self.remove(owner)
        if len(text) >= self.chunk_bytes:
            whole = len(text) // self.chunk_bytes * self.chunk_bytes
            key = prefix_key(text, whole)  # the key the lookup meets among the prompt's chunk keys
            # The bucket's key proves the whole chunks; the digest covers only the rest (< a chunk),
            # so checking a bucket costs less than a chunk, however many buckets a prompt hits.
            tail = text_digest(memoryview(text)[whole:])
            self._chunked.setdefault(key, {})[owner] = _KnownText(len(text), tail)
            self._text_of[owner] = ("chunked", key)
        elif len(text) >= HEAD_BYTES:
            head = text[:HEAD_BYTES]
            self._long.setdefault(head, {})[owner] = _KnownText(len(text), text_digest(text))
            self._text_of[owner] = ("long", head)
        else:
            previous_owner = self._short.get(text)
            if previous_owner is not None:
                self.remove(previous_owner)  # two owners of one exact text: the newer wins
            self._short[text] = owner
            self._short_lengths[len(text)] += 1
            self._text_of[owner] = ("short", text)

    def remove(self, owner: Hashable) -> None:
        """Forget `owner`'s known text, if any."""
        found = self._text_of.pop(owner, None)
        if found is None:
            return
        tier, key = found
        if tier == "short":
            del self._short[key]
            self._short_lengths[len(key)] -= 1
            if not self._short_lengths[len(key)]:
                del self._short_lengths[len(key)]
            return
        buckets = self._chunked if tier == "chunked" else self._long
        bucket = buckets[key]
        del bucket[owner]
        if not bucket:
            del buckets[key]

    def clear(self) -> None:
        """Forget everything."""
        self._chunked.clear()
        self._long.clear()
        self._short.clear()
        self._short_lengths.clear()
        self._text_of.clear()

    def longest_prefix_owner(self, prompt: bytes, keys: Sequence[bytes]) -> Hashable | None:
        """The owner of the longest known text that is a prefix of `prompt`, or None.
        keys: the prompt's chunk_keys at this index's chunk size, of its keyed lead (the router's
        recognise() makes them anyway): a known text longer than they reach is not looked for, so a
        lookup costs the lead, not the prompt."""
        if len(prompt) >= self.chunk_bytes and self._chunked:
            owner = self._longest_chunked_prefix(prompt, keys)
            if owner is not None:
                return owner
        owner = _longest_in_bucket(self._long.get(prompt[:HEAD_BYTES]), prompt)
        if owner is not None:
            return owner
        for length in sorted(self._short_lengths, reverse=True):
            if length <= len(prompt):
                owner = self._short.get(prompt[:length])
                if owner is not None:
                    return owner
        return None

    def _longest_chunked_prefix(self, prompt: bytes, keys: Sequence[bytes]) -> Hashable | None:
        # A known text of m whole chunks is in the bucket of key m - 1; the prompt starts with it only
        # if the prompt's own key m - 1 is that key. Longer m first: the first match is the longest.
        for index in range(len(keys) - 1, -1, -1):
            bucket = self._chunked.get(keys[index])
            if bucket:
                owner = _longest_in_bucket(bucket, prompt, (index + 1) * self.chunk_bytes)
                if owner is not None:
                    return owner
        return None


def _longest_in_bucket(
    bucket: dict[Hashable, _KnownText] | None, prompt: bytes, proven_bytes: int = 0
) -> Hashable | None:
    """The owner of the longest text of `bucket` that prefixes `prompt` (digests compared). Its texts
    agree with the prompt on the first proven_bytes already (their digests cover the rest)."""
    if not bucket:
        return None
    lengths = sorted({known.num_bytes for known in bucket.values() if known.num_bytes <= len(prompt)})
    if not lengths:
        return None
    digest_by_length = prefix_digests(prompt, lengths, proven_bytes)
    best_owner: Hashable | None = None
    best_length = -1
    for owner, known in bucket.items():
        if best_length < known.num_bytes <= len(prompt) and digest_by_length[known.num_bytes] == known.digest:
            best_owner, best_length = owner, known.num_bytes
    return best_owner


def prefix_digests(data: bytes | memoryview, lengths: list[int], start: int = 0) -> dict[int, bytes]:
    """text_digest of data[start:n] for each n of `lengths` (ascending, each >= start), in one pass
    over data[start:].

    Hashing each prefix on its own cost the sum of the lengths: conversations sharing a head with
    many different lengths (one system prompt, or a client making them on purpose) made each lookup
    hash the prompt once per length. Extending one hash and copying it at each length costs one pass.
    """
    hasher = hashlib.blake2b(digest_size=DIGEST_BYTES)
    view = memoryview(data)
    digests: dict[int, bytes] = {}
    done = start
    for length in lengths:
        hasher.update(view[done:length])
        done = length
        digests[length] = hasher.copy().digest()
    return digests
