"""Recognition by leading chunks (router/chunks.py): keys, the common head, the LRU cap, the store and
the router using it when neither a session id nor the whole history names the conversation."""

from __future__ import annotations

import json
import re

import pytest

from helpers import commit
from ppd.router import conversations as conversations_module
from ppd.router.chunks import (
    ChunkIndex,
    chat_text,
    chat_text_chars,
    chunk_keys,
    json_lead,
    min_json_chars,
    prefix_key,
)
from ppd.router.conversations import ConversationStore, Identity, TurnOutcome
from ppd.router.core import Router, RouterConfig, shared_tokens
from ppd.router.records import TurnRecord

CHUNK = 16
SYSTEM = b"S" * (3 * CHUNK)  # the system prompt every conversation starts with: three whole chunks
LEAD = 256 * CHUNK  # the keyed lead: CHUNK with the default lead would make more keys than allowed


def whole_json(value: object) -> str:
    """value's whole one-line JSON, as the router renders parts that are not text."""
    return json.dumps(value, ensure_ascii=False, default=repr)


def whole_chat_text(messages: list) -> bytes:  # type: ignore[type-arg]
    """The whole text chat_text makes the lead of: role NUL content SOH per message; content parts
    joined by STX, each its text or its JSON (an independent statement of the format)."""

    def content_text(content: object) -> str:
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            return whole_json(content)
        return "\x02".join(
            p["text"] if isinstance(p, dict) and isinstance(p.get("text"), str) else whole_json(p)
            for p in content
        )

    return b"".join(
        f"{m.get('role', '')}\x00{content_text(m.get('content'))}\x01".encode("utf-8", "surrogatepass")
        for m in messages
    )


