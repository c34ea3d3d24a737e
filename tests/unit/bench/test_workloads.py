from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppd.bench.config import TurnShape
from ppd.bench.workloads import (
    chat_messages,
    completions_prompt,
    load_conversation_file,
    parse_workloads,
    random_word_texts,
    request_body,
)
from ppd.errors import UsageError
from ppd.tokens import encode


def test_builtin_and_custom_workloads() -> None:
    w1, w4 = parse_workloads("W1,w4", num_turns=3)
    assert w1.name == "W1" and w1.conversations == ((TurnShape(512, 256),) * 3,)
    assert w4.conversations == ((TurnShape(8192, 64),) * 3,)
    assert [w.name for w in parse_workloads("all", 2)] == ["W1", "W2", "W3", "W4"]
    (custom,) = parse_workloads("100/7", 1)
    assert custom.name == "100x7" and custom.conversations == ((TurnShape(100, 7),),)


def test_unknown_workload_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="W1, W2"):
        parse_workloads("W9", 2)


def test_sharegpt_file_gives_per_turn_lengths(tmp_path: Path) -> None:
    path = tmp_path / "chats.json"
    path.write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "a b c"},
                        {"from": "gpt", "value": "d e"},
                        {"from": "human", "value": "f"},
                        {"from": "gpt", "value": "g h i j"},
                        {"from": "human", "value": "unanswered"},
                    ]
                },
                {
                    "conversations": [
                        {"from": "gpt", "value": "starts with gpt"},
                        {"from": "human", "value": ""},
                        {"from": "gpt", "value": ""},
                    ]
                },
                {"conversations": []},
                {"id": "no conversations"},
            ]
        )
    )
    workload = load_conversation_file(path)
    assert workload.name == "chats" and workload.source == str(path)
    assert workload.conversations == (
        (TurnShape(3, 2), TurnShape(1, 4)),
        (TurnShape(1, 1),),
    )
    assert parse_workloads(str(path), 2)[0] == workload


def test_bad_conversation_files_are_usage_errors(tmp_path: Path) -> None:
    not_json = tmp_path / "a.json"
    not_json.write_text("{")
    empty = tmp_path / "b.json"
    empty.write_text("[]")
    for path in (not_json, empty):
        with pytest.raises(UsageError, match=str(path)):
            load_conversation_file(path)


def test_random_texts_have_exact_token_counts_and_are_seeded() -> None:
    texts = random_word_texts([512, 1, 8192], seed=5)
    assert [len(encode(text)) for text in texts] == [512, 1, 8192]
    assert all(word.startswith("w") for word in texts[0].split())
    assert texts == random_word_texts([512, 1, 8192], seed=5)
    assert texts[0] != random_word_texts([512], seed=6)[0]


def test_history_grows_turn_by_turn() -> None:
    users = ["w1 w2", "w3", "w4 w5"]
    answers = [" w9 w8", "w7 "]
    assert completions_prompt(users[:1], []) == "w1 w2"
    assert completions_prompt(users[:2], answers[:1]) == "w1 w2 w9 w8 w3"
    turn3 = completions_prompt(users, answers)
    assert turn3 == completions_prompt(users[:2], answers[:1]) + " " + "w7" + " " + "w4 w5"
    assert chat_messages(users[:2], answers[:1]) == [
        {"role": "user", "content": "w1 w2"},
        {"role": "assistant", "content": "w9 w8"},
        {"role": "user", "content": "w3"},
    ]


def test_request_body_fixes_output_length_and_streams_usage() -> None:
    body = request_body("completions", "m", ["w1"], [], 64)
    assert body == {
        "model": "m",
        "prompt": "w1",
        "max_tokens": 64,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chat = request_body("chat", "m", ["w1"], [], 3)
    assert chat["messages"] == [{"role": "user", "content": "w1"}] and "prompt" not in chat


def test_request_body_sends_temperature_only_when_set() -> None:
    assert "temperature" not in request_body("completions", "m", ["w1"], [], 8)
    assert request_body("completions", "m", ["w1"], [], 8, temperature=0.0)["temperature"] == 0.0
