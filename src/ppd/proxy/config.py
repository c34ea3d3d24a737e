"""The proxy's typed configuration, built by `ppd proxy` (cli.py) or by tests and passed in whole."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ppd.errors import UsageError
from ppd.modes import MODES, PD_MODES, Mode, is_mode
from ppd.router.chunks import CHUNK_BYTES, CHUNKS_PER_INSTANCE, KEYED_BYTES, recognition_problem
from ppd.router.core import RouterConfig

# How long the proxy keeps an idle connection to an engine for the next request (its aiohttp connector;
# ppd fleet models the same pool, fleet/connections.py).
UPSTREAM_KEEPALIVE_S = 60.0


@dataclass(frozen=True)
class ProxyConfig:
    """Everything `build_app` needs. Times in seconds, sizes in bytes."""

    mode: Mode
    prefill_urls: tuple[str, ...] = ()
    decode_urls: tuple[str, ...] = ()
    replica_urls: tuple[str, ...] = ()  # empty: the prefill and decode instances serve as replicas
    pd_decode_affinity: bool = True  # pd turns 2+ go to the D that holds the history
    host: str = "127.0.0.1"
    port: int = 10001
    admin_token: str | None = None
    max_conversations: int = 100_000
    conversation_idle_ttl_s: float = 3600.0
    history_chunk_bytes: int = CHUNK_BYTES  # recognition without a session id by leading chunks
    history_chunks_per_instance: int = CHUNKS_PER_INSTANCE  # the chunk index's LRU cap, per instance
    history_keyed_bytes: int = KEYED_BYTES  # a prompt's lead that is keyed
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 300.0  # also bounds each gap between chunks of a stream
    prefill_timeout_s: float = 60.0  # longest wait for P's answer; then D prefills the turn itself
    max_body_bytes: int = 16 * 1024 * 1024
    body_timeout_s: float = 30.0  # longest wait for a client's whole request body (408 after)
    max_json_elements: int = 200_000  # values in a body (arrays and objects: a tenth of it)
    header_timeout_s: float = 10.0  # longest wait for a new connection's request headers
    idle_timeout_s: float = 60.0  # a kept-alive connection with no request for this long is closed
    max_connections: int = 4096  # client connections open at once; more are answered 503 and closed
    max_connections_per_client: int = 0  # from one peer address (0: no cap); more are answered 429
    protect_status: bool = False  # GET /status and /metrics need the admin token too
    upstream_header: bool = True  # answers carry x-ppd-upstream (the engine's URL)
    insecure: bool = False  # allow a non-loopback bind address without an admin token
    health_interval_s: float = 2.0
    health_timeout_s: float = 2.0
    health_max_backoff_s: float = 30.0
    decision_log_path: str | None = None
    slo_ttft_ms: float | None = None  # auto mode: prefer routes expected to meet these (ms, real time)
    slo_tpot_ms: float | None = None
    extra_status: dict[str, str] = field(default_factory=dict)  # free-form labels shown in /status

    def __post_init__(self) -> None:
        for name in ("prefill_urls", "decode_urls", "replica_urls"):
            urls = tuple(normalize_url(url) for url in getattr(self, name))
            object.__setattr__(self, name, urls)  # frozen: normalise once, here
        check_config(self)

    @property
    def effective_replica_urls(self) -> tuple[str, ...]:
        """Replicas for replication mode: --replica, else every prefill and decode instance."""
        if self.replica_urls:
            return self.replica_urls
        return _unique(self.prefill_urls + self.decode_urls)

    def router_config(self) -> RouterConfig:
        """The router core's part of this config."""
        return RouterConfig(
            mode=self.mode,
            prefill_urls=self.prefill_urls,
            decode_urls=self.decode_urls,
            replica_urls=self.effective_replica_urls,
            pd_decode_affinity=self.pd_decode_affinity,
            max_conversations=self.max_conversations,
            conversation_idle_ttl_s=self.conversation_idle_ttl_s,
            history_chunk_bytes=self.history_chunk_bytes,
            history_chunks_per_instance=self.history_chunks_per_instance,
            history_keyed_bytes=self.history_keyed_bytes,
            health_interval_s=self.health_interval_s,
            health_max_backoff_s=self.health_max_backoff_s,
            slo_ttft_ms=self.slo_ttft_ms,
            slo_tpot_ms=self.slo_tpot_ms,
        )