def words(tag: str, num_bytes: int) -> bytes:
    """num_bytes of text unique to `tag`."""
    unit = f"<{tag}>".encode()
    return (unit * (num_bytes // len(unit) + 1))[:num_bytes]


def test_keys_are_chained_whole_chunks() -> None:
    a = chunk_keys(b"x" * 40 + b"tail", 16)
    assert len(a) == 2  # the trailing 12 bytes are no whole chunk: no key
    b = chunk_keys(b"x" * 32 + b"y" * 16, 16)
    assert b[:2] == a[:2] and len(b) == 3
    # a key names its whole prefix: the same chunk after a different prefix has another key
    assert chunk_keys(b"a" * 16 + b"z" * 16, 16)[1] != chunk_keys(b"b" * 16 + b"z" * 16, 16)[1]
    with pytest.raises(ValueError):
        chunk_keys(b"x", 0)


def test_a_prefix_key_is_the_chunk_key_of_that_prefix() -> None:
    # the history index buckets a known text by prefix_key; the lookup meets it among chunk_keys
    data = bytes(range(256)) * 3
    keys = chunk_keys(data, 16)
    assert [prefix_key(data, (k + 1) * 16) for k in range(len(keys))] == keys
    assert prefix_key(memoryview(data), 64) == keys[3]


def test_chat_text_of_a_next_turn_extends_the_previous_turns() -> None:
    first = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    later = [*first, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    assert chat_text(later, LEAD).startswith(chat_text(first, LEAD))
    assert chat_text(first, LEAD) == whole_chat_text(first)


class RenderedPart:
    """A content part the router can only render by repr() (json.dumps' default): each rendering is
    counted, on the pure and the compiled build alike (no monkeypatching of module functions)."""

    def __init__(self, renderings: list[int]) -> None:
        self.renderings = renderings

    def __repr__(self) -> str:
        self.renderings.append(1)
        return "p" * 9  # as JSON: 11 characters, 12 with the parts' separator


def test_each_message_is_made_only_as_far_as_what_is_left_of_the_lead() -> None:
    # a message after others is rendered up to the lead's remainder, not up to the whole lead again
    renderings: list[int] = []
    parts = [RenderedPart(renderings) for _ in range(1000)]
    messages = [{"role": "user", "content": "t" * 900}, {"role": "user", "content": parts}]
    whole = whole_chat_text(messages)
    renderings.clear()
    assert chat_text(messages, 1000) == whole[:1000]
    num_left = 1000 - len("user\x00" + "t" * 900 + "\x01")  # 94 (it was the whole 1,000 again)
    assert len(renderings) == -(-num_left // 12)  # 8 parts reach into those 94 characters: no more


def test_longest_match_beyond_the_common_head() -> None:
    index = ChunkIndex(CHUNK, 1000, keyed_bytes=LEAD)
    a = SYSTEM + words("a", 5 * CHUNK)
    b = SYSTEM + words("b", 5 * CHUNK)
    index.add("A", "d0", index.keys_of(a), new_owner=True)
    index.add("B", "d1", index.keys_of(b), new_owner=True)
    # A's next turn repeats A's first 4 own chunks, then differs (its last partial part changed)
    match = index.longest_match(index.keys_of(SYSTEM + words("a", 4 * CHUNK) + words("z", 3 * CHUNK)))
    assert match is not None and (match.owner, match.instance_url, match.num_chunks) == ("A", "d0", 7)
    assert match.num_bytes == 7 * CHUNK
    # a new conversation sharing only the system prompt (carried by both: common) matches nothing
    assert index.longest_match(index.keys_of(SYSTEM + words("c", 5 * CHUNK))) is None
    assert index.longest_match(index.keys_of(words("d", 8 * CHUNK))) is None


def test_a_key_carried_by_more_than_the_common_share_is_head() -> None:
    index = ChunkIndex(CHUNK, 1000, common_share=0.5, keyed_bytes=LEAD)
    shared = SYSTEM + words("app", 2 * CHUNK)
    for owner in "ABC":
        index.add(owner, "d0", index.keys_of(shared + words(owner, 3 * CHUNK)), new_owner=True)
    index.add("D", "d0", index.keys_of(SYSTEM + words("D", 5 * CHUNK)), new_owner=True)
    # the app prefix: 3 of 4 conversations, common; A's own text beyond it is not
    assert index.longest_match(index.keys_of(shared + words("E", 3 * CHUNK))) is None
    match = index.longest_match(index.keys_of(shared + words("A", 3 * CHUNK)))
    assert match is not None and match.owner == "A"


def test_the_cap_evicts_prefix_tails_first() -> None:
    index = ChunkIndex(CHUNK, 8, keyed_bytes=LEAD)
    old = words("old", 6 * CHUNK)
    index.add("A", "d0", index.keys_of(old), new_owner=True)
    index.add("B", "d1", index.keys_of(words("new", 4 * CHUNK)), new_owner=True)
    assert len(index) == 8
    # A's last two chunks went, its leading four are still known
    match = index.longest_match(index.keys_of(old))
    assert match is not None and (match.owner, match.num_chunks) == ("A", 4)


def outcome(holder: str, answer: str = " w9 w8") -> TurnOutcome:
    return TurnOutcome(holder, 100, 2, answer)


def test_store_recognises_an_edited_history_by_chunks_after_the_whole_history() -> None:
    conversations = ConversationStore(100, 600.0, chunks=ChunkIndex(CHUNK, 1000, keyed_bytes=LEAD))
    first_a = Identity(prompt_bytes=SYSTEM + words("a", 5 * CHUNK) + b"partial")
    commit(conversations, first_a, outcome("d0"))
    commit(conversations, Identity(prompt_bytes=SYSTEM + words("b", 5 * CHUNK)), outcome("d1"))
    # whole previous prompt + answer first: "history"
    whole = conversations.recognise(Identity(prompt_bytes=first_a.prompt_bytes + b" w9 w8 more"))
    assert whole.by == "history" and whole.conversation is not None and whole.chunk_keys
    # the partial tail changed: no whole-history match, the chunks find A and its holder
    edited = Identity(prompt_bytes=SYSTEM + words("a", 5 * CHUNK) + b"PARTIAL, edited" * 4)
    found = conversations.recognise(edited)
    assert found.by == "chunks" and found.conversation is whole.conversation
    assert (found.holder_url, found.num_shared_bytes) == ("d0", 8 * CHUNK)
    # only the system prompt in common: a new conversation
    assert conversations.recognise(Identity(prompt_bytes=SYSTEM + words("c", 9 * CHUNK))).conversation is None
    # a session id is never looked up by text, and its prompts are not indexed
    assert conversations.recognise(Identity(session_id="s", prompt_bytes=None)).chunk_keys == ()


def test_chat_without_history_match_is_recognised_by_chunks() -> None:
    conversations = ConversationStore(100, 600.0, chunks=ChunkIndex(CHUNK, 1000, keyed_bytes=LEAD))
    system = {"role": "system", "content": "S" * 60}
    for tag in "xy":
        messages = [system, {"role": "user", "content": words(tag, 80).decode()}]
        commit(conversations, Identity(chat_messages=messages), outcome("d0", answer="fine"))
    # the client re-rendered the answer ("fine" -> "Fine."): the digest misses, the chunks do not
    later = [
        system,
        {"role": "user", "content": words("x", 80).decode()},
        {"role": "assistant", "content": "Fine."},
        {"role": "user", "content": "go on"},
    ]
    found = conversations.recognise(Identity(chat_messages=later))
    assert found.by == "chunks" and found.conversation is not None and found.conversation.num_turns == 1


PPD = RouterConfig(
    "ppd", prefill_urls=("p0",), decode_urls=("d0", "d1"), history_chunk_bytes=CHUNK,
    history_chunks_per_instance=1000, history_keyed_bytes=CHUNK * 4096,
)  # fmt: skip


def serve(router: Router, prompt: bytes, now_s: float) -> TurnRecord:
    """One completions turn without a session id, carried out as a driver would."""
    record = TurnRecord(started_s=now_s)
    num_tokens = prompt.count(b" ") + 1
    route = router.decide(record, Identity(prompt_bytes=prompt), num_tokens, now_s)
    if route.prefill_url is not None:
        router.finish(router.begin(record, "prefill", now_s), now_s, succeeded=True)
    hop = router.begin(record, "target", now_s)
    router.finish(hop, now_s + 0.5, succeeded=True, last_byte=True)
    record.usage = {"prompt_tokens": num_tokens, "completion_tokens": 5}
    router.commit(record, now_s + 0.5, answer_text="w1 w2 w3 w4 w5")
    return record


def test_router_sends_a_chunk_recognised_turn_to_the_prefix_holder() -> None:
    router = Router(PPD)
    system = b"w0 " * 16  # 48 bytes
    first = {tag: serve(router, system + words(tag, 160) + b" w7", now_s=1.0) for tag in ("a", "b", "c")}
    # a's next turn: its history's last part edited, so only the chunks name it
    second = serve(router, system + words("a", 150) + b" edited w8 w9 w10", now_s=5.0)
    assert second.recognition is not None and second.recognition.by == "chunks"
    assert second.turn is not None and second.turn.number == 2
    assert second.route is not None and second.route.kind == "ppd-direct"
    assert second.route.target_url == first["a"].route.target_url if first["a"].route else False
    # the history is what the matched chunks cover (12 of the prompt's ~14 chunks), not all of it
    num_prompt = second.turn.num_prompt_tokens
    assert 0 < second.turn.num_history_tokens < num_prompt
    # a fresh conversation with the same system prompt is a first turn (P -> D)
    fresh = serve(router, system + words("new", 160), now_s=6.0)
    assert fresh.turn is not None and fresh.turn.number == 1


def test_only_the_keyed_lead_is_keyed() -> None:
    data = words("lead", 10 * CHUNK)
    assert chunk_keys(data, CHUNK, max_bytes=4 * CHUNK + 3) == chunk_keys(data, CHUNK)[:4]
    index = ChunkIndex(CHUNK, 1000, keyed_bytes=4 * CHUNK)
    assert index.keys_of(data) == chunk_keys(data, CHUNK)[:4]
    with pytest.raises(ValueError, match=r"--history-keyed-bytes \(15\) must be at least --history-chunk"):
        ChunkIndex(CHUNK, 1000, keyed_bytes=CHUNK - 1)


@pytest.mark.parametrize(
    ("chunk_bytes", "per_instance", "keyed_bytes", "message"),
    [
        (0, 10, 1024, "--history-chunk-bytes must be >= 1, not 0"),
        (64, 0, 1024, "--history-chunks-per-instance must be >= 1, not 0"),
        (64, 10, 32, "--history-keyed-bytes (32) must be at least --history-chunk-bytes (64)"),
        (1, 10, 1 << 20, "--history-keyed-bytes / --history-chunk-bytes (1048576 / 1) must be at most 4096"),
    ],
)
def test_every_holder_of_the_history_settings_refuses_them_with_one_message_naming_the_flags(
    chunk_bytes: int, per_instance: int, keyed_bytes: int, message: str
) -> None:
    from ppd.bench.workloads import builtin_workload
    from ppd.errors import UsageError
    from ppd.fleet import FleetConfig, fleet_topology
    from ppd.fleet.config import validate
    from ppd.proxy.config import ProxyConfig

    settings = {"history_chunk_bytes": chunk_bytes, "history_chunks_per_instance": per_instance,
                "history_keyed_bytes": keyed_bytes}  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(message)):
        ChunkIndex(chunk_bytes, per_instance, keyed_bytes=keyed_bytes)
    with pytest.raises(ValueError, match=re.escape(message)):
        RouterConfig("replication", replica_urls=("r0",), **settings)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=re.escape(message)):
        ProxyConfig(mode="replication", replica_urls=("http://a:1",), **settings)  # type: ignore[arg-type]
    fleet = FleetConfig(fleet_topology("1r"), "replication", builtin_workload("W1", 2), 1.0, **settings)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=re.escape(message)):
        validate(fleet)


def test_chat_text_lead_is_the_whole_texts_start() -> None:
    messages = [
        {"role": "system", "content": "s" * 40},
        {"role": "user", "content": [{"type": "text", "text": "t" * 50}, {"type": "image_url"}]},
        {"role": "user", "content": "u" * 500},
    ]
    whole = whole_chat_text(messages)
    for max_bytes in (1, 45, 100, 300, len(whole), 10 * len(whole)):
        assert chat_text(messages, max_bytes) == whole[:max_bytes]


def test_a_prompt_longer_than_the_lead_is_recognised_by_its_lead() -> None:
    lead = 8 * CHUNK
    conversations = ConversationStore(100, 600.0, chunks=ChunkIndex(CHUNK, 1000, keyed_bytes=lead))
    first = Identity(prompt_bytes=SYSTEM + words("a", 20 * CHUNK))
    commit(conversations, Identity(prompt_bytes=SYSTEM + words("b", 20 * CHUNK)), outcome("d1"))
    committed = commit(conversations, first, outcome("d0"))
    assert len(conversations.chunks) <= 2 * (lead // CHUNK)  # only the leads were keyed
    # the whole history is longer than the lead: not kept, so the next turn is found by its lead,
    # which it shares whole: how much more it shares is unknown (None), not the lead's bytes
    found = conversations.recognise(Identity(prompt_bytes=first.prompt_bytes + b" w9 w8 more"))
    assert found.by == "chunks" and found.conversation is committed
    assert (found.holder_url, found.num_shared_bytes, len(found.chunk_keys)) == ("d0", None, lead // CHUNK)
    # a prompt that leaves the conversation inside the lead shares what its keys say
    left = SYSTEM + words("a", 3 * CHUNK) + words("z", 30 * CHUNK)
    edited = conversations.recognise(Identity(prompt_bytes=left))
    assert edited.by == "chunks" and edited.num_shared_bytes == 6 * CHUNK


def test_a_chat_longer_than_the_lead_is_not_digested_whole() -> None:
    lead = 8 * CHUNK
    conversations = ConversationStore(100, 600.0, chunks=ChunkIndex(CHUNK, 1000, keyed_bytes=lead))
    short = [{"role": "user", "content": "hello there"}]
    commit(conversations, Identity(chat_messages=short), outcome("d0", answer="hi"))
    later_short = [*short, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "go"}]
    assert conversations.recognise(Identity(chat_messages=later_short)).by == "history"
    long = [{"role": "user", "content": words("x", 3 * lead).decode()}]
    committed = commit(conversations, Identity(chat_messages=long), outcome("d1", answer="ok"))
    later_long = [*long, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "go"}]
    found = conversations.recognise(Identity(chat_messages=later_long))
    assert found.by == "chunks" and found.conversation is committed and found.num_shared_bytes is None


def test_router_counts_a_whole_lead_match_as_the_whole_history() -> None:
    config = RouterConfig(
        "ppd", prefill_urls=("p0",), decode_urls=("d0", "d1"), history_chunk_bytes=CHUNK,
        history_chunks_per_instance=1000, history_keyed_bytes=8 * CHUNK,
    )  # fmt: skip
    router = Router(config)
    prompt = b"w0 " * 16 + words("a", 40 * CHUNK)
    serve(router, b"w0 " * 16 + words("b", 40 * CHUNK), now_s=0.5)  # another conversation
    first = serve(router, prompt, now_s=1.0)
    second = serve(router, prompt + b" w1 w2 w3 w4 w5 w6", now_s=5.0)
    assert second.recognition is not None and second.recognition.by == "chunks"
    assert second.turn is not None and first.turn is not None
    assert second.turn.num_history_tokens == first.turn.num_prompt_tokens + 5  # prompt + answer


def test_a_chat_lead_is_the_whole_texts_lead_whatever_part_is_large() -> None:
    big = "x" * 100_000
    cases = [
        [{"role": big, "content": "hi"}],  # a huge role
        [{"role": "user", "content": [{"type": "text", "text": big}, {"type": "text", "text": "tail"}]}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}, {"text": big}]}],
        [{"role": "system", "content": "s"}, {"role": "user", "content": big}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:," + big}}]}],
        [{"role": "user", "content": [{"type": "input_audio", big: {"data": big}}, {"text": "after"}]}],
        [{"role": "user", "content": {"odd": [big, 1.5, None, True]}}, {"role": "user", "content": "hi"}],
    ]
    for messages in cases:
        for max_bytes in (1, 7, 300, 4096):
            assert chat_text(messages, max_bytes) == whole_chat_text(messages)[:max_bytes]


