"""Wait until every server answers GET /health, watching that the ones we started stay alive."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from ppd.launch import process

_LISTENING_RE = re.compile(r"listening on (http://\S+)")
_POLL_INTERVAL_S = 0.2
_PROGRESS_INTERVAL_S = 10.0
_HEALTH_TIMEOUT_S = 2.0
LOG_TAIL_LINES = 25


class LaunchError(Exception):
    """A server failed to start or to become healthy; the message says which and why."""


@dataclass(frozen=True)
class Target:
    """A server to wait for: local ones have a process (and a log), remote ones only a URL."""

    name: str
    url: str  # port 0: read the bound URL from the log's `listening on URL` line
    started: process.Started | None = None
    log_path: Path | None = None


def url_port(url: str) -> int:
    """The port of a base URL (0 when it is still to be picked)."""
    return urlsplit(url).port or 0


def wait_ready(targets: list[Target], timeout_s: float, progress: Callable[[str], None]) -> dict[str, str]:
    """Block until every target is healthy; returns name -> URL (the bound URL for port-0 targets)."""
    return asyncio.run(_wait_ready(targets, timeout_s, progress))


async def _wait_ready(
    targets: list[Target], timeout_s: float, progress: Callable[[str], None]
) -> dict[str, str]:
    urls = {t.name: t.url for t in targets}
    pending = {t.name: t for t in targets}
    start = time.monotonic()
    last_progress = start
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_HEALTH_TIMEOUT_S)) as session:
        while pending:
            for target in list(pending.values()):
                if await _is_ready(session, target, urls):
                    del pending[target.name]
            now = time.monotonic()
            if pending and now - start > timeout_s:
                raise LaunchError(_timeout_message(list(pending.values()), urls, timeout_s))
            if pending and now - last_progress >= _PROGRESS_INTERVAL_S:
                progress(f"  waiting for {', '.join(sorted(pending))} ... {now - start:.0f} s")
                last_progress = now
            if pending:
                await asyncio.sleep(_POLL_INTERVAL_S)
    return urls


async def _is_ready(session: aiohttp.ClientSession, target: Target, urls: dict[str, str]) -> bool:
    if target.started is not None and not process.is_running(target.started):
        raise LaunchError(_died_message(target))
    if url_port(urls[target.name]) == 0:
        bound_url = _bound_url_from_log(target.log_path)
        if bound_url is None:
            return False
        urls[target.name] = bound_url
    return await health_ok(session, urls[target.name])


async def health_ok(session: aiohttp.ClientSession, url: str) -> bool:
    """Whether GET url/health answers 200 (any error or timeout counts as not yet)."""
    try:
        async with session.get(f"{url}/health") as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


def _bound_url_from_log(log_path: Path | None) -> str | None:
    if log_path is None:
        return None
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    match = _LISTENING_RE.search(text)
    return match.group(1) if match else None


def _died_message(target: Target) -> str:
    where = f" (log: {target.log_path})" if target.log_path else ""
    tail = process.tail(target.log_path, LOG_TAIL_LINES) if target.log_path else ""
    body = "\n".join(f"    {line}" for line in tail.splitlines()) or "    (log is empty)"
    return f"{target.name} exited while starting{where}; last lines of its log:\n{body}"


def _timeout_message(pending: list[Target], urls: dict[str, str], timeout_s: float) -> str:
    lines = [
        f"not healthy after {timeout_s:g} s: " + ", ".join(f"{t.name} ({urls[t.name]})" for t in pending)
    ]
    for target in pending:
        if target.log_path is not None:
            lines.append(f"  last lines of {target.log_path}:")
            tail = process.tail(target.log_path, 10).splitlines() or ["(empty)"]
            lines.extend(f"    {line}" for line in tail)
    return "\n".join(lines)
