"""Who holds what: per-conversation state, found by session id or by history, bounded in size.

A request names its conversation in one of three ways, tried in this order: its session id; its
history, when it starts with the conversation's whole previous prompt + answer (history.py); or,
without either, the longest run of its prompt's leading chunks that a turn of one conversation sent
before, beyond the text every conversation starts with (chunks.py). `recognise` says which.

A conversation's state changes only when one of its turns completes (`commit_turn`), so a failed or
abandoned turn leaves it as it was. The store is an LRU of at most `max_conversations` entries, and
an entry idle for `idle_ttl_s` is dropped on the next access.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ppd.router.chunks import CHUNK_BYTES, CHUNKS_PER_INSTANCE, ChunkIndex, chat_text, chat_text_chars
from ppd.router.history import PrefixIndex, chat_digest, completion_history_text

SESSION_HEADER = "X-Session-ID"
SESSION_BODY_FIELD = "conversation_id"


@dataclass(init=False)
class Conversation:
    """What the proxy knows about one conversation after its last completed turn."""

    key: str  # "s:<session id>" from the client, or "h:<n>" when recognised by history
    num_turns: int = 0  # completed turns
    holder_url: str | None = None  # instance that served the last turn: its prefix cache holds it
    num_prompt_tokens: int = 0  # of the last turn
    num_output_tokens: int = 0  # of the last turn
    last_used_s: float = 0.0  # the store's clock
    chat_key: bytes | None = field(default=None, repr=False)  # digest registered for recognition
    in_chunk_index: bool = field(default=False, repr=False)  # counted among the chunk index's owners

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        key: str,
        num_turns: int = 0,
        holder_url: str | None = None,
        num_prompt_tokens: int = 0,
        num_output_tokens: int = 0,
        last_used_s: float = 0.0,
        chat_key: bytes | None = None,
        in_chunk_index: bool = False,
    ) -> None:
        self.key = key
        self.num_turns = num_turns
        self.holder_url = holder_url
        self.num_prompt_tokens = num_prompt_tokens
        self.num_output_tokens = num_output_tokens
        self.last_used_s = last_used_s
        self.chat_key = chat_key
        self.in_chunk_index = in_chunk_index

    @property
    def num_history_tokens(self) -> int:
        """Tokens the next turn's prompt starts with: the last prompt plus its answer."""
        return self.num_prompt_tokens + self.num_output_tokens


@dataclass(init=False, frozen=True, slots=True)
class Identity:
    """How a request names its conversation: a session id, a history to recognise, or neither."""

    session_id: str | None = None
    chat_messages: Sequence[Any] | None = None  # the full messages of a chat request
    prompt_bytes: bytes | None = None  # the UTF-8 prompt of a completions request

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        session_id: str | None = None,
        chat_messages: Sequence[Any] | None = None,
        prompt_bytes: bytes | None = None,
    ) -> None:
        object.__setattr__(self, "session_id", session_id)
        object.__setattr__(self, "chat_messages", chat_messages)
        object.__setattr__(self, "prompt_bytes", prompt_bytes)


@dataclass(init=False, frozen=True, slots=True)
class TurnOutcome:
    """A completed turn: what to remember about it."""

    holder_url: str
    num_prompt_tokens: int
    num_output_tokens: int
    answer_text: str | None  # the relayed answer; None when it could not be captured

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        holder_url: str,
        num_prompt_tokens: int,
        num_output_tokens: int,
        answer_text: str | None,
    ) -> None:
        object.__setattr__(self, "holder_url", holder_url)
        object.__setattr__(self, "num_prompt_tokens", num_prompt_tokens)
        object.__setattr__(self, "num_output_tokens", num_output_tokens)
        object.__setattr__(self, "answer_text", answer_text)


Recognised = Literal["session", "history", "chunks"]


@dataclass(init=False, frozen=True, slots=True)
class Recognition:
    """What a request continues, and how that was found. Its chunk keys and text length are made
    once per turn, here: commit_turn takes the whole Recognition."""

    conversation: Conversation | None  # None: a new conversation
    by: Recognised | None = None
    holder_url: str | None = None  # a chunk match: the instance the matched prefix was routed to
    num_shared_bytes: int | None = None  # a chunk match: leading prompt bytes it shares (None: all
    # of the keyed lead of a longer prompt, so how much more is unknown)
    # The UTF-8 length of the text those bytes are part of (the prompt, or chat_text of the
    # messages): exact up to the keyed lead; past it, for chat, at least this (identity_lead)
    num_text_bytes: int = 0
    chunk_keys: tuple[bytes, ...] = ()  # the prompt's chunk keys (no session id), kept at commit

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        conversation: Conversation | None,
        by: Recognised | None = None,
        holder_url: str | None = None,
        num_shared_bytes: int | None = None,
        num_text_bytes: int = 0,
        chunk_keys: tuple[bytes, ...] = (),
    ) -> None:
        object.__setattr__(self, "conversation", conversation)
        object.__setattr__(self, "by", by)
        object.__setattr__(self, "holder_url", holder_url)
        object.__setattr__(self, "num_shared_bytes", num_shared_bytes)
        object.__setattr__(self, "num_text_bytes", num_text_bytes)
        object.__setattr__(self, "chunk_keys", chunk_keys)