def test_a_turn_measures_its_text_once() -> None:
    # recognise() measures the text and commit takes the figure from the record (it was measured
    # twice). Counted through the renderings of content parts (identity_lead makes the chat's lead
    # from them), not a monkeypatched identity_lead, which compiled callers do not look up by name.
    keyed_bytes = 64 * CHUNK
    config = RouterConfig(
        "ppd", prefill_urls=("p0",), decode_urls=("d0",), history_chunk_bytes=CHUNK,
        history_keyed_bytes=keyed_bytes,
    )  # fmt: skip
    router = Router(config)
    renderings: list[int] = []
    first = [{"role": "user", "content": [RenderedPart(renderings) for _ in range(1000)]}]
    second = [*first, {"role": "assistant", "content": "w1 w2"}, {"role": "user", "content": "more"}]
    measured = []
    for messages in (first, second):  # what one measure of each turn renders (past the lead: none)
        renderings.clear()
        lead = conversations_module.identity_lead(Identity(chat_messages=messages), keyed_bytes)
        assert lead is not None and lead[1] > keyed_bytes  # longer than the lead: no history digest
        measured.append(len(renderings))
    renderings.clear()
    for now_s, messages in ((1.0, first), (2.0, second)):
        record = TurnRecord(started_s=now_s)
        router.decide(record, Identity(chat_messages=messages), 100, now_s)
        router.finish(router.begin(record, "target", now_s), now_s + 0.5, succeeded=True, last_byte=True)
        record.usage = {"prompt_tokens": 100, "completion_tokens": 2}
        router.commit(record, now_s + 0.5, answer_text="w1 w2")
    assert measured[0] > 0 and len(renderings) == sum(measured)  # one measure per turn


