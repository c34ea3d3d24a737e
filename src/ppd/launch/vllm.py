"""Command line and environment of one real `vllm serve` instance (vLLM ≥ 0.25 with NixlConnector).

Every instance gets the same flags whatever its role: NixlConnector with `kv_both` lets any instance
act as P, D or replica, so pd, ppd and replication all run on one deployment. Verified against vLLM
0.25.1 + NIXL 1.5.1 on 2x H100 (see docs/launch.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ppd.errors import UsageError
from ppd.launch.topology import Instance
from ppd.tokens import CHAT_TEMPLATE_JINJA

KV_TRANSFER_CONFIG = json.dumps(
    {"kv_connector": "NixlConnector", "kv_role": "kv_both"}, separators=(",", ":")
)
INSTALL_HINT = "pip install 'vllm==0.25.1' nixl  (or put an unpacked vLLM on --env PYTHONPATH=DIR)"

# NVLink multicast (NVLS) hangs or fails on some virtualised multi-GPU hosts; a one-GPU instance
# never needs it, so it is off by default. --env overrides any of these.
DEFAULT_ENV: dict[str, str] = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
# Two processes on one GPU: UCX turns cuda_ipc's zero-copy gets off when it sees no NVLink peer, and
# NIXL's reads then go over TCP loopback (~0.35 GB/s on an H200). With this set they go through
# cuda_ipc: 8,192 tokens P->D in 134-362 ms instead of 2.9-3.0 s through vLLM's NixlConnector
# (results/h200-vllm0.25.1-single/session3/). Set only for instances that share a GPU; --env wins.
SHARED_GPU_ENV: dict[str, str] = {"UCX_CUDA_IPC_ENABLE_GET_ZCOPY": "y"}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}


@dataclass(frozen=True)
class VllmOptions:
    """Everything `ppd up --backend vllm` passes to each `vllm serve`."""

    model: str
    python: str  # interpreter that can import vllm
    served_model_name: str = "llama"
    max_model_len: int = 16384
    gpu_memory_utilization: float = 0.85
    load_format: str | None = None  # e.g. "dummy": random weights, real shapes and timings
    block_size: int | None = None
    chat_template_path: Path | None = None
    extra_args: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()


def vllm_command(instance: Instance, options: VllmOptions) -> list[str]:
    """argv of `vllm serve` for one instance."""
    argv = [options.python, "-m", "vllm.entrypoints.cli.main", "serve", options.model]
    argv += ["--served-model-name", options.served_model_name]
    argv += ["--host", instance.host, "--port", str(instance.port)]
    argv += ["--kv-transfer-config", KV_TRANSFER_CONFIG]
    argv += ["--enable-prefix-caching", "--enable-prompt-tokens-details"]
    argv += ["--gpu-memory-utilization", str(options.gpu_memory_utilization)]
    argv += ["--max-model-len", str(options.max_model_len)]
    if options.load_format is not None:
        argv += ["--load-format", options.load_format]
    if options.block_size is not None:
        argv += ["--block-size", str(options.block_size)]
    if options.chat_template_path is not None:
        argv += ["--chat-template", str(options.chat_template_path)]
    return argv + list(options.extra_args)


def vllm_env(
    instance: Instance, options: VllmOptions, base_env: Mapping[str, str], shares_gpu: bool = False
) -> dict[str, str]:
    """Environment of one instance: its GPU, its NIXL side channel, then the user's --env on top.
    shares_gpu: another instance of the deployment runs on the same GPU (SHARED_GPU_ENV)."""
    env = dict(base_env)
    env.update(DEFAULT_ENV)
    if shares_gpu:
        env.update(SHARED_GPU_ENV)
    env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(instance.nixl_port)
    # P advertises this address to D in kv_transfer_params; vLLM's default ("localhost") only
    # works when P and D share a host.
    if instance.host not in _LOCAL_HOSTS:
        env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = instance.host
    if instance.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = instance.gpu
    env["PYTHONUNBUFFERED"] = "1"
    env.update(dict(options.extra_env))
    return env


def write_chat_template(directory: Path) -> Path:
    """Write the sim's chat template for `--chat-template`, so chat prompts count the same tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "chat_template.jinja"
    path.write_text(CHAT_TEMPLATE_JINJA)
    return path.resolve()


def vllm_version(python: str, env: Mapping[str, str], timeout_s: float = 30.0) -> str:
    """Installed vLLM version as seen by `python` with `env`; UsageError when it is not installed."""
    probe = (
        "import importlib.util, importlib.metadata as m, sys\n"
        "if importlib.util.find_spec('vllm') is None: sys.exit(3)\n"
        "try: print(m.version('vllm'))\n"
        "except m.PackageNotFoundError: print('unknown')\n"
    )
    try:
        done = subprocess.run(
            [python, "-c", probe],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"cannot run {python} to look for vLLM: {exc}") from exc
    if done.returncode == 3:
        raise UsageError(f"vLLM is not installed for {python}: {INSTALL_HINT}")
    if done.returncode != 0:
        raise UsageError(f"{python} failed while looking for vLLM: {done.stderr.strip()[-300:]}")
    return done.stdout.strip() or "unknown"


def parse_env_assignments(assignments: list[str]) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE strings from repeated --env flags."""
    pairs = []
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key or not key.replace("_", "").isalnum():
            raise UsageError(f"--env {text!r} must be KEY=VALUE with a variable name as KEY")
        pairs.append((key, value))
    return tuple(pairs)
