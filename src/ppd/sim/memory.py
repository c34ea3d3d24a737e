"""KV-cache capacity from GPU memory, as vLLM sizes it at start-up.

vLLM takes `gpu_memory_utilization` of the device's memory, subtracts the model weights and the peak
memory of a profiling forward pass at `max_num_batched_tokens` (activations, plus the memory outside
PyTorch: NCCL, CUDA context), and fills the rest with KV blocks:

    kv_cache_tokens = (gpu_memory x utilization - weights - activations) / kv_bytes_per_token

rounded down to whole blocks (SimConfig.num_kv_blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class GpuMemory:
    """Memory figures of one engine, GiB (2^30 bytes)."""

    gpu_memory_gib: float  # the device's total as CUDA reports it (H100 80GB: 79.19)
    weights_gib: float  # the model's weights as loaded
    activations_gib: float  # profile-run peak at max_num_batched_tokens, plus non-PyTorch memory


def kv_cache_tokens(memory: GpuMemory, gpu_memory_utilization: float, kv_bytes_per_token: int) -> int:
    """Tokens of KV cache that fit beside the weights and activations; ValueError when none do."""
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu memory utilization must be in (0, 1], got {gpu_memory_utilization}")
    free_gib = memory.gpu_memory_gib * gpu_memory_utilization - memory.weights_gib - memory.activations_gib
    if free_gib <= 0:
        raise ValueError(
            f"no memory left for the KV cache: {memory.gpu_memory_gib} GiB x {gpu_memory_utilization} - "
            f"{memory.weights_gib} GiB weights - {memory.activations_gib} GiB activations = {free_gib:.2f}"
        )
    return int(free_gib * GIB // kv_bytes_per_token)
