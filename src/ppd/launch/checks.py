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

# Instances sharing a GPU may ask for at most this fraction of its memory together (each process's
# CUDA context and the allocator's slack live outside vLLM's share).
MAX_SHARED_MEMORY_FRACTION = 0.95


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


def assign_gpus(
    instances: tuple[Instance, ...], gpus: tuple[str, ...], instances_per_gpu: int = 1
) -> tuple[Instance, ...]:
    """Give every instance without a GPU a place on the first GPU with room; UsageError when full.

    A GPU holds up to `instances_per_gpu` instances (each then needs its own share of the GPU's
    memory, --gpu-memory-utilization); instances that name their GPU take its room first.
    """
    if instances_per_gpu < 1:
        raise UsageError(f"--instances-per-gpu must be >= 1, got {instances_per_gpu}")
    wanted = [i.gpu for i in instances if i.gpu is not None]
    for gpu in wanted:
        if gpu not in gpus:
            raise UsageError(
                f"GPU {gpu} is in the topology but not available here (available: {_names(gpus)})"
            )
    room = {gpu: instances_per_gpu - wanted.count(gpu) for gpu in gpus}
    needed = sum(1 for i in instances if i.gpu is None)
    capacity = sum(max(0, free) for free in room.values())
    if needed > capacity and instances_per_gpu == 1:
        raise UsageError(
            f"the topology needs {len(instances)} GPUs on this host but only {len(gpus)} are available "
            f"({_names(gpus)}); use a smaller topology, pass --gpus, or share GPUs with --instances-per-gpu"
        )
    if needed > capacity:
        raise UsageError(
            f"the topology needs {len(instances)} instances on this host but {len(gpus)} GPUs "
            f"({_names(gpus)}) x {instances_per_gpu} per GPU hold only {len(gpus) * instances_per_gpu}"
        )
    slots = iter([gpu for gpu in gpus for _ in range(max(0, room[gpu]))])
    return tuple(i if i.gpu is not None else dataclasses.replace(i, gpu=next(slots)) for i in instances)


def check_memory_share(instances_per_gpu: int, gpu_memory_utilization: float) -> None:
    """UsageError when the instances sharing one GPU would ask for more than its memory.

    vLLM takes `gpu_memory_utilization` of the whole GPU per instance and refuses to start when less
    is free; a little stays for each process's CUDA context."""
    if not 0 < gpu_memory_utilization <= 1:
        raise UsageError(f"--gpu-memory-utilization must be in (0, 1], got {gpu_memory_utilization:g}")
    total = instances_per_gpu * gpu_memory_utilization
    if total > MAX_SHARED_MEMORY_FRACTION:
        most = MAX_SHARED_MEMORY_FRACTION / instances_per_gpu
        raise UsageError(
            f"{instances_per_gpu} instances per GPU x --gpu-memory-utilization {gpu_memory_utilization:g} "
            f"= {total:.2f} of the GPU's memory: use --gpu-memory-utilization {most:.2f} or less"
        )


def start_waves(instances: tuple[Instance, ...]) -> tuple[tuple[Instance, ...], ...]:
    """Instances grouped so that no two in a group share a GPU, in order: group k holds the k-th
    instance of every GPU (instances without a GPU, e.g. sims, all go in the first group).

    vLLM sizes its KV cache from a memory profile taken while it starts; two instances starting at
    once on one GPU would count each other's allocations, so they start one after the other."""
    waves: list[list[Instance]] = []
    seen: dict[str, int] = {}
    for instance in instances:
        rank = 0
        if instance.gpu is not None:
            rank = seen.get(instance.gpu, 0)
            seen[instance.gpu] = rank + 1
        while len(waves) <= rank:
            waves.append([])
        waves[rank].append(instance)
    return tuple(tuple(wave) for wave in waves)


def _names(gpus: tuple[str, ...]) -> str:
    return ",".join(gpus) if gpus else "none"
