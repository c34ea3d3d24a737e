"""ProxyConfig validation and the CLI's mapping to it."""

from __future__ import annotations

import argparse

import pytest

from ppd.errors import UsageError
from ppd.proxy.cli import add_arguments, build_config
from ppd.proxy.config import ProxyConfig


def test_replicas_default_to_prefill_and_decode_instances() -> None:
    config = ProxyConfig(
        "replication", prefill_urls=("http://a:1/",), decode_urls=("http://b:2", "http://a:1")
    )
    assert config.prefill_urls == ("http://a:1",)
    assert config.effective_replica_urls == ("http://a:1", "http://b:2")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fast", "replica_urls": ("http://a:1",)}, "unknown mode"),
        ({"mode": "pd"}, "no upstreams"),
        ({"mode": "ppd", "replica_urls": ("http://a:1",)}, "needs --prefill and --decode"),
        ({"mode": "pd", "prefill_urls": ("http://a:1",)}, "both --prefill and --decode"),
        ({"mode": "replication", "replica_urls": ("ftp://a",)}, "must look like"),
        ({"mode": "replication", "replica_urls": ("http://a:1/v1",)}, "path"),
        ({"mode": "replication", "replica_urls": ("http://a:99999",)}, "port outside"),
        ({"mode": "replication", "replica_urls": ("http://a:0",)}, "port outside"),
        ({"mode": "replication", "replica_urls": ("http://a:x",)}, "port outside"),
        ({"mode": "replication", "replica_urls": ("http://a:1",), "protect_status": True}, "protect-status"),
        ({"mode": "replication", "replica_urls": ("http://a:1",), "max_json_elements": 0}, "json_elements"),
        ({"mode": "replication", "replica_urls": ("http://a:1",), "header_timeout_s": 0}, "header_timeout"),
        (
            {"mode": "replication", "replica_urls": ("http://a:1",), "max_conversations": 0},
            "max_conversations",
        ),
        (
            {"mode": "replication", "replica_urls": ("http://a:1",), "connect_timeout_s": -1},
            "connect_timeout_s",
        ),
        ({"mode": "replication", "replica_urls": ("http://a:1",), "admin_token": ""}, "admin-token"),
        (
            {"mode": "replication", "replica_urls": ("http://a:1",), "max_connections_per_client": -1},
            "max_connections_per_client",
        ),
        (
            {"mode": "replication", "replica_urls": ("http://a:1",), "history_chunk_bytes": 0},
            "--history-chunk-bytes must be >= 1",
        ),
        (
            {"mode": "replication", "replica_urls": ("http://a:1",), "history_chunks_per_instance": -5},
            "--history-chunks-per-instance must be >= 1",
        ),
        (
            {"mode": "replication", "replica_urls": ("http://a:1",), "history_keyed_bytes": 512},
            r"--history-keyed-bytes \(512\) must be at least --history-chunk-bytes \(1024\)",
        ),
    ],
)
def test_bad_configs_say_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ProxyConfig(**kwargs)


def test_cli_builds_the_config_with_repeated_and_multi_url_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--mode", "ppd", "--prefill", "http://p:1", "--decode", "http://d:1", "http://d:2", "--decode",
         "http://d:3", "--no-pd-decode-affinity", "--admin-token", "t", "--decision-log", "x.jsonl"]
    )  # fmt: skip
    config = build_config(args)
    assert config.decode_urls == ("http://d:1", "http://d:2", "http://d:3")
    assert config.pd_decode_affinity is False
    assert (config.admin_token, config.decision_log_path, config.host) == ("t", "x.jsonl", "127.0.0.1")


def test_cli_passes_the_chunk_recognition_flags_to_the_router() -> None:
    from ppd.router.core import Router

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--mode", "pd", "--prefill", "http://p:1", "--decode", "http://d:1", "--history-chunk-bytes", "256",
         "--history-chunks-per-instance", "1000", "--history-keyed-bytes", "4096"]
    )  # fmt: skip
    chunks = Router(build_config(args).router_config()).conversations.chunks
    # two instances, 1000 keys each
    assert (chunks.chunk_bytes, chunks.max_chunks, chunks.keyed_bytes) == (256, 2000, 4096)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--history-chunk-bytes", "0"], "--history-chunk-bytes must be >= 1, not 0"),
        (["--history-chunks-per-instance", "0"], "--history-chunks-per-instance must be >= 1"),
        (["--history-keyed-bytes", "10"], "--history-keyed-bytes (10) must be at least --history-chunk-"),
        (["--history-chunk-bytes", "16"], "--history-keyed-bytes / --history-chunk-bytes (1048576 / 16)"),
    ],
)
def test_bad_chunk_flags_are_one_line_cli_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ppd.cli import main

    assert main(["proxy", "--mode", "pd", "--prefill", "http://p:1", "--decode", "http://d:1", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
