"""History recognition indexes: chat digests and the longest known prompt prefix."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ppd.router.chunks import chunk_keys
from ppd.router.history import (
    HEAD_BYTES,
    PrefixIndex,
    chat_digest,
    completion_history_text,
    prefix_digests,
    text_digest,
)


def find(index: PrefixIndex, prompt: bytes) -> object:
    """The index's lookup with the prompt's chunk keys, as the router makes them (all of its chunks)."""
    return index.longest_prefix_owner(prompt, chunk_keys(prompt, index.chunk_bytes))


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
    assert find(index, base + b"w2 w3 w4") == "long"
    assert find(index, base + b"w9") == "short"
    assert find(index, b"w0 " + base) is None


def test_short_texts_are_found_too() -> None:
    index = PrefixIndex()
    index.add("a", b"w1 w2")
    index.add("b", b"w1 w2 w3 w4")
    assert len(b"w1 w2 w3 w4") < HEAD_BYTES
    assert find(index, b"w1 w2 w3 w4 w5") == "b"
    assert find(index, b"w1 w2 w7") == "a"
    assert find(index, b"w1") is None


def test_add_replaces_and_remove_forgets() -> None:
    index = PrefixIndex()
    index.add("a", b"w1 w2")
    index.add("a", b"w5 w6 " * 100)
    assert find(index, b"w1 w2 w3") is None
    assert find(index, b"w5 w6 " * 101) == "a"
    index.remove("a")
    assert len(index) == 0
    assert find(index, b"w5 w6 " * 101) is None


def test_same_exact_short_text_newer_owner_wins() -> None:
    index = PrefixIndex()
    index.add("a", b"w1")
    index.add("b", b"w1")
    assert find(index, b"w1 w2") == "b"
    assert len(index) == 1


def test_word_answers_are_joined_to_the_prompt_with_the_space_a_client_must_add() -> None:
    assert completion_history_text(b"w1 w2", "w3 w4") == b"w1 w2 w3 w4"
    assert completion_history_text(b"w1 w2 ", "w3") == b"w1 w2 w3"
    assert completion_history_text(b"Q:", " yes") == b"Q: yes"
    assert completion_history_text(b"w1", "") == b"w1"


def test_a_prompt_built_as_prompt_space_answer_space_new_words_is_recognised() -> None:
    index = PrefixIndex()
    prompt = b" ".join(b"w%d" % i for i in range(100))
    index.add("c", completion_history_text(prompt, "w7 w8 w9"))
    assert find(index, prompt + b" w7 w8 w9 w500 w501") == "c"


def test_prefix_digests_extend_one_hash_and_match_each_prefix_hashed_alone() -> None:
    data = bytes(range(256)) * 40
    lengths = [256, 257, 1000, 10240]
    assert prefix_digests(data, lengths) == {n: text_digest(data[:n]) for n in lengths}
    # From a start: the digests of data[start:n], keyed by n (what a bucket's proven chunks leave)
    assert prefix_digests(data, lengths, 200) == {n: text_digest(data[200:n]) for n in lengths}


def test_many_conversations_sharing_a_head_are_told_apart_by_length() -> None:
    # A bucket of 2,000 known texts of different lengths: the lookup hashes the prompt once
    # (prefix_digests), not once per length (benchmarks/hot_paths.py: 1,655 ms before, 4.3 ms after).
    index = PrefixIndex()
    head = b"s" * 300
    for owner in range(2000):
        index.add(owner, head + b"x" * (owner * 500))
    assert find(index, head + b"x" * (1234 * 500) + b" new words") == 1234
    assert find(index, head + b"y") == 0  # owner 0 knows the head alone
    assert find(index, b"t" * 300 + b"x" * 500) is None


def test_texts_of_whole_chunks_are_found_by_their_last_whole_chunk_key() -> None:
    index = PrefixIndex(chunk_bytes=64)
    system = b"s" * 200  # shared by every conversation: one bucket would hold them all by head
    for owner in range(50):
        index.add(owner, system + f"conversation {owner} ".encode() * 10 + b"tail")
    known = system + b"conversation 7 " * 10 + b"tail"
    assert find(index, known + b" w1 w2") == 7
    assert find(index, known) == 7  # the text itself
    assert find(index, known[:-1] + b"X w1") is None  # its partial last chunk differs
    lead_keys = chunk_keys(known + b" w1", 64, 256)  # keys of a 256-byte lead reach no known text
    assert index.longest_prefix_owner(known + b" w1", lead_keys) is None
    index.remove(7)
    assert find(index, known + b" w1") is None and len(index) == 49


class CountingHasher:
    """A blake2b hash that counts the bytes it is given: what a lookup hashes, on the pure and the
    compiled build alike (compiled code calls a module function directly, so monkeypatching
    prefix_digests counts nothing there; hashlib.blake2b is looked up at each call)."""

    def __init__(self, real: Any, hashed: list[int]) -> None:
        self.real, self.hashed, self.index = real, hashed, len(hashed)
        hashed.append(0)

    def update(self, data: bytes | memoryview) -> None:
        self.hashed[self.index] += len(data)
        self.real.update(data)

    def copy(self) -> Any:
        return self.real.copy()  # only read (digest), never extended

    def digest(self) -> bytes:
        return bytes(self.real.digest())


def test_each_bucket_a_prompt_hits_costs_less_than_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    # Conversations X[:m chunks] + "z" for many m all lie on one prompt's path of keys; each bucket
    # checked used to hash the prompt from its first byte (m buckets: m x the prompt's length).
    chunk = 64
    index = PrefixIndex(chunk_bytes=chunk)
    lead = bytes(range(256)) * 40  # 10,240 bytes: 160 chunks
    for m in range(1, 160):
        index.add(m, lead[: m * chunk] + b"z")
    prompt = lead + b"q"
    keys = chunk_keys(prompt, chunk)  # the router's keys, made before counting
    hashed: list[int] = []  # per hash made in the lookup: the bytes given to it
    real = hashlib.blake2b

    def counting(*args: Any, **kwargs: Any) -> CountingHasher:
        hasher = CountingHasher(real(**kwargs), hashed)
        for data in args:  # data given at construction
            hasher.update(data)
        return hasher

    monkeypatch.setattr(hashlib, "blake2b", counting)
    assert index.longest_prefix_owner(prompt, keys) is None  # every bucket hit, no tail matches
    monkeypatch.undo()
    assert len(hashed) == 159 and max(hashed) < chunk  # one hash per bucket, each less than a chunk
    assert find(index, lead[: 77 * chunk] + b"z more") == 77
