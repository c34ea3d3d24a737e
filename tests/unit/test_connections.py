"""ConnectionGuard's admission: the global cap, the per-client cap, and the counts they leave."""

from __future__ import annotations

import json

from ppd.connections import ConnectionCounts, ConnectionGuard, ConnectionLimits


def guard(max_connections: int, per_client: int) -> ConnectionGuard:
    limits = ConnectionLimits(max_connections, header_timeout_s=1.0, max_connections_per_client=per_client)
    return ConnectionGuard(lambda: None, limits, ConnectionCounts())  # type: ignore[arg-type,return-value]


def status_of(answer: bytes | None) -> int | None:
    if answer is None:
        return None
    head, body = answer.split(b"\r\n\r\n", 1)
    assert json.loads(body)["error"]["code"] == int(head.split()[1])
    return int(head.split()[1])


def test_a_client_over_its_cap_gets_429_while_others_are_admitted_up_to_the_global_cap() -> None:
    connections = guard(max_connections=4, per_client=2)
    assert [status_of(connections.admit("a")) for _ in range(3)] == [None, None, 429]
    assert status_of(connections.admit("b")) is None
    assert status_of(connections.admit("c")) is None
    assert status_of(connections.admit("d")) == 503  # the server is full: 503, whoever asks
    assert connections.counts.num_open == 4 and connections.counts.num_accepted == 4
    assert connections.counts.num_refused == 1 and connections.counts.num_refused_per_client == 1
    connections.release("a")
    assert status_of(connections.admit("a")) is None  # a closed connection makes room again
    for peer in ("a", "a", "b", "c"):
        connections.release(peer)
    assert connections.counts.num_open == 0 and connections.open_by_peer == {}


def test_no_per_client_cap_by_default() -> None:
    connections = guard(max_connections=3, per_client=0)
    assert [status_of(connections.admit("a")) for _ in range(4)] == [None, None, None, 503]
