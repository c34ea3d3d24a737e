"""Recognising a conversation by its prompt's leading chunks, when neither a session id nor the whole
previous prompt + answer names it.

Why. A client that keeps no session id and edits its history a little (a trace's next turn repeats
the earlier turns' blocks but not the last, partial one; a chat UI that trims or re-renders the last
answer) never starts its prompt with the previous prompt + answer, so history.py finds nothing. What
such a prompt still shares with its conversation's previous turn is a long leading run of text, and
that run is what the instance that served the previous turn holds in its prefix cache.

How (the idea of vLLM's prefix-cache block hashes and llm-d's prefix-aware scorer, on text). A
prompt's UTF-8 bytes are cut into fixed chunks of `chunk_bytes`; chunk k's key is a chained digest of
chunks 0..k, so one key names a whole prefix. A trailing partial chunk gets no key: it is exactly
the part the next turn changes. After a turn completes, each key of its prompt is remembered with
the conversation that sent it and the instance that served it (its holder). A new request's keys are
looked up from the first: the longest run of known keys is its longest known prefix.

The common head. Nearly every conversation may start with the same system prompt; matching only
that says nothing about which conversation this is. A key is *common* when more than `common_share`
of the conversations the index has seen carried it (counted as owner changes of the key), and a
match counts only when its longest key is not common: it reaches beyond the common head into text
that one conversation sent. This is the online form of the trace link rule (ppd.traces.links: the
head is the leading run more than half of the requests share).

Chunk size vs tokens. The router sees text, never token ids, and the two need not line up: a chunk
is not a KV block and its keys never have to equal an engine's block hashes; they only have to be
equal for equal text. The chunk size only sets how finely a shared prefix is seen: a match finds the
shared text rounded down to whole chunks. CHUNK_BYTES = 1024 is ~256 tokens of English BPE text
(~4 bytes a token) and ~150 of the bench's `w<N>` word tokens (~6.7 bytes), i.e. 10-16 of vLLM's
16-token blocks: well below a system prompt or a conversation's own history (thousands of tokens),
so both span several chunks, and a 12k-token prompt costs ~80 keys. Smaller chunks cost more keys per
request (lookups, memory) for no routing gain.

Memory. The index is an LRU of at most `max_chunks` keys (the router gives it CHUNKS_PER_INSTANCE
per instance): each ~150 B (an 8-byte digest, its entry, the LRU link; measured with tracemalloc,
benchmarks/chunk_keys_cost.py), so the default 65,536 per instance is ~10 MB per instance and covers
64 MiB of distinct prompt text, ~16M tokens, far more than one instance's KV cache holds (the H100
profile's: ~450k tokens); a conversation idle for longer than that much other traffic is forgotten
and its next turn taken for a new one (the Mooncake trace's hour has 632k distinct chunk prefixes:
with four instances' 262k keys, 98.8% of its linked turns were recognised, all of them without
eviction; benchmarks/history_recognition.py). A prompt's keys are refreshed last-first, so its
leading keys are the most recent and eviction takes prefixes from their tails, keeping the known
keys prefix-closed (what the lookup's first-miss stop relies on).

The keyed lead. Only a prompt's first `keyed_bytes` (KEYED_BYTES, 1 MiB) are keyed, so the work a
request does on the proxy's event loop, where nothing else is served meanwhile, stops growing with
its body (keying all of an 8 MiB prompt took 17-21 ms in one step; benchmarks/chunk_keys_cost.py).
The tail adds nothing the rule uses. A match is the longest run of known keys from the first, and
every key names its whole prefix, so two prompts that differ within the lead get the same match with
or without the tail's keys; only prompts equal over their whole first MiB are told apart by the tail
alone, and those the lead gives to the conversation that sent that MiB last, whose holder holds the
whole MiB. A model's context bounds the prompts worth serving: 1 MiB is ~256k tokens of English BPE
text and ~150k of the bench's words, more than a 128k-token context holds, so every prompt an engine
serves is keyed whole, up to that bound. On the Mooncake trace (prompts up to 880 KiB) a lead of 64
KiB recognises every turn keying whole prompts did, and more (docs/proxy.md). A match over the whole
lead of a longer prompt says nothing of how much more it shares (the router then counts the whole
previous turn as shared).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CHUNK_BYTES = 1024
CHUNKS_PER_INSTANCE = 65_536
KEYED_BYTES = 1 << 20  # a prompt's keyed lead (see "The keyed lead")
COMMON_SHARE = 0.5  # a key more than this share of the conversations carried is part of the common head
KEY_BYTES = 8
# Keys one prompt's lead may make (defaults: 1 MiB / 1 KiB = 1,024). A 1-byte chunk made a million per
# request, ~0.6 s of event loop each, and flushed the per-instance LRU.
MAX_KEYS_PER_PROMPT = 4096


def recognition_problem(chunk_bytes: int, chunks_per_instance: int, keyed_bytes: int) -> str | None:
    """What is wrong with these settings, or None: the one check of `ppd proxy`'s and `ppd fleet`'s
    --history-* flags, named in its messages (every config that carries them, and ChunkIndex, asks it)."""
    if chunk_bytes < 1:
        return f"--history-chunk-bytes must be >= 1, not {chunk_bytes}"
    if chunks_per_instance < 1:
        return f"--history-chunks-per-instance must be >= 1, not {chunks_per_instance}"
    if keyed_bytes < chunk_bytes:
        return f"--history-keyed-bytes ({keyed_bytes}) must be at least --history-chunk-bytes ({chunk_bytes})"
    if keyed_bytes // chunk_bytes > MAX_KEYS_PER_PROMPT:  # each key is a hash step and an LRU entry
        return (
            f"--history-keyed-bytes / --history-chunk-bytes ({keyed_bytes} / {chunk_bytes}) must be at "
            f"most {MAX_KEYS_PER_PROMPT} keys per prompt"
        )
    return None


def chunk_keys(data: bytes, chunk_bytes: int = CHUNK_BYTES, max_bytes: int | None = None) -> list[bytes]:
    """Chained digests of data's whole chunks within its first max_bytes (all of it when None):
    keys[k] names data[: (k + 1) * chunk_bytes]."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
    # One hash extended chunk by chunk and copied at each end: each key is prefix_key of its prefix.
    hasher = hashlib.blake2b(digest_size=KEY_BYTES)
    view = memoryview(data)
    num_bytes = len(data) if max_bytes is None else min(len(data), max_bytes)
    keys: list[bytes] = []
    for start in range(0, num_bytes - chunk_bytes + 1, chunk_bytes):
        hasher.update(view[start : start + chunk_bytes])
        keys.append(hasher.copy().digest())
    return keys


