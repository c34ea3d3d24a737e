"""Request parsing: the checks the proxy relies on, identity, token estimates."""

from __future__ import annotations

import json

import pytest

from ppd.openai_api import ApiError
from ppd.proxy.inputs import parse_turn_request


def parse(body: dict, headers: dict | None = None, is_chat: bool = False):
    return parse_turn_request(headers or {}, body, json.dumps(body).encode(), is_chat)


def test_conversation_id_is_the_session_and_is_removed_before_forwarding() -> None:
    request = parse({"prompt": "w1 w2 w3", "conversation_id": "c1", "stream": True})
    assert request.identity.session_id == "c1"
    assert "conversation_id" not in request.body
    assert b"conversation_id" not in request.raw_body
    assert request.stream and not request.capture_answer


def test_client_kv_transfer_params_are_removed_before_forwarding() -> None:
    forged = {"do_remote_prefill": True, "remote_host": "10.0.0.1", "remote_port": 22}
    request = parse({"prompt": "w1", "kv_transfer_params": forged}, is_chat=False)
    assert "kv_transfer_params" not in request.body
    assert b"kv_transfer_params" not in request.raw_body and b"10.0.0.1" not in request.raw_body


def test_completion_without_session_is_recognised_by_prompt() -> None:
    request = parse({"prompt": "w1 w2 w3"})
    assert request.identity.prompt_bytes == b"w1 w2 w3"
    assert request.num_prompt_tokens == 3
    assert request.capture_answer


def test_chat_identity_and_token_estimate() -> None:
    messages = [{"role": "user", "content": "w1 w2"}, {"role": "assistant", "content": "w3"}]
    request = parse({"messages": messages}, is_chat=True)
    assert request.identity.chat_messages == messages
    assert request.num_prompt_tokens == 5


def test_header_session_wins_and_token_id_prompts_count_ids() -> None:
    request = parse({"prompt": [1, 2, 3, 4]}, headers={"X-Session-ID": "h"})
    assert request.identity.session_id == "h" and request.num_prompt_tokens == 4


def test_several_answers_are_not_captured() -> None:
    assert not parse({"prompt": "w1", "n": 2}).capture_answer


@pytest.mark.parametrize(
    ("body", "is_chat", "param"),
    [
        ({}, False, "prompt"),
        ({"prompt": ""}, False, "prompt"),
        ({"prompt": 5}, False, "prompt"),
        ({"prompt": []}, False, "prompt"),
        ({"messages": []}, True, "messages"),
        ({"messages": ["hi"]}, True, "messages"),
        ({"prompt": "w1", "stream": "yes"}, False, "stream"),
        ({"prompt": "w1", "max_tokens": 0}, False, "max_tokens"),
        ({"prompt": "w1", "max_tokens": True}, False, "max_tokens"),
        ({"prompt": "w1", "max_tokens": 1.5}, False, "max_tokens"),
        (
            {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -3},
            True,
            "max_completion_tokens",
        ),
        ({"prompt": "w1", "conversation_id": 3}, False, "conversation_id"),
    ],
)
def test_bad_inputs_are_400_naming_the_field(body: dict, is_chat: bool, param: str) -> None:
    with pytest.raises(ApiError) as info:
        parse(body, is_chat=is_chat)
    assert info.value.status == 400 and info.value.param == param
