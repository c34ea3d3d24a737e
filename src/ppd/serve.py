"""Run an aiohttp application until SIGINT/SIGTERM, on any port (0 picks a free one).

Every server prints one line `<name> listening on http://HOST:PORT` once it accepts connections;
tests and `ppd up` read the URL from it.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web


def install_fast_event_loop() -> None:
    """Use uvloop when it is installed (as vLLM does); plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve_until_stopped(
    app: web.Application, host: str, port: int, name: str, handler_cancellation: bool = False
) -> None:
    """Serve `app` on host:port, announce the URL on stdout, and shut down cleanly on a signal.

    handler_cancellation: cancel a request's handler when its client disconnects (the proxy uses it
    to abort upstream requests at once, even while nothing is being written to the client).
    """
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=5.0,
        handler_cancellation=handler_cancellation,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    try:
        await site.start()
        bound_port = runner.addresses[0][1]
        print(f"{name} listening on http://{host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_server(
    app: web.Application, host: str, port: int, name: str, handler_cancellation: bool = False
) -> int:
    """Blocking: serve until a signal arrives; returns the exit status."""
    install_fast_event_loop()
    try:
        asyncio.run(serve_until_stopped(app, host, port, name, handler_cancellation))
    except OSError as exc:
        print(f"{name}: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
