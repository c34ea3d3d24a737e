"""`ppd up` / `ppd down` on simulated engines: bring topologies up, use them, and leave nothing behind."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.launch import process, state
from ppd.launch.deploy import Deployment, sim_up_config, start, stop
from ppd.launch.readiness import LaunchError

TIME_SCALE = 0.05


def _ppd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppd", *args], cwd=cwd, capture_output=True, text=True, timeout=90, check=False
    )


def _records(deployment: Deployment) -> list[state.ProcessRecord]:
    return list(deployment.state.processes)


def _assert_all_gone(records: list[state.ProcessRecord]) -> None:
    for record in records:
        assert not process.is_running(process.Started(record.pid, record.identity)), record.name
        assert process.group_members(record.pid) == [], record.name


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        payload: dict[str, object] = json.loads(response.read())
    return payload


def _complete(url: str, prompt: str) -> dict[str, object]:
    body = json.dumps({"model": "llama", "prompt": prompt, "max_tokens": 3, "ignore_eos": True}).encode()
    request = urllib.request.Request(f"{url}/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload: dict[str, object] = json.loads(response.read())
    return payload


def test_1p1d_engines_only_through_the_python_api(tmp_path: Path) -> None:
    config = sim_up_config(
        "1p1d", logs_dir=tmp_path / "logs", state_path=tmp_path / "state.json", time_scale=TIME_SCALE,
        start_proxy=False, warmup_handshakes=2,
    )  # fmt: skip
    with start(config) as deployment:
        records = _records(deployment)
        assert [r.name for r in records] == ["prefill0", "decode0"]
        assert deployment.proxy_url is None
        assert len(deployment.prefill_urls) == len(deployment.decode_urls) == 1
        # The warm-up handshakes left their pulled blocks in D's prefix cache; D serves requests.
        answer = _complete(deployment.decode_urls[0], "w1 w2 w3 w4")
        assert answer["usage"]["completion_tokens"] == 3  # type: ignore[index]
        saved = json.loads((tmp_path / "state.json").read_text())
        assert [p["pid"] for p in saved["processes"]] == [r.pid for r in records]
        assert (tmp_path / "logs" / "prefill0.log").read_text().startswith("ppd sim listening on")
        assert all(":0" not in r.url for r in records)  # bound ports were read back
    _assert_all_gone(records)
    assert not (tmp_path / "state.json").exists()
    assert stop(tmp_path / "state.json") == []  # idempotent


def test_engine_that_dies_while_starting_is_reported_and_everything_stopped(tmp_path: Path) -> None:
    config = sim_up_config(
        "2p2d", logs_dir=tmp_path / "logs", state_path=tmp_path / "state.json", time_scale=TIME_SCALE,
        sim_args=("--no-such-flag",),
    )  # fmt: skip
    with pytest.raises(LaunchError, match="exited while starting") as caught:
        start(config)
    assert "--no-such-flag" in str(caught.value)  # the log's last lines are in the message
    assert not (tmp_path / "state.json").exists()


def test_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = _ppd(tmp_path, "up", "--backend", "sim", "--topology", "1p1d", "--port-base", str(port))
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 (prefill0) is already in use" in done.stderr
    assert not (tmp_path / ".ppd").exists()
    assert not (tmp_path / "logs").exists()


def test_a_second_up_on_the_same_state_is_refused(tmp_path: Path) -> None:
    config = sim_up_config(
        "1r", logs_dir=tmp_path / "logs", state_path=tmp_path / "state.json", time_scale=TIME_SCALE,
        start_proxy=False,
    )  # fmt: skip
    with start(config) as deployment:
        with pytest.raises(UsageError, match="already running"):
            start(config)
        records = _records(deployment)
        assert process.is_running(process.Started(records[0].pid, records[0].identity))
    _assert_all_gone(records)


def test_1p1d_with_proxy_serves_through_the_python_api(tmp_path: Path) -> None:
    config = sim_up_config(
        "1p1d",
        logs_dir=tmp_path / "logs",
        state_path=tmp_path / "state.json",
        time_scale=TIME_SCALE,
        mode="ppd",
    )
    with start(config) as deployment:
        records = _records(deployment)
        assert [r.name for r in records] == ["prefill0", "decode0", "proxy"]
        assert deployment.proxy_url is not None
        assert _get_json(f"{deployment.proxy_url}/mode") == {"mode": "ppd"}
        answer = _complete(deployment.proxy_url, "w5 w6 w7 w8 w9")
        assert answer["usage"]["completion_tokens"] == 3  # type: ignore[index]
    _assert_all_gone(records)


def test_2r_replication_through_the_python_api(tmp_path: Path) -> None:
    config = sim_up_config(
        "2r", logs_dir=tmp_path / "logs", state_path=tmp_path / "s.json", time_scale=TIME_SCALE
    )
    with start(config) as deployment:
        records = _records(deployment)
        assert [r.name for r in records] == ["worker0", "worker1", "proxy"]
        assert len(deployment.replica_urls) == 2
        assert deployment.state.mode == "replication"
        assert deployment.proxy_url is not None
        assert _complete(deployment.proxy_url, "w1 w2")["usage"]["completion_tokens"] == 3  # type: ignore[index]
    _assert_all_gone(records)


def test_2p2d_cli_up_then_down_leaves_nothing(tmp_path: Path) -> None:
    up = _ppd(
        tmp_path, "up", "--backend", "sim", "--topology", "2p2d", "--port-base", "0", "--proxy-port", "0",
        "--time-scale", str(TIME_SCALE), "--warmup-handshakes", "1",
    )  # fmt: skip
    saved = state.load(tmp_path / ".ppd" / "state.json")
    try:
        assert up.returncode == 0, up.stderr
        assert "All servers ready!" in up.stdout
        assert "warming 4 P/D pair(s)" in up.stdout
        assert saved is not None
        assert [r.name for r in saved.processes] == ["prefill0", "prefill1", "decode0", "decode1", "proxy"]
        assert {p.name for p in (tmp_path / "logs").iterdir()} >= {f"{r.name}.log" for r in saved.processes}
        status = _get_json(f"{saved.proxy_url}/status")
        assert status["prefill"] == saved.urls("prefill")  # the proxy got the bound URLs, in order
        assert status["decode"] == saved.urls("decode")
    finally:
        down = _ppd(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert "stopped everything" in down.stdout
    assert saved is not None
    _assert_all_gone(saved.processes)
    again = _ppd(tmp_path, "down")
    assert again.returncode == 0
    assert "nothing to stop" in again.stdout