def prefix_key(data: bytes | memoryview, num_bytes: int) -> bytes:
    """The chunk key of data's first num_bytes (whole chunks): chunk_keys(data)[num_bytes // chunk_bytes
    - 1], the one key alone. The chained digest is blake2b over the whole prefix, so it is one hash."""
    return hashlib.blake2b(memoryview(data)[:num_bytes], digest_size=KEY_BYTES).digest()


def chat_text(messages: Sequence[Any], max_bytes: int) -> bytes:
    """The first max_bytes (the keyed lead) of chat messages as one byte string whose prefixes follow
    the messages' (for chunk_keys): each message's role and content in order, so a next turn's
    messages extend the previous turn's text. Each message is made only as far as what is left of
    max_bytes after the messages before it."""
    parts: list[bytes] = []
    num_bytes = 0
    for message in messages:
        num_left = max_bytes - num_bytes
        if num_left <= 0:
            break
        role, content = _role_and_content(message)
        text = content if isinstance(content, str) else _parts_text(content, num_left)
        # Characters are at least as many bytes, so num_left of each keep the lead intact.
        part = f"{str(role)[:num_left]}\x00{text[:num_left]}\x01".encode("utf-8", "surrogatepass")
        parts.append(part)
        num_bytes += len(part)
    return b"".join(parts)[:max_bytes]


