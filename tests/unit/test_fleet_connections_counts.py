"""benchmarks/fleet_connections.py: the proxy's decision log summed per run, a new conversation's turn
cut off before the router committed it (no conversation in its line) counted in its run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fleet_connections


def _line(conversation: str | None, opened: int) -> str:
    return json.dumps({"conversation": conversation, "connections_opened": opened, "status": 200})


def test_a_cut_turn_without_a_conversation_counts_in_the_run_logged_before_it(tmp_path: Path) -> None:
    first, second = "s:bench-ab12-pd-W3-q8-r0-c", "s:bench-ab12-ppd-W3-q8-r0-c"
    lines = [
        _line(first + "0", 1),
        _line(None, 1),  # cut off at the first run's end
        _line(first + "1", 0),
        _line(None, 2),
        _line(second + "0", 1),
        _line(None, 1),
        _line("someone-else", 5),  # not one of the bench's conversations
    ]
    (tmp_path / "proxy-decisions-1p1d.jsonl").write_text("\n".join(lines) + "\n")
    counts = fleet_connections.http_proxy_counts(tmp_path, "1p1d")
    assert counts == {("W3", "pd", 8.0, 0): 4, ("W3", "ppd", 8.0, 0): 2}
