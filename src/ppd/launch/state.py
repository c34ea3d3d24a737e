"""The state file `ppd up` writes and `ppd down` reads: what was started, where, under which pid.

It is rewritten (atomically) after every process start, so `ppd down` can clean up even after a
`ppd up` that was interrupted half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
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
    """The state at path, or None when there is no file."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"state file {path} is unreadable ({exc}); delete it once nothing is running"
        ) from exc
    if data.get("version") != STATE_VERSION:
        raise UsageError(
            f"state file {path} has version {data.get('version')!r}; this ppd reads {STATE_VERSION}"
        )
    try:
        records = [ProcessRecord(**record) for record in data.pop("processes")]
        remote = [RemoteInstance(**instance) for instance in data.pop("remote", [])]
        data.pop("version")
        return DeploymentState(processes=records, remote=remote, **data)
    except (KeyError, TypeError) as exc:
        raise UsageError(
            f"state file {path} is malformed ({exc}); delete it once nothing is running"
        ) from exc


def remove(path: Path) -> None:
    """Delete the state file (and its directory when it is ours and now empty)."""
    path.unlink(missing_ok=True)
    if path.parent.name == DEFAULT_STATE_PATH.parent.name:
        with contextlib.suppress(OSError):
            path.parent.rmdir()
