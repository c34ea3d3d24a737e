"""The conversation store: identity, commit on completion, LRU cap, idle TTL, clear."""

from __future__ import annotations

from helpers import commit
from ppd.router.conversations import ConversationStore, Identity, TurnOutcome, session_id_of


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def outcome(holder: str = "http://d1", answer: str | None = " w9 w8", prompt_tokens: int = 10) -> TurnOutcome:
    return TurnOutcome(holder, prompt_tokens, 2, answer)


def store(max_conversations: int = 100, ttl_s: float = 60.0) -> tuple[ConversationStore, Clock]:
    clock = Clock()
    return ConversationStore(max_conversations, ttl_s, clock), clock


def test_session_id_from_header_first_then_body() -> None:
    assert session_id_of({"X-Session-ID": "h"}, {"conversation_id": "b"}) == "h"
    assert session_id_of({}, {"conversation_id": "b"}) == "b"
    assert session_id_of({}, {"conversation_id": 7}) is None
    assert session_id_of({}, {}) is None


def test_session_conversation_counts_turns_and_remembers_holder() -> None:
    conversations, _ = store()
    identity = Identity(session_id="s1")
    assert conversations.find(identity) is None
    commit(conversations, identity, outcome("http://d2"))
    found = conversations.find(identity)
    assert found is not None and (found.num_turns, found.holder_url) == (1, "http://d2")
    commit(conversations, identity, outcome("http://d2", prompt_tokens=30), found)
    assert found.num_turns == 2 and found.num_history_tokens == 32


def test_completion_prompt_recognised_by_prompt_plus_answer_prefix() -> None:
    conversations, _ = store()
    first = Identity(prompt_bytes=b"w1 w2 w3")
    commit(conversations, first, outcome(answer=" w9 w8"))
    second = Identity(prompt_bytes=b"w1 w2 w3 w9 w8 w4 w5")
    found = conversations.find(second)
    assert found is not None and found.num_turns == 1
    commit(conversations, second, outcome(answer=" w7"), found)
    assert conversations.find(Identity(prompt_bytes=b"w1 w2 w3 w9 w8 w4 w5 w7 w6")) is found
    # the old history key is gone: a retry of turn 2 would start a new conversation
    assert conversations.find(Identity(prompt_bytes=b"w1 w2 w3 w9 w8 w0")) is None


def test_chat_recognised_by_earlier_messages() -> None:
    conversations, _ = store()
    messages = [{"role": "user", "content": "w1 w2"}]
    commit(conversations, Identity(chat_messages=messages), outcome(answer="w5 w6"))
    following = [*messages, {"role": "assistant", "content": "w5 w6"}, {"role": "user", "content": "w3"}]
    found = conversations.find(Identity(chat_messages=following))
    assert found is not None and found.num_turns == 1
    assert conversations.find(Identity(chat_messages=[{"role": "user", "content": "w1 w2"}])) is None


def test_answer_not_captured_means_no_recognition() -> None:
    conversations, _ = store()
    commit(conversations, Identity(prompt_bytes=b"w1"), outcome(answer=None))
    assert len(conversations) == 1
    assert conversations.find(Identity(prompt_bytes=b"w1 w2")) is None


def test_lru_cap_evicts_the_least_recently_used() -> None:
    conversations, clock = store(max_conversations=2)
    for name in ("a", "b"):
        commit(conversations, Identity(session_id=name), outcome())
        clock.now_s += 1
    a = conversations.find(Identity(session_id="a"))
    commit(conversations, Identity(session_id="a"), outcome(), a)  # a is now the most recent
    commit(conversations, Identity(session_id="c"), outcome())
    assert len(conversations) == 2
    assert conversations.find(Identity(session_id="b")) is None
    assert conversations.find(Identity(session_id="a")) is not None


def test_idle_ttl_forgets_conversations_and_their_history_keys() -> None:
    conversations, clock = store(ttl_s=10.0)
    commit(conversations, Identity(prompt_bytes=b"w1"), outcome(answer=" w2"))
    clock.now_s = 11.0
    assert conversations.find(Identity(prompt_bytes=b"w1 w2 w3")) is None
    assert len(conversations) == 0


def test_clear_forgets_everything() -> None:
    conversations, _ = store()
    commit(conversations, Identity(session_id="a"), outcome())
    commit(conversations, Identity(prompt_bytes=b"w1"), outcome(answer=" w2"))
    assert conversations.clear() == 2
    assert len(conversations) == 0
    assert conversations.find(Identity(prompt_bytes=b"w1 w2 w3")) is None


def test_a_conversation_evicted_during_its_turn_keeps_its_turn_count() -> None:
    conversations, _ = store(max_conversations=1)
    commit(conversations, Identity(session_id="a"), outcome())
    a = conversations.find(Identity(session_id="a"))
    commit(conversations, Identity(session_id="b"), outcome())  # evicts a
    commit(conversations, Identity(session_id="a"), outcome(), a)
    again = conversations.find(Identity(session_id="a"))
    assert again is not None and again.num_turns == 2
