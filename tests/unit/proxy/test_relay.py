"""The NIXL two-hop bodies, exactly as stock vLLM's NixlConnector expects them."""

from __future__ import annotations

import json

from ppd.proxy.relay import decode_body, decode_request_bytes, prefill_body, upstream_headers

CLIENT_BODY = {
    "model": "llama",
    "prompt": "w1 w2",
    "max_tokens": 64,
    "min_tokens": 64,
    "stream": True,
    "stream_options": {"include_usage": True},
    "ignore_eos": True,
}


def test_prefill_body_asks_for_one_token_and_a_remote_decode() -> None:
    body = prefill_body(CLIENT_BODY, is_chat=False)
    assert body == {
        "model": "llama",
        "prompt": "w1 w2",
        "max_tokens": 1,
        "stream": False,
        "ignore_eos": True,
        "kv_transfer_params": {
            "do_remote_decode": True,
            "do_remote_prefill": False,
            "remote_engine_id": None,
            "remote_block_ids": None,
            "remote_host": None,
            "remote_port": None,
        },
    }
    assert CLIENT_BODY["max_tokens"] == 64  # the client's body is untouched


def test_chat_prefill_body_also_caps_max_completion_tokens() -> None:
    body = prefill_body({"messages": [], "max_completion_tokens": 9}, is_chat=True)
    assert body["max_tokens"] == 1 and body["max_completion_tokens"] == 1


def test_decode_body_is_the_client_body_plus_the_params_from_prefill() -> None:
    params = {"do_remote_prefill": True, "remote_block_ids": [[1, 2]], "remote_engine_id": "p"}
    body = decode_body(CLIENT_BODY, params)
    assert body == {**CLIENT_BODY, "kv_transfer_params": params}


def test_upstream_headers_share_the_request_id_and_pass_authorization() -> None:
    client_headers = {"Authorization": "Bearer k", "Cookie": "x", "X-Request-Id": "client-id"}
    headers = upstream_headers(client_headers, "rid-1")
    assert headers == {
        "Content-Type": "application/json",
        "X-Request-Id": "rid-1",
        "Authorization": "Bearer k",
    }


def test_decode_bytes_add_the_params_to_the_clients_own_bytes() -> None:
    params = {"do_remote_prefill": True, "remote_block_ids": [[1, 2]], "remote_engine_id": "p"}
    raw = json.dumps(CLIENT_BODY, indent=1).encode() + b"\n"
    data = decode_request_bytes(raw, CLIENT_BODY, params)
    assert data.startswith(raw.strip()[:-1]) and json.loads(data) == decode_body(CLIENT_BODY, params)
    # not a plain UTF-8 object (here UTF-16): encoded anew
    utf16 = json.dumps(CLIENT_BODY).encode("utf-16")
    assert json.loads(decode_request_bytes(utf16, CLIENT_BODY, params)) == decode_body(CLIENT_BODY, params)
    assert json.loads(decode_request_bytes(b"{}", {}, params)) == {"kv_transfer_params": params}
