"""The vllm backend end to end without a GPU: a stand-in `vllm` package checks what `ppd up` passes
(command line, environment, chat template) and serves with a ppd sim, so health, warm-up, proxy and
`ppd down` run exactly as they would on real vLLM."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from ppd.launch import process, state
from ppd.tokens import CHAT_TEMPLATE_JINJA

FAKE_VLLM_MAIN = """
import os, runpy, sys
args = sys.argv[1:]
def flag(name):
    return args[args.index(name) + 1]
assert args[0] == "serve", args
template = open(flag("--chat-template")).read()
print("fake-vllm", json.dumps({
    "model": args[1], "served": flag("--served-model-name"), "kv": flag("--kv-transfer-config"),
    "gpu": os.environ["CUDA_VISIBLE_DEVICES"], "nixl_port": os.environ["VLLM_NIXL_SIDE_CHANNEL_PORT"],
    "flashinfer": os.environ.get("VLLM_USE_FLASHINFER_SAMPLER"), "template": template,
    "prefix_caching": "--enable-prefix-caching" in args, "eager": "--enforce-eager" in args,
    "memory": flag("--gpu-memory-utilization"), "ipc_zcopy": os.environ.get("UCX_CUDA_IPC_ENABLE_GET_ZCOPY"),
}), flush=True)
sys.argv = ["ppd", "sim", "--host", flag("--host"), "--port", flag("--port"), "--time-scale", "0.05",
            "--served-model-name", flag("--served-model-name")]
runpy.run_module("ppd", run_name="__main__")
"""


def _fake_vllm(root: Path) -> Path:
    package = root / "site" / "vllm" / "entrypoints" / "cli"
    package.mkdir(parents=True)
    for directory in (package, package.parent, package.parent.parent):
        (directory / "__init__.py").write_text("")
    (package / "main.py").write_text("import json\n" + FAKE_VLLM_MAIN)
    return root / "site"


def _free_port_pair() -> int:
    """A port p with p, p + 1 and p + 100 free right now (vLLM needs fixed ports)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 100 <= 65535 and all(_is_free(port + offset) for offset in (1, 100)):
            return port
    raise RuntimeError("no free port pair")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ppd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppd", *args], cwd=cwd, capture_output=True, text=True, timeout=90, check=False
    )


def test_vllm_backend_up_and_down_with_a_stand_in_vllm(tmp_path: Path) -> None:
    site = _fake_vllm(tmp_path)
    port_base, nixl_base = _free_port_pair(), _free_port_pair()
    up = _ppd(
        tmp_path, "up", "--backend", "vllm", "--topology", "1p1d", "--model", "/opt/model", "--gpus", "3,5",
        "--port-base", str(port_base), "--nixl-port-base", str(nixl_base), "--proxy-port", "0",
        "--vllm-python", sys.executable, "--env", f"PYTHONPATH={site}",
        "--env", "VLLM_USE_FLASHINFER_SAMPLER=0",
        "--vllm-arg=--enforce-eager", "--warmup-handshakes", "1", "--mode", "ppd",
    )  # fmt: skip
    saved = state.load(tmp_path / ".ppd" / "state.json")
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert "All servers ready!" in up.stdout
        assert saved is not None
        assert saved.engine_version == "vllm unknown"  # the stand-in has no package metadata
        seen = {}
        for name in ("prefill0", "decode0"):
            first_line = (tmp_path / "logs" / f"{name}.log").read_text().splitlines()[0]
            seen[name] = json.loads(first_line.removeprefix("fake-vllm "))
        assert (seen["prefill0"]["gpu"], seen["decode0"]["gpu"]) == ("3", "5")
        assert seen["prefill0"]["ipc_zcopy"] is None  # one instance per GPU: UCX's own choice
        assert (seen["prefill0"]["nixl_port"], seen["decode0"]["nixl_port"]) == (
            str(nixl_base),
            str(nixl_base + 1),
        )
        for seen_by_engine in seen.values():
            assert seen_by_engine["model"] == "/opt/model"
            assert seen_by_engine["served"] == "llama"
            assert json.loads(seen_by_engine["kv"]) == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
            assert seen_by_engine["template"] == CHAT_TEMPLATE_JINJA
            assert seen_by_engine["flashinfer"] == "0"
            assert seen_by_engine["prefix_caching"] and seen_by_engine["eager"]
        assert saved.urls("prefill") == [f"http://127.0.0.1:{port_base}"]
    finally:
        down = _ppd(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert saved is not None
    for record in saved.processes:
        assert not process.is_running(process.Started(record.pid, record.identity)), record.name


def test_two_instances_share_one_gpu_one_after_the_other(tmp_path: Path) -> None:
    site = _fake_vllm(tmp_path)
    up = _ppd(
        tmp_path, "up", "--backend", "vllm", "--topology", "1p1d", "--model", "/opt/model", "--gpus", "0",
        "--instances-per-gpu", "2", "--gpu-memory-utilization", "0.42", "--proxy-port", "0",
        "--port-base", str(_free_port_pair()), "--nixl-port-base", str(_free_port_pair()),
        "--vllm-python", sys.executable, "--env", f"PYTHONPATH={site}", "--warmup-handshakes", "1",
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        for name in ("prefill0", "decode0"):
            seen = json.loads(
                (tmp_path / "logs" / f"{name}.log").read_text().splitlines()[0][len("fake-vllm ") :]
            )
            assert (seen["gpu"], seen["memory"], seen["ipc_zcopy"]) == ("0", "0.42", "y")
        # decode0 starts only once prefill0 answers /health
        lines = up.stdout.splitlines()
        waits = [k for k, line in enumerate(lines) if line.startswith("waiting for 1 engine")]
        starts = [k for k, line in enumerate(lines) if line.startswith("starting decode0")]
        assert len(waits) == 2 and waits[0] < starts[0] < waits[1], up.stdout
    finally:
        down = _ppd(tmp_path, "down")
    assert down.returncode == 0, down.stderr


def test_missing_vllm_and_too_few_gpus_are_clear_errors(tmp_path: Path) -> None:
    no_vllm = _ppd(
        tmp_path, "up", "--backend", "vllm", "--model", "m", "--gpus", "0,1", "--proxy-port", "0",
        "--port-base", str(_free_port_pair()), "--nixl-port-base", str(_free_port_pair()),
        "--vllm-python", sys.executable,
    )  # fmt: skip
    assert no_vllm.returncode == 2
    assert "vLLM is not installed" in no_vllm.stderr
    assert "pip install" in no_vllm.stderr
    too_few = _ppd(tmp_path, "up", "--backend", "vllm", "--model", "m", "--topology", "2p2d", "--gpus", "0")
    assert too_few.returncode == 2
    assert "needs 4 GPUs on this host but only 1 are available" in too_few.stderr
    too_much = _ppd(
        tmp_path, "up", "--backend", "vllm", "--model", "m", "--gpus", "0", "--instances-per-gpu", "2"
    )  # fmt: skip
    assert too_much.returncode == 2
    assert "use --gpu-memory-utilization 0.47 or less" in too_much.stderr
    assert not (tmp_path / ".ppd").exists()
