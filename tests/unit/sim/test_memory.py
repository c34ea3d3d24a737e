"""KV capacity from GPU memory: the formula, the H100 profile's figure, and profiles that measure it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppd.sim.config import sim_config
from ppd.sim.memory import GpuMemory, kv_cache_tokens
from ppd.sim.timing import PROFILES_DIR, ProfileError, load_profile

PROFILE_PATH = Path(PROFILES_DIR, "h100-llama3.1-8b.json")


def test_capacity_is_what_is_left_over_kv_bytes_per_token() -> None:
    memory = GpuMemory(gpu_memory_gib=10.0, weights_gib=4.0, activations_gib=1.0)
    # 10 x 0.8 - 4 - 1 = 3 GiB of 1 MiB tokens
    assert kv_cache_tokens(memory, 0.8, 1024**2) == 3 * 1024


def test_no_room_for_kv_is_an_error() -> None:
    with pytest.raises(ValueError, match="no memory left"):
        kv_cache_tokens(GpuMemory(10.0, 8.0, 1.0), 0.9, 1024)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        kv_cache_tokens(GpuMemory(10.0, 1.0, 1.0), 1.5, 1024)


def test_the_h100_profile_holds_450k_tokens_at_vllms_default_utilization() -> None:
    profile = load_profile("h100-llama3.1-8b")
    assert sim_config(profile).kv_cache_tokens == 450_404  # (79.19 x 0.9 - 14.99 - 1.3) GiB / 128 KiB
    assert sim_config(profile, gpu_memory_utilization=0.85).kv_cache_tokens == 417_968
    assert sim_config(profile, kv_cache_tokens=1000).kv_cache_tokens == 1000  # an explicit size wins


def test_a_profile_gives_memory_or_a_measured_capacity_not_both(tmp_path: Path) -> None:
    data = json.loads(PROFILE_PATH.read_text())
    data["default_kv_cache_tokens"] = 123_456
    path = tmp_path / "both.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="one of memory"):
        load_profile(str(path))
    del data["memory"]
    path.write_text(json.dumps(data))
    assert sim_config(load_profile(str(path))).kv_cache_tokens == 123_456