def _role_and_content(message: Any) -> tuple[Any, Any]:
    # A message that is not an object (the engine will refuse it) is all content.
    if isinstance(message, dict):
        return message.get("role", ""), message.get("content")
    return "", message


def chat_text_chars(messages: Sequence[Any]) -> int:
    """At most the characters of the whole chat_text(messages), without making it: a lower bound on
    its UTF-8 bytes. Strings are counted by len() and other parts by their JSON's least length, so
    the work is the number of JSON values, never the length of the text."""
    num_chars = 0
    for message in messages:
        role, content = _role_and_content(message)
        num_chars += len(str(role)) + 2
        if isinstance(content, str):
            num_chars += len(content)
        elif isinstance(content, list):  # the joined parts' length, without joining them
            num_chars += sum(_part_chars(part) for part in content) + max(0, len(content) - 1)
        else:
            num_chars += min_json_chars(content)
    return num_chars


def _part_chars(part: Any) -> int:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return len(part["text"])
    return min_json_chars(part)


def min_json_chars(value: Any) -> int:
    """The least length of value's whole JSON (as json_lead makes it): strings' quotes and lengths,
    containers' brackets and separators, escapes left out (they only add); 1 for any other value."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, dict):
        items = sum(min_json_chars(str(key)) + 2 + min_json_chars(item) for key, item in value.items())
        return 2 + items + 2 * max(0, len(value) - 1)
    if isinstance(value, list | tuple):
        return 2 + sum(min_json_chars(item) for item in value) + 2 * max(0, len(value) - 1)
    return 1


def _parts_text(content: Any, max_chars: int) -> str:
    # Content parts: their texts, each other part as JSON (an image URL, audio, a tool call); about
    # the first max_chars characters are made (the rest lies past the lead).
    if not isinstance(content, list):
        return json_lead(content, max_chars)
    texts: list[str] = []
    num_chars = 0
    for part in content:
        if num_chars >= max_chars:
            break
        texts.append(_part_text(part, max_chars - num_chars))
        num_chars += len(texts[-1]) + 1
    return "\x02".join(texts)


def _part_text(part: Any, max_chars: int) -> str:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        text: str = part["text"]
        return text[:max_chars]
    return json_lead(part, max_chars)


def json_lead(value: Any, max_chars: int) -> str:
    """A string that starts with value's whole one-line JSON's (non-ASCII kept) first max_chars
    characters and is not much longer. Long strings are cut and containers left once max_chars are
    out, so an image part carrying megabytes of data URL costs about max_chars on the proxy's event
    loop, not its size."""
    pieces: list[str] = []
    _json_pieces(value, max_chars, pieces, 0)
    return "".join(pieces)


def _json_pieces(value: Any, max_chars: int, pieces: list[str], num_chars: int) -> int:
    # Appends value's JSON to pieces after num_chars characters; returns the count after it. A cut
    # string's closing quote falls past max_chars, so what comes before max_chars is the whole's.
    if num_chars >= max_chars:
        return num_chars
    if isinstance(value, dict):
        return _json_items(value.items(), "{}", max_chars, pieces, num_chars)
    if isinstance(value, list | tuple):
        return _json_items(enumerate(value), "[]", max_chars, pieces, num_chars)
    if isinstance(value, str):
        value = value[: max(0, max_chars - num_chars)]
    piece = json.dumps(value, ensure_ascii=False, default=repr)
    pieces.append(piece)
    return num_chars + len(piece)


def _json_items(
    items: Iterable[tuple[Any, Any]], brackets: str, max_chars: int, pieces: list[str], num_chars: int
) -> int:
    pieces.append(brackets[0])
    num_chars += 1
    for index, (key, item) in enumerate(items):
        if num_chars >= max_chars:
            return num_chars  # the rest lies past max_chars
        if index:
            pieces.append(", ")
            num_chars += 2
        if brackets == "{}":
            num_chars = _json_pieces(str(key), max_chars, pieces, num_chars)
            pieces.append(": ")
            num_chars += 2
        num_chars = _json_pieces(item, max_chars, pieces, num_chars)
    pieces.append(brackets[1])
    return num_chars + 1


@dataclass(slots=True)
class _Chunk:
    owner: Hashable  # the conversation that sent it last
    instance_url: str  # where that turn was served: the holder of this prefix
    num_owners: int  # conversations that carried it (owner changes)


@dataclass(frozen=True, slots=True)
class ChunkMatch:
    """The longest known prefix of a prompt beyond the common head."""

    owner: Hashable
    instance_url: str
    num_chunks: int  # matched leading chunks
    num_bytes: int  # num_chunks * chunk_bytes


class ChunkIndex:
    """Leading-chunk keys of the prompts routed so far, each with its owner and holder; LRU-bounded."""

    def __init__(
        self, chunk_bytes: int = CHUNK_BYTES, max_chunks: int = CHUNKS_PER_INSTANCE,
        common_share: float = COMMON_SHARE, keyed_bytes: int = KEYED_BYTES,
    ) -> None:  # fmt: skip
        problem = recognition_problem(chunk_bytes, max_chunks, keyed_bytes)
        if problem:
            raise ValueError(problem)
        if not 0.0 < common_share < 1.0:
            raise ValueError(f"common_share must be in (0, 1), not {common_share}")
        self.chunk_bytes = chunk_bytes
        self.max_chunks = max_chunks
        self.common_share = common_share
        self.keyed_bytes = keyed_bytes  # a prompt's keyed lead
        self.num_owners = 0  # conversations that registered keys
        self._chunks: OrderedDict[bytes, _Chunk] = OrderedDict()

    def __len__(self) -> int:
        return len(self._chunks)

    def clear(self) -> None:
        """Forget everything."""
        self._chunks.clear()
        self.num_owners = 0

    def keys_of(self, data: bytes) -> list[bytes]:
        """The chunk keys of a prompt's bytes: of its keyed lead."""
        return chunk_keys(data, self.chunk_bytes, self.keyed_bytes)

    def longest_match(self, keys: Sequence[bytes]) -> ChunkMatch | None:
        """The owner and holder of the longest known prefix of `keys`, if it reaches beyond the common
        head; None otherwise."""
        chunks = self._chunks
        longest: _Chunk | None = None
        num_matched = 0
        for key in keys:
            chunk = chunks.get(key)
            if chunk is None:
                break
            longest, num_matched = chunk, num_matched + 1
        if longest is None or self.is_common(longest):
            return None
        return ChunkMatch(longest.owner, longest.instance_url, num_matched, num_matched * self.chunk_bytes)

    def is_common(self, chunk: _Chunk) -> bool:
        """Carried by more than common_share of the conversations seen: part of the common head."""
        return chunk.num_owners > self.common_share * self.num_owners

    def add(self, owner: Hashable, instance_url: str, keys: Sequence[bytes], new_owner: bool) -> None:
        """Remember that `owner` (new_owner: its first registration) sent a prompt with `keys`, served
        by `instance_url`."""
        if new_owner:
            self.num_owners += 1
        chunks = self._chunks
        for key in reversed(keys):  # leading keys last: the most recent, evicted last
            chunk = chunks.get(key)
            if chunk is None:
                chunks[key] = _Chunk(owner, instance_url, 1)
                continue
            if chunk.owner != owner:
                chunk.owner = owner
                chunk.num_owners += 1
            chunk.instance_url = instance_url
            chunks.move_to_end(key)
        while len(chunks) > self.max_chunks:
            chunks.popitem(last=False)
