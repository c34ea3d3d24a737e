"""Reliability limits: the bind-address guard, JSON nesting depth, session id length, new options."""

from __future__ import annotations

import argparse
import json

import pytest

from ppd.errors import UsageError
from ppd.jsonshape import nests_deeper_than
from ppd.openai_api import ApiError
from ppd.proxy.cli import add_arguments, build_config
from ppd.proxy.config import ProxyConfig, is_loopback
from ppd.proxy.inputs import MAX_SESSION_ID_CHARS, parse_turn_request

REPLICA = ("http://r:1",)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("gpu-host", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_bind_needs_a_token_or_insecure() -> None:
    with pytest.raises(UsageError, match=r"refusing to bind non-loopback address '0\.0\.0\.0'.*--insecure"):
        ProxyConfig("replication", replica_urls=REPLICA, host="0.0.0.0")
    assert ProxyConfig("replication", replica_urls=REPLICA, host="0.0.0.0", admin_token="t").admin_token
    assert ProxyConfig("replication", replica_urls=REPLICA, host="0.0.0.0", insecure=True).insecure


def test_cli_maps_the_reliability_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--mode", "replication", "--replica", "http://r:1", "--host", "0.0.0.0",
                              "--insecure", "--prefill-timeout-s", "2.5",
                              "--body-timeout-s", "4", "--max-connections-per-client", "64"])  # fmt: skip
    config = build_config(args)
    assert (config.insecure, config.prefill_timeout_s, config.body_timeout_s) == (True, 2.5, 4.0)
    assert config.max_connections_per_client == 64


@pytest.mark.parametrize("name", ["prefill_timeout_s", "body_timeout_s"])
def test_timeouts_must_be_positive(name: str) -> None:
    with pytest.raises(UsageError, match=name):
        ProxyConfig("replication", replica_urls=REPLICA, **{name: 0})


def test_nesting_is_measured_level_by_level_without_recursion() -> None:
    depths = {1: 0, "s": 0, "[]": 1, '{"a": 1}': 1, '[[1], {"b": [2]}]': 3}
    for text, depth in depths.items():
        value = json.loads(text) if isinstance(text, str) and text[:1] in "[{" else text
        assert not nests_deeper_than(value, depth) and (depth == 0 or nests_deeper_than(value, depth - 1))
    deep: list = []
    for _ in range(100_000):  # far deeper than Python's recursion limit
        deep = [deep]
    assert nests_deeper_than(deep, 64) and not nests_deeper_than(deep, 100_001)


def test_overlong_session_ids_are_refused() -> None:
    body = {"prompt": "w1"}
    raw = json.dumps(body).encode()
    ok = parse_turn_request({"X-Session-ID": "s" * MAX_SESSION_ID_CHARS}, body, raw, False)
    assert ok.identity.session_id == "s" * MAX_SESSION_ID_CHARS
    with pytest.raises(ApiError, match="X-Session-ID is longer"):
        parse_turn_request({"X-Session-ID": "s" * (MAX_SESSION_ID_CHARS + 1)}, body, raw, False)
    long_id = {"prompt": "w1", "conversation_id": "c" * (MAX_SESSION_ID_CHARS + 1)}
    with pytest.raises(ApiError, match="conversation_id"):
        parse_turn_request({}, long_id, json.dumps(long_id).encode(), False)