def check_config(config: ProxyConfig) -> None:
    """Raise UsageError naming the first invalid field and what is allowed."""
    if not is_mode(config.mode):
        raise UsageError(f"unknown mode {config.mode!r}; allowed: {', '.join(MODES)}")
    for url in config.prefill_urls + config.decode_urls + config.replica_urls:
        check_url(url)
    if bool(config.prefill_urls) != bool(config.decode_urls):
        raise UsageError("give both --prefill and --decode instances, or neither")
    if not config.prefill_urls and not config.replica_urls:
        raise UsageError("no upstreams: give --prefill and --decode URLs, and/or --replica URLs")
    problem = mode_unavailable(config.mode, config)
    if problem:
        raise UsageError(problem)
    for name in ("slo_ttft_ms", "slo_tpot_ms"):
        if getattr(config, name) is not None:
            _check_positive(name, getattr(config, name))
    _check_positive("max_conversations", config.max_conversations)
    problem = recognition_problem(
        config.history_chunk_bytes, config.history_chunks_per_instance, config.history_keyed_bytes
    )
    if problem:
        raise UsageError(problem)
    _check_positive("max_json_elements", config.max_json_elements)
    _check_positive("max_connections", config.max_connections)
    if config.max_connections_per_client < 0:
        raise UsageError(
            f"max_connections_per_client must be >= 0 (0: no cap), not {config.max_connections_per_client}"
        )
    if config.protect_status and config.admin_token is None:
        raise UsageError("--protect-status needs --admin-token (the token /status and /metrics then ask for)")
    for name in (
        "conversation_idle_ttl_s",
        "connect_timeout_s",
        "first_byte_timeout_s",
        "prefill_timeout_s",
        "max_body_bytes",
        "body_timeout_s",
        "header_timeout_s",
        "idle_timeout_s",
        "health_interval_s",
        "health_timeout_s",
        "health_max_backoff_s",
    ):
        _check_positive(name, getattr(config, name))
    if not 0 <= config.port <= 65535:
        raise UsageError(f"port {config.port} is outside 0..65535")
    if config.admin_token is not None and not config.admin_token:
        raise UsageError("--admin-token must not be empty")
    if config.admin_token is None and not config.insecure and not is_loopback(config.host):
        raise UsageError(
            f"refusing to bind non-loopback address {config.host!r} without --admin-token "
            "(anyone who reaches it could switch modes); give --admin-token T, or --insecure"
        )


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches only this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def mode_unavailable(mode: Mode, config: ProxyConfig) -> str | None:
    """Why `mode` cannot route with these instances, or None when it can."""
    if mode in PD_MODES and not (config.prefill_urls and config.decode_urls):
        return f"mode {mode} needs --prefill and --decode instances; this proxy has replicas only"
    return None


def check_url(url: str) -> None:
    """An upstream URL must be http(s)://host[:port] with no path, query or fragment."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"upstream URL {url!r} must look like http://HOST:PORT")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(f"upstream URL {url!r} must not have a path, query or fragment")
    try:
        port = parts.port  # raises for a port outside 0..65535, or not a number
    except ValueError as exc:
        raise UsageError(f"upstream URL {url!r} has a port outside 1-65535") from exc
    if port == 0:
        raise UsageError(f"upstream URL {url!r} has a port outside 1-65535")


def normalize_url(url: str) -> str:
    """The URL without a trailing slash, so the same instance is one upstream."""
    return url.rstrip("/")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise UsageError(f"{name} must be > 0, got {value}")


def _unique(urls: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(urls))
