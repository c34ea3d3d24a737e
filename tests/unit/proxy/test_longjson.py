"""Large bodies parsed and re-encoded in steps: the same value and bytes as json.loads / json.dumps,
the same refusals, and the event loop turning while a long string is decoded."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from ppd.jsonshape import check_json_size
from ppd.openai_api import ApiError
from ppd.proxy import longjson
from ppd.proxy.longjson import JsonBody, long_string_spans, parse_in_steps
from ppd.proxy.relay import prefill_body

# Pieces that need care: escapes (an escaped quote, backslashes before a quote, a surrogate pair,
# \uXXXX), non-ASCII, spaces (where pieces are cut), quotes and brackets inside the text.
WORDS = ["w", "a b", 'say "hi"', "\\", "\\\\", "\n", "\t", "é", "日本", "😀", "\ud83d", "{[,]}", "\x00", "  "]


def long_text(num_words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(num_words))


def parse(raw: bytes) -> JsonBody:
    return asyncio.run(parse_in_steps(raw, check_json_size(raw, 1_000_000)))


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small bodies through the stepped path: every string over 64 bytes, pieces of ~256 bytes.
    monkeypatch.setattr(longjson, "LARGE_BODY_BYTES", 0)
    monkeypatch.setattr(longjson, "LONG_STRING_BYTES", 64)
    monkeypatch.setattr(longjson, "STEP_BYTES", 256)


def bodies(seed: int) -> list[dict[str, Any]]:
    text = long_text(400, seed)
    return [
        {"model": "m", "prompt": text, "max_tokens": 5, "stream": True, "stream_options": {"x": 1}},
        {"prompt": [text, "short", text + "!"], "n": 1},
        {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], "min_tokens": 2},
        {text: "a long key stays in the rest", "nested": [[text]], "prompt": "p"},
    ]


@pytest.mark.usefixtures("small_steps")
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_stepped_parse_equals_json_loads_and_encodes_the_same_value(seed: int, ensure_ascii: bool) -> None:
    for body in bodies(seed):
        raw = json.dumps(body, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
        parsed = parse(raw)
        assert parsed.value == json.loads(raw)
        for derive in (dict, lambda value: prefill_body(value, is_chat="messages" in value)):
            assert json.loads(parsed.encode(derive)) == derive(json.loads(raw))
        assert json.loads(parsed.without(("prompt",)).encode(dict)) == {
            key: value for key, value in json.loads(raw).items() if key != "prompt"
        }


@pytest.mark.usefixtures("small_steps")
def test_long_strings_are_spliced_back_as_the_client_sent_them() -> None:
    text = long_text(300, 7)
    raw = json.dumps({"prompt": text, "max_tokens": 9}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    parsed = parse(raw)
    assert len(parsed.literals) == 1 and bytes(parsed.literals[0]) in raw
    assert bytes(parsed.literals[0]) in parsed.encode(lambda body: prefill_body(body, is_chat=False))


@pytest.mark.usefixtures("small_steps")
@pytest.mark.parametrize(
    "literal",
    [
        b'"' + b"w " * 100 + b'\\x"',  # unknown escape
        b'"' + b"w " * 100 + b'\x01"',  # raw control character
        b'"' + b"w " * 100 + b'\xff"',  # not UTF-8
        b'"' + b"w " * 100 + b'\\u12"',  # short \u escape
        b'"' + b"w " * 100 + b"\\ " + b'w"',  # a backslash before a space
    ],
)
def test_a_broken_long_string_is_refused_as_json_loads_refuses_it(literal: bytes) -> None:
    raw = b'{"prompt": ' + literal + b"}"
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ApiError) as refused:
        parse(raw)
    assert refused.value.status == 400 and "not valid JSON" in refused.value.message


@pytest.mark.usefixtures("small_steps")
@pytest.mark.parametrize(
    "raw",
    [
        b'{"prompt": "' + b"w " * 100 + b'", }',  # broken after the long string
        b'{"prompt": "' + b"w " * 100,  # never closed
        b'[{"prompt": "' + b"w " * 100 + b'"}]',  # not an object
        b'{"prompt": \\"' + b"w " * 100 + b'"}',  # a backslash outside strings
    ],
)
def test_a_broken_body_around_long_strings_is_refused(raw: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        parse(raw)
    assert refused.value.status == 400


def test_spans_skip_escaped_quotes_and_keys() -> None:
    raw = b'{"k": "ab\\"cd\\\\", "' + b"x" * 10 + b'": "' + b"y" * 10 + b'"}'
    spans = asyncio.run(long_string_spans(raw, 8))
    assert [raw[start:stop] for start, stop in spans] == [b'"ab\\"cd\\\\"', b'"' + b"y" * 10 + b'"']


def test_the_event_loop_turns_while_a_long_prompt_is_decoded() -> None:
    raw = json.dumps({"prompt": long_text(1_500_000, 1), "max_tokens": 3}).encode()  # ~6 MB

    async def count_turns() -> tuple[int, JsonBody]:
        num_turns = 0
        done = False

        async def ticker() -> None:
            nonlocal num_turns
            while not done:
                num_turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        parsed = await parse_in_steps(raw, check_json_size(raw, 10_000_000))
        done = True
        await task
        return num_turns, parsed

    num_turns, parsed = asyncio.run(count_turns())
    assert parsed.value == json.loads(raw)
    assert num_turns >= len(raw) // longjson.STEP_BYTES
