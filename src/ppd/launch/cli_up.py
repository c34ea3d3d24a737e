"""`ppd up`: start a topology of real vLLM or simulated engines plus the proxy (docs/launch.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ppd.errors import UsageError

if TYPE_CHECKING:
    from ppd.launch.deploy import Deployment, UpConfig
    from ppd.launch.topology import Topology
    from ppd.launch.vllm import VllmOptions

DEFAULT_HEALTH_TIMEOUT_S = {"sim": 60.0, "vllm": 900.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `ppd up`."""
    parser.add_argument(
        "--backend", choices=("sim", "vllm"), required=True, help="real vLLM or ppd sim engines"
    )
    parser.add_argument(
        "--topology", default="1p1d", help="1p1d, 2p2d, <x>p<y>d, <n>r, <x>p<y>d<n>r or a TOML file"
    )
    parser.add_argument("--only-host", help="start only this host's part of a multi-host TOML topology")
    parser.add_argument(
        "--mode", help="proxy mode at start, pd | ppd | replication | auto (default: pd, or replication)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address of engines and proxy (spec topologies)"
    )
    parser.add_argument("--port-base", type=int, default=8100, help="first engine port; then +100 per engine")
    parser.add_argument("--proxy-port", type=int, default=10001)
    parser.add_argument(
        "--nixl-port-base", type=int, default=5600, help="VLLM_NIXL_SIDE_CHANNEL_PORT, +1 per engine"
    )
    parser.add_argument(
        "--gpus", help="GPUs to use, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES or all nvidia-smi -L)"
    )
    parser.add_argument(
        "--instances-per-gpu",
        type=int,
        default=1,
        help="vllm: place up to N instances on each GPU, started one after the other; each takes "
        "--gpu-memory-utilization of the GPU, so lower it (e.g. 2 instances: 0.42) (default 1)",
    )
    parser.add_argument("--model", help="vllm: model path or name to serve")
    parser.add_argument("--served-model-name", default="llama")
    parser.add_argument("--load-format", help="vllm --load-format, e.g. dummy (real shapes, random weights)")
    parser.add_argument("--max-model-len", type=int, help="context length (vllm default 16384)")
    parser.add_argument("--block-size", type=int, help="KV block size in tokens")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument("--vllm-python", default=sys.executable, help="interpreter that can import vllm")
    parser.add_argument(
        "--vllm-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `vllm serve` argument (repeat; write --vllm-arg=--enforce-eager)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VAL",
        help="environment variable for every vLLM engine (repeat)",
    )
    parser.add_argument("--time-scale", type=float, default=1.0, help="sim: multiply every modeled duration")
    parser.add_argument(
        "--sim-arg", action="append", default=[], metavar="ARG", help="extra `ppd sim` argument"
    )
    parser.add_argument(
        "--proxy-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `ppd proxy` argument, e.g. --proxy-arg=--admin-token=T",
    )
    parser.add_argument("--no-proxy", action="store_true", help="start and warm the engines only")
    parser.add_argument("--logs", type=Path, default=Path("logs"), help="log directory")
    parser.add_argument(
        "--state", type=Path, default=Path(".ppd/state.json"), help="state file for `ppd down`"
    )
    parser.add_argument("--health-timeout-s", type=float, help="per stage (default: sim 60, vllm 900)")
    parser.add_argument(
        "--warmup-handshakes", type=int, default=3, help="P->D handshakes per pair before ready"
    )


