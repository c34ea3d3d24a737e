"""The state file `ppd up` writes and `ppd down` reads: what was started, where, under which pid.

It is rewritten (atomically) after every process start, so `ppd down` can clean up even after a
`ppd up` that was interrupted half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ppd.errors import UsageError

STATE_VERSION = 1
DEFAULT_STATE_PATH = Path(".ppd/state.json")


@dataclass(frozen=True)
class ProcessRecord:
    """One process `ppd up` started on this host."""

    name: str  # prefill0, decode0, worker0, engine0 or proxy
    role: str  # prefill | decode | replica | both | proxy
    url: str  # base URL; the bound port once known
    pid: int
    identity: str  # start-time token, compared before any signal (see process.py)
    log_path: str
    argv: list[str]


@dataclass(frozen=True)
class RemoteInstance:
    """An instance of the topology on another host: the proxy routes to it, this host never signals it."""

    name: str
    role: str
    url: str


@dataclass
class DeploymentState:
    """Everything about one deployment that must survive `ppd up`."""

    backend: str
    topology: str
    mode: str | None
    processes: list[ProcessRecord] = field(default_factory=list)
    remote: list[RemoteInstance] = field(default_factory=list)
    proxy_url: str | None = None
    engine_version: str | None = None
    created_at: str = ""

    def urls(self, role: str) -> list[str]:
        """URLs of the instances with `role`, this host's first, then other hosts'."""
        local = [record.url for record in self.processes if record.role == role]
        return local + [instance.url for instance in self.remote if instance.role == role]


def save(state: DeploymentState, path: Path) -> None:
    """Write the state atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": STATE_VERSION, **asdict(state)}
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp_path, path)


def load(path: Path) -> DeploymentState | None:
    """The state at path, or None when there is no file; UsageError when it is not a state file
    `ppd up` could have written (its whole shape is checked: its pids are about to be signalled)."""
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(
            f"state file {path} is unreadable ({exc}); delete it once nothing is running"
        ) from exc
    if not isinstance(data, dict):
        raise UsageError(
            f"state file {path} is malformed (not a JSON object); delete it once nothing is running"
        )
    if data.get("version") != STATE_VERSION:
        raise UsageError(
            f"state file {path} has version {data.get('version')!r}; this ppd reads {STATE_VERSION}"
        )
    try:
        return _checked_state(data)
    except StateShapeError as exc:
        raise UsageError(
            f"state file {path} is malformed ({exc}); delete it once nothing is running"
        ) from exc


class StateShapeError(ValueError):
    """A state file's content is not what `ppd up` writes; the message names the field."""


def _checked_state(data: dict[str, Any]) -> DeploymentState:
    expected = {"version", *(f.name for f in fields(DeploymentState))}
    unknown = sorted(set(data) - expected)
    if unknown:
        raise StateShapeError(f"unknown field(s) {', '.join(map(repr, unknown))}")
    processes, remote = _field(data, "processes", list, ""), _field(data, "remote", list, "", default=[])
    return DeploymentState(
        backend=_field(data, "backend", str, ""),
        topology=_field(data, "topology", str, ""),
        mode=_field(data, "mode", (str, type(None)), ""),
        processes=[_checked_process(record, f"processes[{i}]") for i, record in enumerate(processes)],
        remote=[_checked_remote(instance, f"remote[{i}]") for i, instance in enumerate(remote)],
        proxy_url=_field(data, "proxy_url", (str, type(None)), "", default=None),
        engine_version=_field(data, "engine_version", (str, type(None)), "", default=None),
        created_at=_field(data, "created_at", str, "", default=""),
    )


def _checked_process(record: Any, where: str) -> ProcessRecord:
    if not isinstance(record, dict) or set(record) != {f.name for f in fields(ProcessRecord)}:
        raise StateShapeError(f"{where} must be an object with exactly the fields of a started process")
    pid = _field(record, "pid", int, where)
    # pid 0 or a negative pid would signal a whole process group of our own, and pid 1 is init:
    # `ppd down` with "pid": 0 killed its own group (exit 137).
    if isinstance(pid, bool) or pid <= 1:
        raise StateShapeError(f"{where}.pid must be a process id > 1, got {pid!r}")
    argv = _field(record, "argv", list, where)
    if not all(isinstance(arg, str) for arg in argv):
        raise StateShapeError(f"{where}.argv must be a list of strings")
    return ProcessRecord(
        name=_field(record, "name", str, where),
        role=_field(record, "role", str, where),
        url=_field(record, "url", str, where),
        pid=pid,
        identity=_field(record, "identity", str, where),
        log_path=_field(record, "log_path", str, where),
        argv=argv,
    )


def _checked_remote(instance: Any, where: str) -> RemoteInstance:
    if not isinstance(instance, dict) or set(instance) != {f.name for f in fields(RemoteInstance)}:
        raise StateShapeError(f"{where} must be an object with name, role and url")
    return RemoteInstance(*(_field(instance, name, str, where) for name in ("name", "role", "url")))


_MISSING = object()


def _field(
    data: dict[str, Any], name: str, types: type | tuple[type, ...], where: str, default: Any = _MISSING
) -> Any:
    value = data.get(name, default)
    label = f"{where}.{name}" if where else name
    if value is _MISSING:
        raise StateShapeError(f"{label} is missing")
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise StateShapeError(f"{label} has the wrong type ({type(value).__name__}: {value!r:.40})")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def remove(path: Path) -> None:
    """Delete the state file (and its directory when it is ours and now empty)."""
    path.unlink(missing_ok=True)
    if path.parent.name == DEFAULT_STATE_PATH.parent.name:
        with contextlib.suppress(OSError):
            path.parent.rmdir()