def identity_lead(identity: Identity, keyed_bytes: int) -> tuple[bytes, int] | None:
    """A request without a session id: the first keyed_bytes of the text it is chunked by (its
    prompt, or chat_text of its messages) and that whole text's length in UTF-8 bytes. The length is
    exact up to keyed_bytes; a longer chat counts at least that, its characters counted for bytes
    past the lead, since encoding the whole would take a step of the event loop that grows with the
    body. None for a session id or no text."""
    if identity.session_id is not None:
        return None
    if identity.prompt_bytes is not None:
        prompt = identity.prompt_bytes
        return prompt[:keyed_bytes], len(prompt)
    if identity.chat_messages is not None:
        text = chat_text(identity.chat_messages, keyed_bytes + 1)  # a byte past the lead: is there more?
        if len(text) <= keyed_bytes:
            return text, len(text)
        return text[:keyed_bytes], max(len(text), chat_text_chars(identity.chat_messages))
    return None


def session_id_of(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    """The client's session id: the X-Session-ID header, else the body's conversation_id."""
    header = headers.get(SESSION_HEADER)
    if header:
        return header
    value = body.get(SESSION_BODY_FIELD)
    return value if isinstance(value, str) and value else None


class ConversationStore:
    """Conversations by key, LRU-bounded with an idle TTL, with history recognition indexes."""

    def __init__(
        self,
        max_conversations: int,
        idle_ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        chunks: ChunkIndex | None = None,
    ) -> None:
        self.max_conversations = max_conversations
        self.idle_ttl_s = idle_ttl_s
        self._clock = clock
        self._by_key: OrderedDict[str, Conversation] = OrderedDict()
        self._by_chat_digest: dict[bytes, str] = {}
        self.chunks = chunks if chunks is not None else ChunkIndex(CHUNK_BYTES, CHUNKS_PER_INSTANCE)
        self._prompts = PrefixIndex(self.chunks.chunk_bytes)
        self._next_serial = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def clear(self) -> int:
        """Forget every conversation; returns how many there were."""
        count = len(self._by_key)
        self._by_key.clear()
        self._by_chat_digest.clear()
        self._prompts.clear()
        self.chunks.clear()
        return count

    def find(self, identity: Identity, now_s: float | None = None) -> Conversation | None:
        """The known conversation this request continues, or None for a new one (now_s: the clock's)."""
        return self.recognise(identity, now_s).conversation

    def recognise(self, identity: Identity, now_s: float | None = None) -> Recognition:
        """The conversation this request continues and how it was found (now_s: the clock's)."""
        self._expire(self._clock() if now_s is None else now_s)
        if identity.session_id is not None:
            conversation = self._by_key.get("s:" + identity.session_id)
            return Recognition(conversation, "session" if conversation is not None else None)
        # Only the keyed lead is looked at: this runs in one step of the proxy's event loop.
        keyed_bytes = self.chunks.keyed_bytes
        keys, num_text_bytes = self._lead_keys(identity)
        conversation = self._find_by_history(identity, keys, num_text_bytes)
        if conversation is not None:
            return Recognition(conversation, "history", num_text_bytes=num_text_bytes, chunk_keys=keys)
        match = self.chunks.longest_match(keys)
        found = self._by_key.get(match.owner) if match is not None and isinstance(match.owner, str) else None
        if match is None or found is None:
            return Recognition(None, num_text_bytes=num_text_bytes, chunk_keys=keys)
        whole_lead = num_text_bytes > keyed_bytes and match.num_chunks == len(keys)
        num_shared = None if whole_lead else match.num_bytes
        return Recognition(found, "chunks", match.instance_url, num_shared, num_text_bytes, keys)

    def _lead_keys(self, identity: Identity) -> tuple[tuple[bytes, ...], int]:
        """The chunk keys of a request's keyed lead and its text's length (identity_lead)."""
        lead = identity_lead(identity, self.chunks.keyed_bytes)
        if lead is None:
            return (), 0
        text, num_text_bytes = lead
        return tuple(self.chunks.keys_of(text)), num_text_bytes

    def _find_by_history(
        self, identity: Identity, keys: tuple[bytes, ...], num_text_bytes: int
    ) -> Conversation | None:
        """The conversation whose whole previous prompt + answer this request starts with (keys: the
        prompt's chunk keys; num_text_bytes: its text's length). Histories longer than the keyed
        lead are not kept (_remember_history), so a longer chat is not digested whole here either."""
        if identity.chat_messages is not None:
            if len(identity.chat_messages) < 2:
                return None
            if num_text_bytes > self.chunks.keyed_bytes:
                return None
            key = self._by_chat_digest.get(chat_digest(identity.chat_messages[:-1]))
            return self._by_key.get(key) if key is not None else None
        if identity.prompt_bytes is not None:
            owner = self._prompts.longest_prefix_owner(identity.prompt_bytes, keys)
            return self._by_key.get(owner) if isinstance(owner, str) else None
        return None

    def commit_turn(
        self, identity: Identity, recognition: Recognition, outcome: TurnOutcome, now_s: float | None = None
    ) -> Conversation:
        """Record a completed turn; returns its conversation's state. recognition: what recognise()
        returned for identity (its conversation, None for a new one, and the prompt's chunk keys and
        text length, made once per turn there)."""
        now = self._clock() if now_s is None else now_s
        conversation = recognition.conversation
        if conversation is None:
            conversation = self._create(identity)
        elif conversation.key not in self._by_key:
            self._by_key[conversation.key] = conversation  # evicted while its turn ran: keep it
        conversation.num_turns += 1
        conversation.holder_url = outcome.holder_url
        conversation.num_prompt_tokens = outcome.num_prompt_tokens
        conversation.num_output_tokens = outcome.num_output_tokens
        conversation.last_used_s = now
        self._by_key.move_to_end(conversation.key)
        self._remember_history(conversation, identity, outcome.answer_text, recognition.num_text_bytes)
        self._remember_chunks(conversation, identity, outcome.holder_url, recognition.chunk_keys)
        self._expire(now)
        return conversation

    def _remember_chunks(
        self, conversation: Conversation, identity: Identity, holder_url: str, keys: tuple[bytes, ...]
    ) -> None:
        if identity.session_id is not None:
            return
        if keys:
            self.chunks.add(conversation.key, holder_url, keys, new_owner=not conversation.in_chunk_index)
            conversation.in_chunk_index = True

    def _create(self, identity: Identity) -> Conversation:
        if identity.session_id is not None:
            key = "s:" + identity.session_id
        else:
            self._next_serial += 1
            key = f"h:{self._next_serial}"
        conversation = self._by_key.get(key) or Conversation(key)
        self._by_key[key] = conversation
        return conversation

    def _remember_history(
        self, conversation: Conversation, identity: Identity, answer: str | None, num_text_bytes: int
    ) -> None:
        if identity.session_id is not None:
            return  # the client names it every turn; no need to recognise it
        self._forget_history(conversation)
        # A history longer than the keyed lead is not kept: digesting it would take a step of the
        # event loop that grows with the body. Its next turn is found by its leading chunks.
        max_bytes = self.chunks.keyed_bytes
        if answer is None or num_text_bytes > max_bytes:
            return
        if identity.chat_messages is not None:
            digest = chat_digest(identity.chat_messages, answer)
            conversation.chat_key = digest
            self._by_chat_digest[digest] = conversation.key
        elif identity.prompt_bytes is not None:
            text = completion_history_text(identity.prompt_bytes, answer)
            if len(text) <= max_bytes:  # its bucket's key is among the keys of the next prompt's lead
                self._prompts.add(conversation.key, text)

    def _forget_history(self, conversation: Conversation) -> None:
        if conversation.chat_key is not None:
            if self._by_chat_digest.get(conversation.chat_key) == conversation.key:
                del self._by_chat_digest[conversation.chat_key]
            conversation.chat_key = None
        self._prompts.remove(conversation.key)

    def _expire(self, now: float) -> None:
        while self._by_key:
            oldest = next(iter(self._by_key.values()))
            too_many = len(self._by_key) > self.max_conversations
            if not too_many and now - oldest.last_used_s <= self.idle_ttl_s:
                return
            self._forget_history(oldest)
            del self._by_key[oldest.key]
