"""Answer capture from relayed SSE bytes and JSON bodies."""

from __future__ import annotations

import json

from ppd.proxy.capture import AnswerCapture


def sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def completion_chunk(text: str) -> bytes:
    return sse({"choices": [{"index": 0, "text": text, "finish_reason": None}], "usage": None})


def chat_chunk(content: str) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": content}}]})


USAGE = sse({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})


def test_completion_text_and_usage_across_arbitrary_splits() -> None:
    stream = (
        completion_chunk("w1")
        + completion_chunk(" w2")
        + completion_chunk(' "q"')
        + USAGE
        + b"data: [DONE]\n\n"
    )
    for step in (1, 7, len(stream)):
        capture = AnswerCapture(is_chat=False)
        for start in range(0, len(stream), step):
            capture.feed(stream[start : start + step])
        capture.finish()
        assert capture.text == 'w1 w2 "q"'
        assert capture.num_content_chunks == 3
        assert capture.usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_chat_deltas_with_escapes_and_role_only_chunk() -> None:
    capture = AnswerCapture(is_chat=True)
    capture.feed(sse({"choices": [{"delta": {"role": "assistant", "content": ""}}]}))
    capture.feed(chat_chunk("line\nbreak") + chat_chunk(" é"))
    capture.finish()
    assert capture.text == "line\nbreak é"
    assert capture.num_content_chunks == 2


def test_capture_text_off_still_counts_chunks() -> None:
    capture = AnswerCapture(is_chat=False, capture_text=False)
    capture.feed(completion_chunk("w1") + completion_chunk(" w2"))
    capture.finish()
    assert capture.text == "" and capture.num_content_chunks == 2


def test_json_bodies() -> None:
    completion = AnswerCapture(is_chat=False)
    completion.feed_json_body(
        json.dumps({"choices": [{"text": "w1 w2"}], "usage": {"completion_tokens": 2}}).encode()
    )
    assert completion.text == "w1 w2" and completion.usage == {"completion_tokens": 2}
    chat = AnswerCapture(is_chat=True)
    chat.feed_json_body(
        json.dumps({"choices": [{"message": {"role": "assistant", "content": "hi"}}]}).encode()
    )
    assert chat.text == "hi"
    broken = AnswerCapture(is_chat=True)
    broken.feed_json_body(b"not json")
    assert broken.text == "" and broken.usage is None


def test_long_streams_are_scanned_in_batches_without_losing_split_lines() -> None:
    capture = AnswerCapture(is_chat=False)
    chunks = [completion_chunk(f" w{i}") for i in range(3000)]  # well over one scan batch
    stream = b"".join(chunks)
    for start in range(0, len(stream), 1000):
        capture.feed(stream[start : start + 1000])
    capture.finish()
    assert capture.text == "".join(f" w{i}" for i in range(3000))
    assert capture.num_content_chunks == 3000


def test_text_that_looks_like_a_key_inside_a_string_is_not_an_answer() -> None:
    tricky = 'say "text":"x" \\ done'
    capture = AnswerCapture(is_chat=False)
    capture.feed(sse({"choices": [{"text": tricky, "logprobs": {"tokens": ['"text":"']}}]}))
    capture.finish()
    assert capture.text == tricky and capture.num_content_chunks == 1