def test_a_chat_texts_length_is_in_utf8_bytes_as_its_shared_prefix_is() -> None:
    # A match's shared bytes are whole chunks of the UTF-8 text: its length must count bytes too, or
    # non-ASCII chat looked shorter than it is and shared_tokens came out too large
    lead = 64 * CHUNK
    conversations = ConversationStore(100, 600.0, chunks=ChunkIndex(CHUNK, 1000, keyed_bytes=lead))
    first = [{"role": "user", "content": "é" * (4 * CHUNK)}]  # 134 bytes: 8 whole chunks, 70 characters
    other = [{"role": "user", "content": "other " * 20}]
    commit(conversations, Identity(chat_messages=other), outcome("d1"))
    commit(conversations, Identity(chat_messages=first), outcome("d0", answer="ok"))
    edited = {"role": "assistant", "content": "an edited answer"}
    later = [*first, edited, {"role": "user", "content": "ü" * CHUNK}]
    found = conversations.recognise(Identity(chat_messages=later))
    assert found.by == "chunks" and found.num_shared_bytes == 8 * CHUNK
    assert found.num_text_bytes == len(whole_chat_text(later))
    assert shared_tokens(found, 100) == round(100 * 8 * CHUNK / len(whole_chat_text(later)))
    # more characters than bytes fit in the lead: the chat is longer than the lead, so it is not
    # kept as a history (digested whole) and a match over its whole lead shares an unknown amount
    long = [{"role": "user", "content": "é" * (lead * 3 // 4)}]
    long_length = conversations.recognise(Identity(chat_messages=long)).num_text_bytes
    assert lead < long_length <= len(whole_chat_text(long))


def test_a_part_that_is_not_text_is_rendered_only_as_far_as_the_lead() -> None:
    # an image part is JSON; with a bound, its long strings are cut and the rest left, so a data URL
    # of megabytes costs the lead, not its size; the bounded text starts as the whole one does
    url = "data:image/png;base64," + "A" * 4_000_000
    part = {"type": "image_url", "image_url": {"url": url, "detail": "high"}, "n": [1, "é", None]}
    whole = whole_json(part)
    assert json.loads(whole) == part
    for max_chars in (0, 1, 5, 30, 1000):
        lead = json_lead(part, max_chars)
        assert lead[:max_chars] == whole[:max_chars] and len(lead) <= max_chars + 10
    many = [{"type": "image_url", "image_url": {"url": str(n)}} for n in range(100_000)]
    lead = json_lead(many, 1000)
    assert len(lead) < 1100 and whole_json(many)[:1000] == lead[:1000]
    messages = [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]
    assert len(chat_text(messages, 4096)) == 4096
    assert 4096 < chat_text_chars(messages) <= len(whole_chat_text(messages))


def test_a_chat_past_the_lead_is_measured_by_its_values_not_its_text() -> None:
    # past the lead a chat's length is a lower bound made without rendering anything: many large
    # parts cost a len() each (rendering each part up to the lead was the body's size again)
    big = "A" * 1_000_000
    images = [{"type": "image_url", "image_url": {"url": big}} for _ in range(8)]
    parts = [*images, {"type": "text", "text": big}]
    messages = [{"role": "user", "content": parts}, {"role": "user", "content": {"odd": [big, 1.5, None]}}]
    whole = len(whole_chat_text(messages))
    assert 10 * len(big) < chat_text_chars(messages) <= whole
    for value in (parts[0], {"é": ["x", {"k": 'q"uote'}], "n": 12345}, [], {}, "\n"):
        assert min_json_chars(value) <= len(whole_json(value))
    assert min_json_chars({"a": ["b", 1]}) == len(whole_json({"a": ["b", 1]}))
