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


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def test_two_hosts_started_one_at_a_time_with_only_host(tmp_path: Path) -> None:
    # 127.0.0.1 and 127.0.0.2 stand for two machines: both are loopback addresses on Linux.
    decode_port, prefill_port, proxy_port = (
        _free_port("127.0.0.2"),
        _free_port("127.0.0.1"),
        _free_port("127.0.0.1"),
    )
    topology = tmp_path / "two.toml"
    topology.write_text(
        f'[proxy]\nhost = "127.0.0.1"\nport = {proxy_port}\n'
        f'[[instance]]\nhost = "127.0.0.1"\nport = {prefill_port}\nrole = "prefill"\n'
        f'[[instance]]\nhost = "127.0.0.2"\nport = {decode_port}\nrole = "decode"\n'
    )
    common = ("up", "--backend", "sim", "--topology", str(topology), "--time-scale", str(TIME_SCALE))
    engines = _ppd(tmp_path, *common, "--only-host", "127.0.0.2", "--state", "b.json", "--logs", "logs-b")
    proxy_host = _ppd(tmp_path, *common, "--only-host", "127.0.0.1", "--state", "a.json", "--logs", "logs-a")
    try:
        assert engines.returncode == 0, engines.stderr
        assert proxy_host.returncode == 0, proxy_host.stderr
        assert "proxy" not in engines.stdout.split("All servers ready!")[1]  # the engine host runs no proxy
        assert "waiting for 1 engine(s) on other hosts" in proxy_host.stdout
        assert "warming 1 P/D pair(s)" in proxy_host.stdout
        saved = state.load(tmp_path / "a.json")
        assert saved is not None
        assert [r.name for r in saved.processes] == ["prefill0", "proxy"]
        assert saved.urls("decode") == [f"http://127.0.0.2:{decode_port}"]
        status = _get_json(f"{saved.proxy_url}/status")
        assert status["decode"] == [f"http://127.0.0.2:{decode_port}"]
        assert _complete(str(saved.proxy_url), "w3 w4 w5")["usage"]["completion_tokens"] == 3  # type: ignore[index]
    finally:
        down_a = _ppd(tmp_path, "down", "--state", "a.json")
        down_b = _ppd(tmp_path, "down", "--state", "b.json")
    assert "decode0" not in down_a.stdout  # each host stops only its own processes
    assert "decode0" in down_b.stdout
    assert down_a.returncode == down_b.returncode == 0
