"""`ppd proxy`: parse the command line into a ProxyConfig and serve the router (docs/proxy.md)."""

from __future__ import annotations

import argparse

from ppd.proxy.config import MODES, ProxyConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ppd proxy`."""
    parser.add_argument("--mode", required=True, choices=MODES, help="routing mode at start")
    urls = parser.add_argument_group("upstream instances (each flag repeatable, or several URLs after one)")
    urls.add_argument("--prefill", action="extend", nargs="+", default=[], metavar="URL", help="P instance")
    urls.add_argument("--decode", action="extend", nargs="+", default=[], metavar="URL", help="D instance")
    urls.add_argument(
        "--replica",
        action="extend",
        nargs="+",
        default=[],
        metavar="URL",
        help="replica for replication mode (default: the P and D instances)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=10001, help="port (0 picks a free one)")
    parser.add_argument("--admin-token", help="require 'Authorization: Bearer T' on admin endpoints")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without --admin-token (anyone reaching it can switch modes)",
    )
    parser.add_argument(
        "--pd-decode-affinity",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pd mode: send turns 2+ to the D holding the history, so NIXL pulls only new blocks "
        "(default on; --no-pd-decode-affinity picks the least loaded D every turn)",
    )
    parser.add_argument("--max-conversations", type=int, default=100_000, help="LRU cap on conversations")
    parser.add_argument(
        "--conversation-ttl-s", type=float, default=3600.0, help="forget a conversation idle this long"
    )
    parser.add_argument("--connect-timeout-s", type=float, default=5.0)
    parser.add_argument(
        "--first-byte-timeout-s",
        type=float,
        default=300.0,
        help="longest wait for an upstream's first byte, and between two chunks of its stream",
    )
    parser.add_argument(
        "--prefill-timeout-s",
        type=float,
        default=60.0,
        help="longest wait for P's answer; a P that fails or times out: D prefills the turn itself",
    )
    parser.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024, help="larger bodies: 413")
    parser.add_argument(
        "--body-timeout-s", type=float, default=30.0, help="longest wait for a request's whole body (408)"
    )
    parser.add_argument("--health-interval-s", type=float, default=2.0)
    parser.add_argument("--health-timeout-s", type=float, default=2.0)
    parser.add_argument("--health-max-backoff-s", type=float, default=30.0)
    parser.add_argument("--decision-log", metavar="FILE", help="append one JSON line per routed request")
    slo = parser.add_argument_group("auto mode (docs/auto.md)")
    slo.add_argument("--slo-ttft-ms", type=float, help="prefer routes expected to meet this TTFT (ms)")
    slo.add_argument("--slo-tpot-ms", type=float, help="prefer routes expected to meet this TPOT (ms)")


def build_config(args: argparse.Namespace) -> ProxyConfig:
    """The typed config of the parsed arguments (UsageError when they do not fit together)."""
    return ProxyConfig(
        mode=args.mode,
        prefill_urls=tuple(args.prefill),
        decode_urls=tuple(args.decode),
        replica_urls=tuple(args.replica),
        pd_decode_affinity=args.pd_decode_affinity,
        host=args.host,
        port=args.port,
        admin_token=args.admin_token,
        max_conversations=args.max_conversations,
        conversation_idle_ttl_s=args.conversation_ttl_s,
        connect_timeout_s=args.connect_timeout_s,
        first_byte_timeout_s=args.first_byte_timeout_s,
        prefill_timeout_s=args.prefill_timeout_s,
        max_body_bytes=args.max_body_bytes,
        body_timeout_s=args.body_timeout_s,
        insecure=args.insecure,
        health_interval_s=args.health_interval_s,
        health_timeout_s=args.health_timeout_s,
        health_max_backoff_s=args.health_max_backoff_s,
        decision_log_path=args.decision_log,
        slo_ttft_ms=args.slo_ttft_ms,
        slo_tpot_ms=args.slo_tpot_ms,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    config = build_config(args)
    from ppd.proxy.app import build_app
    from ppd.serve import run_server

    return run_server(build_app(config), config.host, config.port, "ppd proxy", handler_cancellation=True)
