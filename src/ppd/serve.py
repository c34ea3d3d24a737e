"""Run an aiohttp application until SIGINT/SIGTERM, on any port (0 picks a free one).

Every server prints one line `<name> listening on http://HOST:PORT` once it accepts connections;
tests and `ppd up` read the URL from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ppd.connections import ConnectionCounts, ConnectionGuard, ConnectionLimits

# Where a guarded server's connection counts are, for the app's status endpoint.
CONNECTIONS = web.AppKey("ppd_connections", ConnectionCounts)


def raise_open_file_limit(num_wanted: int) -> int:
    """Raise this process's soft limit on open files toward num_wanted (never past the hard limit,
    never lowering it), as vLLM does at start; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = num_wanted if hard == resource.RLIM_INFINITY else min(num_wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def install_fast_event_loop() -> None:
    """Use uvloop when it is installed (as vLLM does); plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@dataclass(frozen=True)
class ServerOptions:
    """How a server treats its client connections.

    handler_cancellation: cancel a request's handler when its client disconnects (to abort upstream
    requests, or an engine's request, at once, even while nothing is being written).
    keepalive_timeout_s: close a kept-alive connection with no new request for this long.
    auto_decompress: let aiohttp decode gzip/deflate bodies (off: the app sees the bytes sent).
    connection_limits: a cap on open connections and a deadline for a new one's headers (None: none).
    """

    handler_cancellation: bool = False
    keepalive_timeout_s: float = 75.0
    auto_decompress: bool = True
    connection_limits: ConnectionLimits | None = None
    connection_note: Callable[[str], object] | None = None  # one line per refused or timed-out connection


async def serve_until_stopped(
    app: web.Application, host: str, port: int, name: str, options: ServerOptions | None = None
) -> None:
    """Serve `app` on host:port, announce the URL on stdout, and shut down cleanly on a signal."""
    options = options or ServerOptions()
    counts = ConnectionCounts()
    if options.connection_limits is not None:
        app[CONNECTIONS] = counts  # before start-up: a started app's state is frozen
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=5.0,
        handler_cancellation=options.handler_cancellation,
        keepalive_timeout=options.keepalive_timeout_s,
        auto_decompress=options.auto_decompress,
    )
    await runner.setup()
    loop = asyncio.get_running_loop()
    factory: Callable[[], asyncio.Protocol] = runner.server  # type: ignore[assignment]
    if options.connection_limits is not None:
        factory = ConnectionGuard(factory, options.connection_limits, counts, options.connection_note)
    server: asyncio.Server | None = None
    try:
        server = await loop.create_server(factory, host, port, backlog=4096, reuse_address=True)
        bound_port = server.sockets[0].getsockname()[1]
        print(f"{name} listening on http://{host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if server is not None:
            server.close()
        await runner.cleanup()


def run_server(
    app: web.Application, host: str, port: int, name: str, options: ServerOptions | None = None
) -> int:
    """Blocking: serve until a signal arrives; returns the exit status."""
    install_fast_event_loop()
    try:
        asyncio.run(serve_until_stopped(app, host, port, name, options))
    except OSError as exc:
        print(f"{name}: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
