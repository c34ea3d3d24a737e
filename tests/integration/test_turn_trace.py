"""PPD_TURN_TRACE: one turn through a real `ppd proxy` and `ppd sim`, stamped by both on one clock."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import Server, http_call
from ppd.turn_trace import TRACE_ENV, TurnTrace

SIM = ("sim", "--time-scale", "0.05")


def trace_lines(folder: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(folder.glob("*.jsonl")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines += [json.loads(line) for line in data.decode().splitlines()]
    return lines


def test_off_unless_the_variable_names_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACE_ENV, raising=False)
    assert TurnTrace.from_env("sim") is None
    monkeypatch.setenv(TRACE_ENV, "")
    assert TurnTrace.from_env("sim") is None


def test_a_trace_file_starts_with_both_clocks_and_drops_writes_after_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_ENV, str(tmp_path / "made"))
    trace = TurnTrace.from_env("bench")
    assert trace is not None and trace.path.parent == tmp_path / "made"
    trace.write("bench", sid="s", sent=1.5)
    trace.close()
    trace.write("bench", sid="late")
    clock, event = trace_lines(tmp_path / "made")
    assert clock["ev"] == "clock" and clock["role"] == "bench"
    assert abs(clock["perf"] - clock["monotonic"]) < 0.01  # Linux: one clock (CLOCK_MONOTONIC)
    assert event == {"ev": "bench", "sid": "s", "sent": 1.5}


def test_one_turn_is_stamped_by_the_proxy_and_the_sim_in_order(
    ppd_server: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    sim = ppd_server(*SIM)
    proxy = ppd_server("proxy", "--mode", "replication", "--replica", sim.url)
    body = {"model": "llama", "prompt": "w1 w2 w3", "max_tokens": 4, "stream": True}
    headers = {"Content-Type": "application/json", "X-Session-ID": "traced"}
    reply = http_call(proxy.url + "/v1/completions", json.dumps(body).encode(), headers)
    assert reply.status == 200, reply.body
    proxy.stop()
    sim.stop()  # their files are flushed when they stop
    lines = trace_lines(tmp_path)
    [turn] = [e for e in lines if e["ev"] == "proxy" and e["sid"] == "traced"]
    rid = "cmpl-" + turn["rid"]
    [intake] = [e for e in lines if e["ev"] == "intake" and e["rid"] == rid]
    [step] = [e for e in lines if e["ev"] == "step" and rid in e["first"]]
    [first] = [e for e in lines if e["ev"] == "first" and e["rid"] == rid]
    assert turn["turn"] == 1 and turn["route"] == "replica"
    assert turn["start"] <= turn["forward"] <= turn["target_sent"] <= intake["handler"]
    assert intake["handler"] <= intake["arrival"] <= intake["submit"] <= step["t"] <= first["t"]
    assert step["prev_t"] < intake["submit"]  # it joined the first step decided after its submit
    assert first["t"] <= turn["first"] and turn["headers"] <= turn["first"]
    assert not intake["pulled"] and intake["ready_loop"] >= intake["arrival_loop"]
