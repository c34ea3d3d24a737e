"""History recognition indexes: chat digests and the longest known prompt prefix."""

from __future__ import annotations

from ppd.proxy.history import HEAD_BYTES, PrefixIndex, chat_digest


def test_chat_digest_of_history_plus_answer_equals_digest_of_the_next_requests_earlier_messages() -> None:
    first = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    following = [
        *first,
        {"role": "assistant", "content": " hello there"},
        {"role": "user", "content": "more"},
    ]
    assert chat_digest(first, " hello there") == chat_digest(following[:-1])


def test_chat_digest_differs_by_role_content_and_order() -> None:
    a = [{"role": "user", "content": "x y"}]
    assert chat_digest(a) != chat_digest([{"role": "system", "content": "x y"}])
    assert chat_digest(a) != chat_digest([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}])
    assert chat_digest([{"role": "user", "content": [{"type": "text", "text": "q"}]}]) != chat_digest(a)


def test_longest_known_prefix_wins_for_long_texts() -> None:
    index = PrefixIndex()
    base = b"w1 " * 200  # longer than HEAD_BYTES
    index.add("short", base)
    index.add("long", base + b"w2 w3")
    assert index.longest_prefix_owner(base + b"w2 w3 w4") == "long"
    assert index.longest_prefix_owner(base + b"w9") == "short"
    assert index.longest_prefix_owner(b"w0 " + base) is None


def test_short_texts_are_found_too() -> None:
    index = PrefixIndex()
    index.add("a", b"w1 w2")
    index.add("b", b"w1 w2 w3 w4")
    assert len(b"w1 w2 w3 w4") < HEAD_BYTES
    assert index.longest_prefix_owner(b"w1 w2 w3 w4 w5") == "b"
    assert index.longest_prefix_owner(b"w1 w2 w7") == "a"
    assert index.longest_prefix_owner(b"w1") is None


def test_add_replaces_and_remove_forgets() -> None:
    index = PrefixIndex()
    index.add("a", b"w1 w2")
    index.add("a", b"w5 w6 " * 100)
    assert index.longest_prefix_owner(b"w1 w2 w3") is None
    assert index.longest_prefix_owner(b"w5 w6 " * 101) == "a"
    index.remove("a")
    assert len(index) == 0
    assert index.longest_prefix_owner(b"w5 w6 " * 101) is None


def test_same_exact_short_text_newer_owner_wins() -> None:
    index = PrefixIndex()
    index.add("a", b"w1")
    index.add("b", b"w1")
    assert index.longest_prefix_owner(b"w1 w2") == "b"
    assert len(index) == 1
