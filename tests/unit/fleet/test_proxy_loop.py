"""The proxy's event loop in a fleet (ppd.fleet.proxy_loop): a FIFO of requests and engine steps'
chunks, reads merged when the loop falls behind, and what it does to a fleet's turns."""

import json
from pathlib import Path

import pytest

from ppd.bench.workloads import builtin_workload, parse_workloads
from ppd.errors import UsageError
from ppd.fleet import FleetConfig, HopCosts, ProxyCpu, fleet_topology, measured_hops, simulate
from ppd.fleet.proxy_loop import ProxyLoop, ProxyProcesses, measured_proxy_cpu, proxy_cpu_from_spec

COSTS = ProxyCpu(request_us=1000.0, wake_us=100.0, read_us=50.0, token_us=10.0)


def loop(cpu: ProxyCpu = COSTS, share: float = 1.0) -> ProxyLoop:
    return ProxyLoop(cpu, num_engines=2, share=share)


def test_an_idle_loop_keeps_nothing_waiting() -> None:
    proxy = loop()
    assert proxy.request_wait_s(1.0) == 0.0
    proxy.book_steps(0, [2.0], 1)
    assert proxy.relay_wait_s(0, 2.0) == 0.0  # one stream: its own read is in the hop costs


def test_a_request_waits_behind_a_step_s_reads() -> None:
    proxy = loop()
    proxy.book_steps(0, [1.0], 20)  # 20 streams: a wake and 20 reads from 1.0 s
    wait_s = proxy.request_wait_s(1.0005)
    assert wait_s == pytest.approx(100e-6 + 20 * 50e-6 - 0.0005)
    # A stream of that step leaves, on average, after half of the other reads.
    assert proxy.relay_wait_s(0, 1.0) == pytest.approx(19 * 50e-6 / 2)


def test_steps_that_arrive_while_the_loop_is_busy_are_read_together() -> None:
    proxy = loop()
    proxy.request_wait_s(0.0)  # busy until 1 ms
    proxy.book_steps(0, [0.0002, 0.0004, 0.0006], 10)  # three steps of 10 streams, all before 1 ms
    assert proxy.request_wait_s(0.0007) > 0
    # One pass, started at 1 ms: 10 reads + 20 extra tokens, no wake (the loop was busy).
    assert proxy.free_s == pytest.approx(0.001 + 10 * 50e-6 + 20 * 10e-6 + 1000e-6)
    # The second step's chunks were read in that pass: after half of the others' reads on average
    # (a stream's own read is in the hop costs).
    assert proxy.relay_wait_s(0, 0.0004) == pytest.approx(0.001 + 10 * 50e-6 * (1 - 1 / 10) / 2 - 0.0004)


def test_a_decode_run_cut_short_is_read_only_as_far_as_it_ran() -> None:
    proxy = loop()
    run_ends = [0.01, 0.02, 0.03, 0.04]
    proxy.book_steps(1, run_ends, 4)
    del run_ends[2:]  # DecodeRun.cut_after(2): the engine's list is the loop's
    proxy.book_steps(1, [0.025], 5)  # the step after the cut
    proxy.request_wait_s(1.0)
    reads_s = 50e-6
    assert proxy.busy_s == pytest.approx(3 * 100e-6 + (4 + 4 + 5) * reads_s + 1000e-6)


def test_more_processes_share_the_chunks_and_each_takes_its_own_requests() -> None:
    processes = ProxyProcesses(COSTS, 2, num_engines=1)
    processes.book_steps(0, [1.0], 40)
    first = processes.loop_of("conversation-a")
    assert processes.loop_of("conversation-a") is first  # a conversation stays on its process
    assert {id(processes.loop_of(f"c{i}")) for i in range(20)} == {id(loop) for loop in processes.loops}
    assert first.request_wait_s(1.0) == pytest.approx(100e-6 + 20 * 50e-6)  # half of the 40 reads
    with pytest.raises(UsageError, match="proxy processes"):
        ProxyProcesses(COSTS, 0, num_engines=1)


def test_proxy_cpu_specs(tmp_path: Path) -> None:
    assert proxy_cpu_from_spec("zero").is_zero
    assert proxy_cpu_from_spec("measured") == measured_proxy_cpu()
    assert not measured_proxy_cpu().is_zero and "proxy_relay_cost.py" in measured_proxy_cpu().source
    good = tmp_path / "cpu.json"
    good.write_text(json.dumps({"read_us": 30}))
    assert proxy_cpu_from_spec(str(good)) == ProxyCpu(read_us=30, source=f"file: {good}")
    for bad in ({"read_us": "fast"}, {"read_us": -1}, {"reads": 3}):
        good.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match="--proxy-cpu"):
            proxy_cpu_from_spec(str(good))


def config(**overrides: object) -> FleetConfig:
    values: dict[str, object] = {
        "workload": parse_workloads("128/256", 1)[0],
        "qps": 20.0,
        "duration_s": 3.0,
        "hops": HopCosts(),
    }
    values.update(overrides)
    return FleetConfig(fleet_topology("2r"), "replication", **values)  # type: ignore[arg-type]


def test_a_busy_proxy_delays_the_fleet_s_turns_and_more_processes_relieve_it() -> None:
    slow = ProxyCpu(request_us=2000.0, wake_us=200.0, read_us=100.0)
    alone = simulate(config(proxy_cpu=ProxyCpu()))
    loaded = simulate(config(proxy_cpu=slow))
    shared = simulate(config(proxy_cpu=slow, proxy_processes=4))
    assert not alone.proxy["modelled"]
    assert loaded.proxy["processes"] == 1 and loaded.proxy["busy_share"][0] > 0.3
    assert shared.proxy["processes"] == 4
    # Each process relays a quarter of the chunks (but wakes for every step it has a stream in).
    assert max(shared.proxy["busy_s"]) < loaded.proxy["busy_s"][0] / 2

    def mean_ttft_ms(rows: list) -> float:  # type: ignore[type-arg]
        return sum(row.ttft_ms for row in rows) / len(rows)

    assert mean_ttft_ms(loaded.rows) > mean_ttft_ms(shared.rows) > mean_ttft_ms(alone.rows)
    # The engines see the same requests; only what the proxy adds moved.
    assert [row.output_tokens for row in loaded.rows] == [row.output_tokens for row in alone.rows]


def test_a_lone_turn_pays_only_its_hops() -> None:
    """The loop's own service of an isolated turn is in the (measured) hop costs: nothing waits."""
    lone = {"qps": 0.05, "duration_s": 40.0, "poisson": False, "workload": builtin_workload("W1", 2)}
    lone["hops"] = measured_hops()
    with_loop, without = simulate(config(**lone)), simulate(config(proxy_cpu=ProxyCpu(), **lone))
    assert [row.ttft_ms for row in with_loop.rows] == [row.ttft_ms for row in without.rows]
