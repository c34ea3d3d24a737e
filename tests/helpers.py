"""Start `ppd` servers as real subprocesses on free ports, and stop them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

_URL_RE = re.compile(r"listening on (http://\S+)")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: list[str]

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after timeout_s; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        return self.process.returncode


def start_ppd(*args: str, timeout_s: float = 20.0) -> Server:
    """Run `python -m ppd ARGS...` and wait for its `listening on URL` line."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "ppd", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    log: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            match = _URL_RE.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        process.stdout.close()  # at EOF: the process is gone; no unclosed-file warning later
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout_s) or not found:
        process.kill()
        process.wait()
        raise RuntimeError(f"ppd {' '.join(args)} did not start:\n{''.join(log)}")
    return Server(found[0], process, log)


@dataclass
class Reply:
    """A whole HTTP answer, error statuses included."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_call(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
) -> Reply:
    """One blocking HTTP request (30 s timeout); a 4xx/5xx is a Reply, not an exception."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


class JsonEngineHandler(BaseHTTPRequestHandler):
    """A stand-in engine's handler base: JSON answers, no access log."""

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def load_tool(name: str) -> Any:
    """Import tools/<name>.py (the tools are scripts, not a package) as module `name`."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def commit(store: Any, identity: Any, outcome: Any, conversation: Any = None) -> Any:
    """A completed turn of `conversation` (None: a new one) in a router ConversationStore, committed
    with the chunk keys and text length recognise() makes for identity, as the router does."""
    from dataclasses import replace

    recognition = replace(store.recognise(identity), conversation=conversation)
    return store.commit_turn(identity, recognition, outcome)
