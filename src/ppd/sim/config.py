"""The typed configuration of one simulated engine, built by the CLI (or a test) and passed in."""

from __future__ import annotations

from dataclasses import dataclass

from ppd.sim.memory import kv_cache_tokens
from ppd.sim.timing import Profile

VLLM_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default --gpu-memory-utilization


@dataclass(frozen=True)
class SimConfig:
    """Everything one `ppd sim` engine needs. Durations are modeled durations before time scaling."""

    profile: Profile
    host: str = "127.0.0.1"
    port: int = 8000
    time_scale: float = 1.0  # multiplies every modeled duration; 0.1 runs ten times faster
    engine_id: str = "sim-0"
    served_model_name: str = "llama"
    max_model_len: int = 16384
    kv_cache_tokens: int = 400_000  # sim_config() sets the profile's capacity (sim/memory.py)
    gpu_memory_utilization: float = VLLM_GPU_MEMORY_UTILIZATION
    block_size: int = 16
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    kv_bandwidth_gbps: float = 8.3  # gigabytes (1e9 bytes) per second of the NIXL link to each peer
    kv_lease_s: float = 30.0  # how long P holds blocks for a D that has not pulled them (wall time)
    seed: int = 0
    # Chance that an answer token is a reserved special token, which the text leaves out (vLLM's
    # skip_special_tokens): 0 for a trained model; 0.002 (256 of 128,256) for dummy weights, which
    # sample ~uniformly from the vocabulary, so the client's re-tokenized history loses the prefix
    # cache from the first such token on (see docs/sim.md).
    special_token_rate: float = 0.0

    @property
    def num_kv_blocks(self) -> int:
        """KV blocks that fit in kv_cache_tokens."""
        return self.kv_cache_tokens // self.block_size


def sim_config(profile: Profile, **overrides: object) -> SimConfig:
    """A SimConfig whose defaults come from the profile, with explicit overrides (None = default)."""
    values: dict[str, object] = {
        "max_model_len": profile.default_max_model_len,
        "kv_bandwidth_gbps": profile.kv_bandwidth_gbps,
        "gpu_memory_utilization": VLLM_GPU_MEMORY_UTILIZATION,
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    if overrides.get("kv_cache_tokens") is None:
        values["kv_cache_tokens"] = profile_kv_cache_tokens(profile, float(values["gpu_memory_utilization"]))  # type: ignore[arg-type]
    return SimConfig(profile=profile, **values)  # type: ignore[arg-type]


def profile_kv_cache_tokens(profile: Profile, gpu_memory_utilization: float) -> int:
    """The KV capacity of a profile's engine: its measured figure, or its memory model's."""
    if profile.default_kv_cache_tokens is not None:
        return profile.default_kv_cache_tokens
    if profile.memory is None:
        raise ValueError(f"profile {profile.name}: neither memory nor default_kv_cache_tokens")
    return kv_cache_tokens(profile.memory, gpu_memory_utilization, profile.kv_bytes_per_token)
