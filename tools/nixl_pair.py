"""Time NIXL reads between two processes on this host's GPU(s), laid out like vLLM's KV cache.

Usage (needs torch with CUDA and the nixl package):
    python tools/nixl_pair.py --label default [--tokens 512,8192] [--repeats 3] [--gpus 0,0]

It starts a second copy of itself as the target: each process allocates one GPU buffer laid out as
layers x (K, V) x blocks of `block_size` tokens (32 layers, 8 KV heads x 128 dims, bf16: 32 KiB per
block and layer, as Llama-3.1-8B at block 16), registers it with a NIXL agent (UCX backend), and the
initiator READs the blocks of N tokens in one transfer: one descriptor per block per layer per K/V,
as vLLM's NixlConnector posts them. The environment decides UCX's transports (UCX_TLS); run it once
per setting. Prints one JSON line per token count: descriptors, bytes, ms per repeat, GB/s, and
whether the bytes arrived. With UCX_PROTO_INFO=y UCX also prints which transport each operation took.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NUM_LAYERS = 32
BYTES_PER_TOKEN_PER_LAYER_KV = 8 * 128 * 2  # KV heads x head dim x bf16
FILL_BYTE = 7
WAIT_S = 120.0


def layout(block_size: int, num_blocks: int) -> tuple[int, int]:
    """(bytes per descriptor, buffer bytes) of a cache of num_blocks blocks."""
    desc_bytes = block_size * BYTES_PER_TOKEN_PER_LAYER_KV
    return desc_bytes, NUM_LAYERS * 2 * num_blocks * desc_bytes


def descriptors(base: int, desc_bytes: int, num_blocks_total: int, num_blocks: int, device: int) -> Any:
    """Nx3 (address, length, device) rows: every (layer, K/V) region's first num_blocks blocks."""
    import numpy as np

    rows = np.empty((NUM_LAYERS * 2 * num_blocks, 3), dtype=np.uint64)
    k = 0
    for region in range(NUM_LAYERS * 2):
        start = base + region * num_blocks_total * desc_bytes
        for block in range(num_blocks):
            rows[k] = (start + block * desc_bytes, desc_bytes, device)
            k += 1
    return rows


def wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:g} s for {path}")
        time.sleep(0.05)


def make_agent(name: str, buffer: Any) -> Any:
    from nixl._api import nixl_agent, nixl_agent_config

    agent = nixl_agent(name, nixl_agent_config(backends=["UCX"]))
    agent.register_memory(buffer)
    return agent


def target(workdir: Path, device: int, buffer_bytes: int) -> int:
    import torch

    torch.cuda.set_device(device)
    buffer = torch.full((buffer_bytes,), FILL_BYTE, dtype=torch.uint8, device=f"cuda:{device}")
    torch.cuda.synchronize()
    agent = make_agent("target", buffer)
    (workdir / "target.addr").write_text(str(buffer.data_ptr()))
    (workdir / "target.meta.tmp").write_bytes(agent.get_agent_metadata())
    (workdir / "target.meta.tmp").rename(workdir / "target.meta")
    wait_for(workdir / "done", WAIT_S)
    return 0


def initiator(
    args: argparse.Namespace, workdir: Path, device: int, buffer_bytes: int, desc_bytes: int
) -> int:
    import torch

    torch.cuda.set_device(device)
    buffer = torch.zeros((buffer_bytes,), dtype=torch.uint8, device=f"cuda:{device}")
    agent = make_agent("initiator", buffer)
    wait_for(workdir / "target.meta", WAIT_S)
    remote_name = agent.add_remote_agent((workdir / "target.meta").read_bytes())
    remote_base = int((workdir / "target.addr").read_text())
    failures = 0
    for num_tokens in args.tokens:
        num_blocks = -(-num_tokens // args.block_size)
        local = agent.get_xfer_descs(
            descriptors(buffer.data_ptr(), desc_bytes, args.blocks_total, num_blocks, device), "VRAM"
        )
        remote = agent.get_xfer_descs(
            descriptors(remote_base, desc_bytes, args.blocks_total, num_blocks, args.target_device), "VRAM"
        )
        handle = agent.initialize_xfer("READ", local, remote, remote_name)
        times_ms = []
        state = "ERR"
        for _ in range(args.repeats):
            buffer.zero_()
            torch.cuda.synchronize()
            started = time.perf_counter()
            state = agent.transfer(handle)
            while state == "PROC":
                state = agent.check_xfer_state(handle)
            times_ms.append((time.perf_counter() - started) * 1e3)
            if state != "DONE":
                break
        torch.cuda.synchronize()
        arrived = bool(state == "DONE" and int(buffer[:desc_bytes].min()) == FILL_BYTE)
        backend = agent.query_xfer_backend(handle)
        agent.release_xfer_handle(handle)
        num_bytes = NUM_LAYERS * 2 * num_blocks * desc_bytes
        median_ms = statistics.median(times_ms)
        failures += not arrived
        print(json.dumps({
            "label": args.label, "ucx_tls": os.environ.get("UCX_TLS", "(default)"), "tokens": num_tokens,
            "block_size": args.block_size, "descriptors": NUM_LAYERS * 2 * num_blocks, "bytes": num_bytes,
            "ms": [round(t, 3) for t in times_ms], "median_ms": round(median_ms, 3),
            "gb_per_s": round(num_bytes / (median_ms * 1e-3) / 1e9, 3), "state": state, "arrived": arrived,
            "backend": backend, "devices": [device, args.target_device],
        }), flush=True)  # fmt: skip
    (workdir / "done").write_text("")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--label", default="run", help="name of this setting in the output")
    parser.add_argument("--tokens", type=lambda t: [int(x) for x in t.split(",")], default=[512, 8192])
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpus", default="0,0", help="initiator,target GPU (default 0,0: the same GPU)")
    parser.add_argument(
        "--role", choices=("initiator", "target"), default="initiator", help=argparse.SUPPRESS
    )
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device, args.target_device = (int(g) for g in args.gpus.split(","))
    args.blocks_total = -(-max(args.tokens) // args.block_size) + 8
    desc_bytes, buffer_bytes = layout(args.block_size, args.blocks_total)
    if args.role == "target":
        return target(args.workdir, args.target_device, buffer_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        argv_target = [sys.executable, __file__, "--role", "target", "--workdir", str(workdir)]
        argv_target += ["--gpus", args.gpus, "--tokens", ",".join(map(str, args.tokens))]
        argv_target += ["--block-size", str(args.block_size)]
        peer = subprocess.Popen(argv_target)
        try:
            return initiator(args, workdir, device, buffer_bytes, desc_bytes)
        finally:
            (workdir / "done").write_text("")
            try:
                peer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                peer.kill()


if __name__ == "__main__":
    sys.exit(main())
