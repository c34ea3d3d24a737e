"""Command line of the router (`ppd proxy`) for a topology."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from ppd.errors import UsageError
from ppd.modes import MODES, PD_MODES, Mode, is_mode


@dataclass(frozen=True)
class ProxyOptions:
    """Where the proxy listens, its starting mode, and extra flags (e.g. --admin-token)."""

    host: str
    port: int  # 0: pick a free port
    mode: Mode
    extra_args: tuple[str, ...] = ()
    python: str = sys.executable


@dataclass(frozen=True)
class Upstreams:
    """Engine base URLs by the role the proxy gives them."""

    prefill: tuple[str, ...]
    decode: tuple[str, ...]
    replica: tuple[str, ...]


def default_mode(upstreams: Upstreams) -> Mode:
    """pd when there are P and D instances, replication when there are only replicas."""
    return "pd" if upstreams.prefill and upstreams.decode else "replication"


def check_mode(mode: str, upstreams: Upstreams) -> Mode:
    """`mode` as a Mode, if it names one and the topology has the instances it routes to."""
    if not is_mode(mode):
        raise UsageError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    has_pd = bool(upstreams.prefill) and bool(upstreams.decode)
    if mode in PD_MODES and not has_pd:
        raise UsageError(f"--mode {mode} needs prefill and decode instances; the topology has replicas only")
    if mode == "replication" and not (upstreams.replica or has_pd):
        raise UsageError("--mode replication needs replicas (or P and D instances to serve as replicas)")
    return mode


def proxy_command(options: ProxyOptions, upstreams: Upstreams) -> list[str]:
    """argv of `ppd proxy`: one --prefill/--decode/--replica flag per engine URL."""
    argv = [options.python, "-m", "ppd", "proxy", "--host", options.host, "--port", str(options.port)]
    argv += ["--mode", options.mode]
    argv += _repeated("--prefill", upstreams.prefill)
    argv += _repeated("--decode", upstreams.decode)
    argv += _repeated("--replica", upstreams.replica)
    return argv + list(options.extra_args)


def _repeated(flag: str, urls: Sequence[str]) -> list[str]:
    return [part for url in urls for part in (flag, url)]
