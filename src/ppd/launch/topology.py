"""Topologies: which engine instances run where, in which role, on which port and GPU.

A topology comes either from a short spec — `1p1d`, `2p2d`, `2r`, `1p1d2r` (x prefill + y decode
instances, n replicas) — laid out on one host, or from a TOML file that names every instance:

    [proxy]
    host = "10.0.0.1"
    port = 10001

    [[instance]]
    host = "10.0.0.1"
    port = 8100
    role = "prefill"      # prefill | decode | replica | both
    gpu = "0"             # optional: CUDA_VISIBLE_DEVICES for this instance
    nixl_port = 5600      # optional: VLLM_NIXL_SIDE_CHANNEL_PORT (default: 5600 + index on its host)

Instances are named by role and index: prefill0, decode0, worker0 (replicas), engine0 (both).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ppd.errors import UsageError
from ppd.modes import DEPLOY_ROLES as ROLES
from ppd.modes import DeployRole as Role

NAME_PREFIX: dict[Role, str] = {
    "prefill": "prefill",
    "decode": "decode",
    "replica": "worker",
    "both": "engine",
}

# Each instance on a host gets port_base + 100 * k, as the seed did (prefill :8100, decode :8200).
PORT_STEP = 100
DEFAULT_NIXL_PORT_BASE = 5600

_SPEC_RE = re.compile(r"^(?:(?P<p>\d+)p(?P<d>\d+)d)?(?:(?P<r>\d+)r)?$")
# An instance's name is also its log file's name under --logs: a plain file name, no path.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PORT = 65535
_INSTANCE_KEYS = {"host", "port", "role", "gpu", "nixl_port", "name"}
_PROXY_KEYS = {"host", "port"}


@dataclass(frozen=True)
class Instance:
    """One engine: its name, role, bind address, HTTP port, GPU and NIXL side-channel port."""

    name: str
    role: Role
    host: str
    port: int
    gpu: str | None
    nixl_port: int

    @property
    def url(self) -> str:
        """Base URL (no trailing slash); meaningless while port is 0 (picked at start)."""
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class Topology:
    """All instances of a deployment plus where the proxy listens."""

    instances: tuple[Instance, ...]
    proxy_host: str
    proxy_port: int
    source: str  # the spec or file it came from, recorded in the state file

    def by_role(self, role: Role) -> tuple[Instance, ...]:
        """Instances with exactly this role."""
        return tuple(i for i in self.instances if i.role == role)

    @property
    def hosts(self) -> tuple[str, ...]:
        """Distinct hosts, in order of first appearance."""
        return tuple(dict.fromkeys([i.host for i in self.instances] + [self.proxy_host]))

    def on_host(self, host: str) -> tuple[Instance, ...]:
        """Instances that run on `host`."""
        return tuple(i for i in self.instances if i.host == host)


@dataclass(frozen=True)
class LayoutOptions:
    """How a short spec is laid out on one host."""

    host: str = "127.0.0.1"
    port_base: int = 8100  # 0: every instance picks a free port when it starts (sim only)
    proxy_port: int = 10001
    nixl_port_base: int = DEFAULT_NIXL_PORT_BASE


def parse_spec(spec: str) -> dict[Role, int]:
    """Counts per role of a spec like `1p1d`, `2p2d`, `4r` or `1p1d2r`."""
    match = _SPEC_RE.match(spec.strip().lower())
    if not match or not any(match.groupdict().values()):
        raise UsageError(
            f"topology {spec!r} is not understood: use <x>p<y>d, <n>r, <x>p<y>d<n>r or a TOML file"
        )
    counts: dict[Role, int] = {
        "prefill": int(match["p"] or 0),
        "decode": int(match["d"] or 0),
        "replica": int(match["r"] or 0),
    }
    if match["p"] is not None and (counts["prefill"] < 1 or counts["decode"] < 1):
        raise UsageError(f"topology {spec!r} needs at least one prefill and one decode instance")
    if match["r"] is not None and counts["replica"] < 1:
        raise UsageError(f"topology {spec!r} needs at least one replica")
    return counts


def layout_spec(spec: str, options: LayoutOptions) -> Topology:
    """Lay a short spec out on one host: prefill instances first, then decode, then replicas.

    GPUs are assigned later, from the GPUs found on the host (see checks.assign_gpus).
    """
    counts = parse_spec(spec)
    roles: list[Role] = [role for role in ROLES for _ in range(counts.get(role, 0))]
    check_layout_ports(options, len(roles))
    instances = []
    for k, role in enumerate(roles):
        index = roles[:k].count(role)
        port = options.port_base + PORT_STEP * k if options.port_base else 0
        name = f"{NAME_PREFIX[role]}{index}"
        instances.append(Instance(name, role, options.host, port, None, options.nixl_port_base + k))
    return Topology(tuple(instances), options.host, options.proxy_port, spec)


def check_layout_ports(options: LayoutOptions, num_instances: int) -> None:
    """UsageError unless every port the layout gives (engines at port_base + 100 k, NIXL side
    channels at nixl_port_base + k, the proxy) is a port number: 65500 + 100 is not one, and used to
    end in an OverflowError traceback at bind time."""
    last = num_instances - 1
    if options.port_base and not 1 <= options.port_base <= options.port_base + PORT_STEP * last <= MAX_PORT:
        highest = MAX_PORT - PORT_STEP * last
        raise UsageError(
            f"--port-base {options.port_base} gives {num_instances} engine(s) ports up to "
            f"{options.port_base + PORT_STEP * last}; ports end at {MAX_PORT}: "
            f"use 1-{highest} (or 0: free ports)"
        )
    if not 1 <= options.nixl_port_base <= options.nixl_port_base + last <= MAX_PORT:
        raise UsageError(
            f"--nixl-port-base {options.nixl_port_base} must leave {num_instances} ports within 1-{MAX_PORT}"
        )
    if not 0 <= options.proxy_port <= MAX_PORT:
        raise UsageError(
            f"--proxy-port {options.proxy_port} must be a port number 1-{MAX_PORT} (or 0: a free port)"
        )


def load_file(path: Path, nixl_port_base: int = DEFAULT_NIXL_PORT_BASE) -> Topology:
    """Read a TOML topology file (see the module docstring)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read topology file {path}: {exc}") from exc
    unknown = set(data) - {"proxy", "instance"}
    if unknown:
        raise UsageError(f"{path}: unknown top-level keys {sorted(unknown)}; allowed: [proxy], [[instance]]")
    raw_instances = data.get("instance")
    if not isinstance(raw_instances, list) or not raw_instances:
        raise UsageError(f"{path}: needs at least one [[instance]] table")
    instances = _instances_from_tables(path, raw_instances, nixl_port_base)
    proxy = _table(path, "proxy", data.get("proxy", {}), _PROXY_KEYS)
    proxy_host = _string(path, "proxy.host", proxy.get("host", instances[0].host))
    proxy_port = _port(path, "proxy.port", proxy.get("port", 10001))
    topology = Topology(instances, proxy_host, proxy_port, str(path))
    _check_unique_endpoints(path, topology)
    return topology


