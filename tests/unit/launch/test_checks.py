import socket

import pytest

from ppd.errors import UsageError
from ppd.launch.checks import assign_gpus, available_gpus, check_memory_share, check_port_free, start_waves
from ppd.launch.topology import Instance


def test_port_in_use_is_reported() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {port} on 127.0.0.1 \\(prefill0\\) is already in use"):
            check_port_free("127.0.0.1", port, "prefill0")
    check_port_free("127.0.0.1", port, "prefill0")
    check_port_free("127.0.0.1", 0, "anything")


def test_foreign_address_is_reported() -> None:
    with pytest.raises(UsageError, match="not an address of this machine"):
        check_port_free("192.0.2.1", 8100, "decode0")  # TEST-NET-1, never local


def test_available_gpus_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    assert available_gpus(("3",), {"CUDA_VISIBLE_DEVICES": "0,1"}) == ("3",)
    assert available_gpus(None, {"CUDA_VISIBLE_DEVICES": "2, 5"}) == ("2", "5")
    assert available_gpus(None, {"CUDA_VISIBLE_DEVICES": ""}) == ()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError, match="nvidia-smi"):
        available_gpus(None, {})


def _instance(name: str, gpu: str | None) -> Instance:
    return Instance(name, "prefill", "127.0.0.1", 8100, gpu, 5600)


def test_assign_gpus_fills_in_order_and_keeps_explicit_ones() -> None:
    assigned = assign_gpus((_instance("a", None), _instance("b", "0"), _instance("c", None)), ("0", "1", "2"))
    assert [i.gpu for i in assigned] == ["1", "0", "2"]


def test_too_few_gpus_is_reported() -> None:
    with pytest.raises(UsageError, match="needs 2 GPUs on this host but only 1 are available"):
        assign_gpus((_instance("a", None), _instance("b", None)), ("0",))
    with pytest.raises(UsageError, match="GPU 7 is in the topology"):
        assign_gpus((_instance("a", "7"),), ("0", "1"))


def test_instances_per_gpu_shares_each_gpu_in_order() -> None:
    instances = (_instance("a", None), _instance("b", None), _instance("c", None))
    assert [i.gpu for i in assign_gpus(instances, ("0", "1"), instances_per_gpu=2)] == ["0", "0", "1"]
    assert [i.gpu for i in assign_gpus(instances[:2], ("0",), instances_per_gpu=2)] == ["0", "0"]
    with pytest.raises(UsageError, match="3 instances on this host but 1 GPUs"):
        assign_gpus(instances, ("0",), instances_per_gpu=2)


def test_instances_sharing_a_gpu_start_in_waves() -> None:
    a, b, c = _instance("a", "0"), _instance("b", "0"), _instance("c", "1")
    assert start_waves((a, b, c)) == ((a, c), (b,))
    sims = (_instance("s1", None), _instance("s2", None))
    assert start_waves(sims) == (sims,)


def test_memory_share_of_instances_on_one_gpu() -> None:
    check_memory_share(2, 0.42)
    check_memory_share(1, 0.95)
    with pytest.raises(UsageError, match=r"use --gpu-memory-utilization 0\.47 or less"):
        check_memory_share(2, 0.85)
    with pytest.raises(UsageError, match="must be in"):
        check_memory_share(1, 1.5)
