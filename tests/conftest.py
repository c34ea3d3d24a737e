"""Shared fixtures: real `ppd` servers on free ports, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from helpers import Server, start_ppd


@pytest.fixture
def ppd_server() -> Iterator[Callable[..., Server]]:
    """Factory: ppd_server("sim", "--time-scale", "0.05") -> Server with .url; all stopped at teardown."""
    servers: list[Server] = []

    def start(*args: str) -> Server:
        server = start_ppd(*args, "--port", "0")
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()
