import json
import sys
from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.launch.topology import Instance
from ppd.launch.vllm import (
    VllmOptions,
    parse_env_assignments,
    vllm_command,
    vllm_env,
    vllm_version,
    write_chat_template,
)
from ppd.tokens import CHAT_TEMPLATE_JINJA

PREFILL = Instance("prefill0", "prefill", "127.0.0.1", 8100, "0", 5600)


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_command_matches_the_verified_gpu_setup() -> None:
    options = VllmOptions(model="/opt/model", python="python3", load_format="dummy")
    argv = vllm_command(PREFILL, options)
    assert argv[:5] == ["python3", "-m", "vllm.entrypoints.cli.main", "serve", "/opt/model"]
    assert _flag(argv, "--served-model-name") == "llama"
    assert _flag(argv, "--port") == "8100"
    assert _flag(argv, "--host") == "127.0.0.1"
    assert _flag(argv, "--load-format") == "dummy"
    assert _flag(argv, "--gpu-memory-utilization") == "0.85"
    assert _flag(argv, "--max-model-len") == "16384"
    assert json.loads(_flag(argv, "--kv-transfer-config")) == {
        "kv_connector": "NixlConnector",
        "kv_role": "kv_both",
    }
    assert "--enable-prefix-caching" in argv
    assert "--enable-prompt-tokens-details" in argv
    assert "--chat-template" not in argv
    assert "--block-size" not in argv


def test_command_optional_flags_and_passthrough(tmp_path: Path) -> None:
    options = VllmOptions(
        model="m",
        python="py",
        max_model_len=32768,
        block_size=16,
        chat_template_path=tmp_path / "t.jinja",
        extra_args=("--enforce-eager", "--seed", "3"),
    )
    argv = vllm_command(PREFILL, options)
    assert _flag(argv, "--max-model-len") == "32768"
    assert _flag(argv, "--block-size") == "16"
    assert _flag(argv, "--chat-template") == str(tmp_path / "t.jinja")
    assert argv[-3:] == ["--enforce-eager", "--seed", "3"]
    assert "--load-format" not in argv


def test_env_sets_gpu_side_channel_and_defaults() -> None:
    env = vllm_env(
        PREFILL, VllmOptions(model="m", python="py"), {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "5"}
    )
    assert env["PATH"] == "/bin"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5600"
    assert env["NCCL_NVLS_ENABLE"] == "0"
    assert "VLLM_NIXL_SIDE_CHANNEL_HOST" not in env  # vLLM's default (localhost) is right on one host
    assert "UCX_CUDA_IPC_ENABLE_GET_ZCOPY" not in env  # only for instances that share a GPU


def test_env_of_instances_sharing_a_gpu_reads_through_cuda_ipc_unless_the_user_says_otherwise() -> None:
    options = VllmOptions(model="m", python="py")
    assert vllm_env(PREFILL, options, {}, shares_gpu=True)["UCX_CUDA_IPC_ENABLE_GET_ZCOPY"] == "y"
    user_off = VllmOptions(model="m", python="py", extra_env=(("UCX_CUDA_IPC_ENABLE_GET_ZCOPY", "n"),))
    assert vllm_env(PREFILL, user_off, {}, shares_gpu=True)["UCX_CUDA_IPC_ENABLE_GET_ZCOPY"] == "n"


def test_env_advertises_a_routable_side_channel_host_and_user_env_wins() -> None:
    remote = Instance("decode0", "decode", "10.0.0.2", 8200, "1", 5601)
    options = VllmOptions(
        model="m",
        python="py",
        extra_env=(
            ("PYTHONPATH", "/opt/site"),
            ("VLLM_USE_FLASHINFER_SAMPLER", "0"),
            ("NCCL_NVLS_ENABLE", "1"),
        ),
    )
    env = vllm_env(remote, options, {})
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"] == "10.0.0.2"
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"] == "5601"
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["PYTHONPATH"] == "/opt/site"
    assert env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"
    assert env["NCCL_NVLS_ENABLE"] == "1"


def test_chat_template_file_is_the_sims_template(tmp_path: Path) -> None:
    path = write_chat_template(tmp_path / "logs")
    assert path.read_text() == CHAT_TEMPLATE_JINJA
    assert path.is_absolute()


def test_parse_env_assignments() -> None:
    assert parse_env_assignments(["A=1", "B_C=x=y", "D="]) == (("A", "1"), ("B_C", "x=y"), ("D", ""))
    for bad in ["A", "=1", "A-B=1"]:
        with pytest.raises(UsageError):
            parse_env_assignments([bad])


def test_vllm_missing_gives_the_install_command() -> None:
    # This test venv has no vLLM: the probe must say so and name the install command.
    with pytest.raises(UsageError, match="pip install"):
        vllm_version(sys.executable, {"PATH": "/usr/bin:/bin"})


def test_vllm_version_reads_an_importable_package(tmp_path: Path) -> None:
    package = tmp_path / "vllm"
    package.mkdir()
    (package / "__init__.py").write_text("")
    assert vllm_version(sys.executable, {"PYTHONPATH": str(tmp_path)}) == "unknown"


def test_vllm_version_reports_a_python_that_cannot_run() -> None:
    with pytest.raises(UsageError, match="cannot run"):
        vllm_version("/nonexistent/python3", {})
