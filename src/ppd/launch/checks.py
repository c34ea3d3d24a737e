"""Checks before anything starts: free ports, enough GPUs. Each failure is one clear UsageError."""

from __future__ import annotations

import dataclasses
import errno
import shutil
import socket
import subprocess
from collections.abc import Iterable, Mapping

from ppd.errors import UsageError
from ppd.launch.topology import Instance


def check_port_free(host: str, port: int, what: str) -> None:
    """UsageError when host:port cannot be bound (port 0 always passes)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Same option as the servers use, so a port in TIME_WAIT is not reported as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"port {port} on {host} ({what}) is already in use: stop what holds it (`ppd down` "
                    f"if it is an earlier deployment; `ss -ltnp 'sport = :{port}'` shows the owner)"
                ) from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"{host} ({what}) is not an address of this machine; check --only-host"
                ) from exc
            raise UsageError(f"cannot bind {host}:{port} ({what}): {exc.strerror}") from exc


def check_ports_free(endpoints: Iterable[tuple[str, int, str]]) -> None:
    """check_port_free for every (host, port, what)."""
    for host, port, what in endpoints:
        check_port_free(host, port, what)


def available_gpus(explicit: tuple[str, ...] | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """GPUs this host may use: --gpus, else CUDA_VISIBLE_DEVICES, else every GPU `nvidia-smi -L` lists."""
    if explicit is not None:
        return explicit
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return tuple(gpu.strip() for gpu in visible.split(",") if gpu.strip())
    if shutil.which("nvidia-smi") is None:
        raise UsageError(
            "no GPU found: nvidia-smi is not on PATH and CUDA_VISIBLE_DEVICES is unset (or pass --gpus)"
        )
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"nvidia-smi -L failed: {exc}") from exc
    if listing.returncode != 0:
        raise UsageError(f"nvidia-smi -L failed: {listing.stderr.strip() or listing.stdout.strip()}")
    count = sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))
    return tuple(str(index) for index in range(count))


def assign_gpus(instances: tuple[Instance, ...], gpus: tuple[str, ...]) -> tuple[Instance, ...]:
    """Give every instance without a GPU the next unused one; UsageError when there are too few."""
    wanted = [i.gpu for i in instances if i.gpu is not None]
    for gpu in wanted:
        if gpu not in gpus:
            raise UsageError(
                f"GPU {gpu} is in the topology but not available here (available: {_names(gpus)})"
            )
    free = [gpu for gpu in gpus if gpu not in wanted]
    needed = sum(1 for i in instances if i.gpu is None)
    if needed > len(free):
        raise UsageError(
            f"the topology needs {len(instances)} GPUs on this host but only {len(gpus)} are available "
            f"({_names(gpus)}); use a smaller topology or pass --gpus"
        )
    assigned = iter(free)
    return tuple(i if i.gpu is not None else dataclasses.replace(i, gpu=next(assigned)) for i in instances)


def _names(gpus: tuple[str, ...]) -> str:
    return ",".join(gpus) if gpus else "none"