def build_config(args: argparse.Namespace) -> UpConfig:
    """Typed UpConfig from parsed flags; UsageError for bad combinations."""
    from ppd.launch.deploy import UpConfig
    from ppd.launch.sim import SimOptions

    _check_numbers(args)
    topology = _topology(args)
    return UpConfig(
        topology=topology,
        backend=args.backend,
        sim=SimOptions(
            time_scale=args.time_scale,
            max_model_len=args.max_model_len,
            block_size=args.block_size,
            extra_args=tuple(args.sim_arg),
        ),
        vllm=_vllm_options(args) if args.backend == "vllm" else None,
        mode=args.mode,
        logs_dir=args.logs,
        state_path=args.state,
        only_host=args.only_host,
        gpus=_gpus(args.gpus),
        instances_per_gpu=args.instances_per_gpu,
        health_timeout_s=args.health_timeout_s or DEFAULT_HEALTH_TIMEOUT_S[args.backend],
        warmup_handshakes=args.warmup_handshakes,
        proxy_args=tuple(args.proxy_arg),
        start_proxy=not args.no_proxy,
    )


def _check_numbers(args: argparse.Namespace) -> None:
    if args.port_base != 0 and not 1 <= args.port_base <= 65535:
        raise UsageError(f"--port-base {args.port_base} must be a port number (or 0: free ports, sim only)")
    if args.port_base == 0 and args.backend == "vllm":
        raise UsageError("--port-base 0 (free ports) works with --backend sim only; vLLM needs fixed ports")
    if args.instances_per_gpu < 1:
        raise UsageError("--instances-per-gpu must be >= 1")
    if args.warmup_handshakes < 0:
        raise UsageError("--warmup-handshakes must be >= 0")
    if args.time_scale <= 0:
        raise UsageError("--time-scale must be > 0")
    if args.backend == "sim" and (args.vllm_arg or args.env or args.model or args.load_format):
        raise UsageError("--model, --load-format, --vllm-arg and --env apply to --backend vllm only")


def _topology(args: argparse.Namespace) -> Topology:
    from ppd.launch.topology import LayoutOptions, layout_spec, load_file

    path = Path(args.topology)
    if args.topology.endswith(".toml") or path.is_file():
        return load_file(path, args.nixl_port_base)
    if args.only_host is not None:
        raise UsageError("--only-host needs a TOML topology file (a spec like 1p1d runs on one host)")
    options = LayoutOptions(args.host, args.port_base, args.proxy_port, args.nixl_port_base)
    return layout_spec(args.topology, options)


def _vllm_options(args: argparse.Namespace) -> VllmOptions:
    from ppd.launch.vllm import VllmOptions, parse_env_assignments

    if not args.model:
        raise UsageError("--backend vllm needs --model PATH (e.g. --model /opt/model --load-format dummy)")
    return VllmOptions(
        model=args.model,
        python=args.vllm_python,
        served_model_name=args.served_model_name,
        max_model_len=args.max_model_len or 16384,
        gpu_memory_utilization=args.gpu_memory_utilization,
        load_format=args.load_format,
        block_size=args.block_size,
        extra_args=tuple(args.vllm_arg),
        extra_env=parse_env_assignments(args.env),
    )


def _gpus(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    gpus = tuple(gpu.strip() for gpu in text.split(",") if gpu.strip())
    if not gpus:
        raise UsageError("--gpus needs a comma-separated list such as 0,1")
    return gpus


def run(args: argparse.Namespace) -> int:
    """Start the deployment; print `All servers ready!` and the endpoints."""
    from ppd.launch.deploy import start
    from ppd.launch.readiness import LaunchError

    config = build_config(args)
    try:
        deployment = start(config, progress=_print)
    except LaunchError as exc:
        print(f"ppd up: error: {exc}", file=sys.stderr)
        return 1
    print_endpoints(deployment)
    return 0


def _print(message: str) -> None:
    print(message, flush=True)


def print_endpoints(deployment: Deployment) -> None:
    """The ready line and where everything listens."""
    print("All servers ready!")
    for label, urls in (
        ("prefill", deployment.prefill_urls),
        ("decode", deployment.decode_urls),
        ("replica", deployment.replica_urls),
    ):
        if urls:
            print(f"  {label:8} {' '.join(urls)}")
    if deployment.proxy_url:
        print(f"  proxy    {deployment.proxy_url}  (mode {deployment.state.mode})")
    print(
        f"  state    {deployment.state_path}   stop with: ppd down --state {deployment.state_path}",
        flush=True,
    )
