"""`ppd proxy`: parse the command line into a ProxyConfig and serve the router (docs/proxy.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ppd.modes import MODES
from ppd.proxy.config import ProxyConfig
from ppd.router.chunks import CHUNK_BYTES, CHUNKS_PER_INSTANCE, KEYED_BYTES

if TYPE_CHECKING:
    from ppd.serve import ServerOptions


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
    add_recognition_arguments(
        parser.add_argument_group("recognition without a session id (docs/proxy.md)").add_argument
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
    parser.add_argument(
        "--max-json-elements",
        type=int,
        default=200_000,
        help="most JSON values in a body, arrays and objects at most a tenth of it (400 beyond)",
    )
    parser.add_argument(
        "--header-timeout-s",
        type=float,
        default=10.0,
        help="a new connection that has not sent its request headers in this long is closed",
    )
    parser.add_argument(
        "--idle-timeout-s", type=float, default=60.0, help="close a kept-alive connection idle this long"
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4096,
        help="client connections open at once; one more is answered 503 and closed",
    )
    parser.add_argument(
        "--max-connections-per-client",
        type=int,
        default=0,
        help="client connections open at once from one peer address (0: no cap); one more is answered "
        "429 and closed. Clients behind one NAT or load balancer share an address",
    )
    parser.add_argument(
        "--protect-status",
        action="store_true",
        help="GET /status and /metrics need the admin token too (they show upstream URLs and load)",
    )
    parser.add_argument(
        "--upstream-header",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send x-ppd-upstream (the URL of the engine that answered) to clients "
        "(--no-upstream-header keeps internal URLs from them)",
    )
    parser.add_argument("--health-interval-s", type=float, default=2.0)
    parser.add_argument("--health-timeout-s", type=float, default=2.0)
    parser.add_argument("--health-max-backoff-s", type=float, default=30.0)
    parser.add_argument("--decision-log", metavar="FILE", help="append one JSON line per routed request")
    slo = parser.add_argument_group("auto mode (docs/auto.md)")
    slo.add_argument("--slo-ttft-ms", type=float, help="prefer routes expected to meet this TTFT (ms)")
    slo.add_argument("--slo-tpot-ms", type=float, help="prefer routes expected to meet this TPOT (ms)")


def add_recognition_arguments(add: Callable[..., object]) -> None:
    """The chunk index's options (router/chunks.py), as `ppd proxy` and `ppd fleet` take them."""
    add(
        "--history-chunk-bytes",
        type=int,
        default=CHUNK_BYTES,
        metavar="N",
        help=f"a request without a session id is recognised by the chained keys of its prompt's N-byte "
        f"chunks; smaller sees a shared prefix more finely, for more keys (default {CHUNK_BYTES})",
    )
    add(
        "--history-chunks-per-instance",
        type=int,
        default=CHUNKS_PER_INSTANCE,
        metavar="N",
        help=f"the chunk index's LRU cap, N keys per instance, ~150 B each (default {CHUNKS_PER_INSTANCE:,})",
    )
    add(
        "--history-keyed-bytes",
        type=int,
        default=KEYED_BYTES,
        metavar="N",
        help=f"only a prompt's first N bytes are keyed and whole histories up to N bytes kept, so a large "
        f"body costs the event loop no more (default {KEYED_BYTES:,}: more than a 128k-token context)",
    )


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
        history_chunk_bytes=args.history_chunk_bytes,
        history_chunks_per_instance=args.history_chunks_per_instance,
        history_keyed_bytes=args.history_keyed_bytes,
        connect_timeout_s=args.connect_timeout_s,
        first_byte_timeout_s=args.first_byte_timeout_s,
        prefill_timeout_s=args.prefill_timeout_s,
        max_body_bytes=args.max_body_bytes,
        body_timeout_s=args.body_timeout_s,
        max_json_elements=args.max_json_elements,
        header_timeout_s=args.header_timeout_s,
        idle_timeout_s=args.idle_timeout_s,
        max_connections=args.max_connections,
        max_connections_per_client=args.max_connections_per_client,
        protect_status=args.protect_status,
        upstream_header=args.upstream_header,
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
    from ppd.proxy.state import STATE
    from ppd.ratelog import route_server_errors
    from ppd.serve import raise_open_file_limit, run_server

    # Each client connection may need one upstream connection too, plus the pools' idle ones.
    num_files = raise_open_file_limit(2 * config.max_connections + 256)
    if num_files < 2 * config.max_connections:
        message = f"the open-file limit is {num_files}, less than 2 x --max-connections"
        print(f"ppd proxy: warning: {message}", file=sys.stderr)
    app = build_app(config)
    rejections = app[STATE].rejections
    # aiohttp's parser answers bytes that are not HTTP itself, and logged each with a traceback.
    route_server_errors("aiohttp.server", rejections, "ppd proxy: ")
    return run_server(app, config.host, config.port, "ppd proxy", server_options(config, rejections.line))


def server_options(config: ProxyConfig, note: Callable[[str], object] | None = None) -> ServerOptions:
    """How the proxy treats client connections: cancel a gone client's handler (its upstream
    requests abort at once), decode bodies itself (inputs.py), cap connections and idle time."""
    from ppd.connections import ConnectionLimits
    from ppd.serve import ServerOptions

    limits = ConnectionLimits(
        config.max_connections, config.header_timeout_s, config.max_connections_per_client
    )
    return ServerOptions(
        handler_cancellation=True,
        keepalive_timeout_s=config.idle_timeout_s,
        auto_decompress=False,
        connection_limits=limits,
        connection_note=(lambda text: note(f"ppd proxy: {text}")) if note is not None else None,
    )
