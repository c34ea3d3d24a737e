"""benchmarks/turn_trace.py --body-reads: each upstream request's way from the proxy's send to the
sim's arrival, split by whether the request sent before it to the same sim had arrived."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import turn_trace


def _proxy(rid: str, target_sent: float, prefill_sent: float | None = None) -> dict[str, object]:
    return {"ev": "proxy", "rid": rid, "target_sent": target_sent, "prefill_sent": prefill_sent}


def _intake(rid: str, arrival: float, prompt: int, pulled: bool = False) -> dict[str, object]:
    return {
        "ev": "intake",
        "rid": f"cmpl-{rid}",
        "eng": "e0",
        "arrival": arrival,
        "prompt": prompt,
        "pulled": pulled,
    }


def test_a_body_sent_before_the_last_one_arrived_counts_as_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = [
        _proxy("a", 1.000),
        _proxy("b", 1.002),
        _proxy("c", 2.000),
        _proxy("d", 3.000, prefill_sent=2.990),
    ]
    sim = [
        _intake("a", 1.004, 8192),  # alone: 4 ms
        _intake("b", 1.010, 8000),  # sent at 1.002, before a arrived: behind, 8 ms
        _intake("c", 2.003, 8192),  # alone: 3 ms
        _intake("d", 2.993, 4096),  # P's intake of a P->D turn: alone, 3 ms
        _intake("d", 3.002, 4096, pulled=True),  # D's, on another sim (a file of its own): alone, 2 ms
    ]
    (tmp_path / "proxy-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in proxy))
    (tmp_path / "sim-2.jsonl").write_text("".join(json.dumps(e) + "\n" for e in sim[:4]))
    (tmp_path / "sim-3.jsonl").write_text(json.dumps(sim[4]) + "\n")
    assert turn_trace.body_reads(tmp_path) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == (
        "turn_trace_body_reads requests=5 behind=1 t4096_behind_ms=nan t4096_alone_ms=2.50 "
        "t8192_behind_ms=8.00 t8192_alone_ms=3.50 t16384_behind_ms=nan t16384_alone_ms=nan"
    )
