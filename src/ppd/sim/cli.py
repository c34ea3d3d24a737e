"""`ppd sim`: run one simulated vLLM engine (OpenAI API, prefix cache, batching, NIXL emulation)."""

from __future__ import annotations

import argparse
import gc
from typing import TYPE_CHECKING

from ppd.errors import UsageError

if TYPE_CHECKING:  # the sim itself is imported only when `ppd sim` runs
    from ppd.sim.config import SimConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `ppd sim`; defaults marked (profile) come from the time-model profile."""
    add = parser.add_argument
    add("--port", type=int, default=8000, help="TCP port; 0 picks a free one (default 8000)")
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add(
        "--profile",
        default="h100-llama3.1-8b",
        help="time-model profile: a name in ppd/sim/profiles or a JSON file (default h100-llama3.1-8b)",
    )
    add(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiplies every modeled duration; 0.1 runs ten times faster (default 1)",
    )
    add("--engine-id", default=None, help="engine id in kv_transfer_params (default sim-<port>)")
    add("--served-model-name", default="llama", help="model name the API answers to (default llama)")
    add("--max-model-len", type=int, default=None, help="longest prompt + output, tokens (profile)")
    add(
        "--kv-cache-tokens",
        type=int,
        default=None,
        help="KV-cache capacity in tokens (default: the profile's, from GPU memory x utilization - weights "
        "- activations, over KV bytes per token)",
    )
    add(
        "--gpu-memory-utilization",
        type=float,
        default=None,
        help="share of GPU memory the engine may use, as vLLM's flag; sizes the KV cache (default 0.9)",
    )
    add("--block-size", type=int, default=16, help="tokens per KV block (default 16)")
    add("--max-num-batched-tokens", type=int, default=8192, help="token budget per step (default 8192)")
    add("--max-num-seqs", type=int, default=256, help="most requests in the running batch (default 256)")
    add(
        "--kv-bandwidth-gbps",
        type=float,
        default=None,
        help="NIXL pull bandwidth in GB/s, 1e9 bytes/s (profile)",
    )
    add(
        "--kv-lease-s",
        type=float,
        default=30.0,
        help="how long a prefill engine holds unpulled KV blocks, wall seconds (default 30)",
    )
    add("--seed", type=int, default=0, help="seed of the generated answer words (default 0)")
    add(
        "--special-token-rate",
        type=float,
        default=0.0,
        help="chance that an answer token is a special token left out of the text, as a dummy-weight "
        "model's are (0.002); the client's next turn then misses the prefix cache from there (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the SimConfig from the flags and serve until SIGINT/SIGTERM."""
    from ppd.serve import ServerOptions, run_server
    from ppd.sim.server import build_app

    config = config_from_args(args)
    # This process is only the sim: objects alive at start-up never need collecting, and with them
    # frozen and a larger first generation, collector pauses stay well below a step (they would
    # show up as drift).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # A client that disconnects cancels its handler, which aborts the request in the engine at once
    # (blocks and batch slot freed, even while it waits or prefills), as vLLM's API server does.
    # Bodies are read as sent, as vLLM's server reads them: a compressed one is not JSON (400).
    options = ServerOptions(handler_cancellation=True, auto_decompress=False)
    return run_server(build_app(config), config.host, config.port, "ppd sim", options)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Validate the flags into a SimConfig; UsageError says what is wrong."""
    from ppd.sim.config import sim_config
    from ppd.sim.timing import ProfileError, load_profile

    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        raise UsageError(str(exc)) from exc
    _check_positive(args, ["time_scale", "block_size", "max_num_batched_tokens", "max_num_seqs"])
    _check_positive(args, ["kv_lease_s"])
    _check_positive(args, ["max_model_len", "kv_cache_tokens", "kv_bandwidth_gbps"], optional=True)
    if args.gpu_memory_utilization is not None and not 0 < args.gpu_memory_utilization <= 1:
        raise UsageError(f"--gpu-memory-utilization must be in (0, 1], got {args.gpu_memory_utilization}")
    if not 0 <= args.special_token_rate <= 1:
        raise UsageError(f"--special-token-rate must be in 0..1, got {args.special_token_rate}")
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    try:
        config = sim_config(
            profile,
            host=args.host,
            port=args.port,
            time_scale=args.time_scale,
            engine_id=args.engine_id or f"sim-{args.port}",
            served_model_name=args.served_model_name,
            max_model_len=args.max_model_len,
            kv_cache_tokens=args.kv_cache_tokens,
            gpu_memory_utilization=args.gpu_memory_utilization,
            block_size=args.block_size,
            max_num_batched_tokens=args.max_num_batched_tokens,
            max_num_seqs=args.max_num_seqs,
            kv_bandwidth_gbps=args.kv_bandwidth_gbps,
            kv_lease_s=args.kv_lease_s,
            seed=args.seed,
            special_token_rate=args.special_token_rate,
        )
    except ValueError as exc:  # no memory left for a KV cache
        raise UsageError(str(exc)) from None
    if config.max_model_len > config.num_kv_blocks * config.block_size:
        raise UsageError(
            f"--max-model-len {config.max_model_len} does not fit in the KV cache of "
            f"{config.num_kv_blocks * config.block_size} tokens; raise --kv-cache-tokens"
        )
    return config


def _check_positive(args: argparse.Namespace, names: list[str], optional: bool = False) -> None:
    for name in names:
        value = getattr(args, name)
        if (value is None and optional) or (value is not None and value > 0):
            continue
        raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {value}")