def _instances_from_tables(path: Path, tables: list[Any], nixl_port_base: int) -> tuple[Instance, ...]:
    instances: list[Instance] = []
    for k, raw in enumerate(tables):
        table = _table(path, f"instance #{k + 1}", raw, _INSTANCE_KEYS)
        role = table.get("role")
        if role not in ROLES:
            raise UsageError(f"{path}: instance #{k + 1} has role {role!r}; allowed: {', '.join(ROLES)}")
        role = cast(Role, role)
        host = _string(path, f"instance #{k + 1} host", table.get("host", "127.0.0.1"))
        port = _port(path, f"instance #{k + 1} port", table.get("port"))
        gpu = table.get("gpu")
        gpu_text = None if gpu is None else _string(path, f"instance #{k + 1} gpu", str(gpu))
        index_on_host = sum(1 for other in instances if other.host == host)
        nixl_port = _port(
            path, f"instance #{k + 1} nixl_port", table.get("nixl_port", nixl_port_base + index_on_host)
        )
        default_name = f"{NAME_PREFIX[role]}{sum(1 for other in instances if other.role == role)}"
        name = _string(path, f"instance #{k + 1} name", table.get("name", default_name))
        if not _NAME_RE.match(name):
            raise UsageError(
                f"{path}: instance #{k + 1} name {name!r} must be a plain file name (letters, digits, "
                "'_', '.', '-'; at most 64; not starting with '.'): it names the instance's log under --logs"
            )
        instances.append(Instance(name, role, host, port, gpu_text, nixl_port))
    return tuple(instances)


def _check_unique_endpoints(path: Path, topology: Topology) -> None:
    names = [i.name for i in topology.instances]
    if len(set(names)) != len(names):
        raise UsageError(f"{path}: instance names must be unique, got {names}")
    endpoints = [(i.host, i.port) for i in topology.instances] + [(topology.proxy_host, topology.proxy_port)]
    endpoints += [(i.host, i.nixl_port) for i in topology.instances]
    seen: set[tuple[str, int]] = set()
    for endpoint in endpoints:
        if endpoint in seen:
            raise UsageError(f"{path}: port {endpoint[1]} is used twice on host {endpoint[0]}")
        seen.add(endpoint)
    gpus = [(i.host, i.gpu) for i in topology.instances if i.gpu is not None]
    if len(set(gpus)) != len(gpus):
        raise UsageError(f"{path}: a GPU is given to two instances on the same host")


def _table(path: Path, what: str, raw: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: {what} must be a table")
    unknown = set(raw) - allowed
    if unknown:
        raise UsageError(f"{path}: {what} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return raw


def _string(path: Path, what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{path}: {what} must be a non-empty string, got {value!r}")
    return value


def _port(path: Path, what: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PORT:
        raise UsageError(f"{path}: {what} must be a port number 1-65535, got {value!r}")
    return value


def check_only_host(topology: Topology, only_host: str | None) -> None:
    """A topology over several hosts is started one host at a time, with --only-host."""
    if only_host is None:
        if len(topology.hosts) > 1:
            raise UsageError(
                f"topology {topology.source} spans hosts {', '.join(topology.hosts)}: "
                "run `ppd up --only-host HOST` on each of them"
            )
        return
    if only_host not in topology.hosts:
        raise UsageError(
            f"--only-host {only_host} is not in the topology; hosts: {', '.join(topology.hosts)}"
        )
