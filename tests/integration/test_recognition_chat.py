"""`--api chat` without session ids: the fleet's router recognises the turns the HTTP proxy does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import Server, http_call
from ppd.bench.config import BenchConfig
from ppd.bench.runner import run_bench
from ppd.bench.workloads import parse_workloads
from ppd.fleet import FleetConfig, HopCosts, fleet_topology, simulate
from ppd.results import load_result
from ppd.router.core import Router

WORKLOAD = "64/8"  # 64 new words and 8 answer tokens a turn
NUM_TURNS = 3


def count_recognitions(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """From now on, every Router's later turns by how their conversation was found (as /status's
    `recognised` counts them in the proxy)."""
    counts: Counter[str] = Counter()
    decide = Router.decide

    def counting_decide(router: Router, record: Any, *args: Any) -> Any:
        route = decide(router, record, *args)
        if record.recognition is not None and record.recognition.by is not None:
            counts[record.recognition.by] += 1
        return route

    monkeypatch.setattr(Router, "decide", counting_decide)
    return counts


def test_fleet_and_proxy_recognise_the_same_chat_turns(
    ppd_server: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefill, decode = ppd_server("sim", "--time-scale", "0.1"), ppd_server("sim", "--time-scale", "0.1")
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", prefill.url, "--decode", decode.url)
    config = BenchConfig(
        url=proxy.url,
        workloads=parse_workloads(WORKLOAD, NUM_TURNS),
        qps=(4.0,),
        duration_s=2.0,
        modes=("ppd",),
        seed=3,
        output_dir=tmp_path,
        name="chat",
        quiet=True,
        api="chat",
        send_session_id=False,
        drain_timeout_s=30.0,
        request_timeout_s=60.0,
    )
    _, rows = load_result(run_bench(config))
    assert rows and all(row.sent and row.ok for row in rows)
    num_later = sum(1 for row in rows if row.turn > 1)
    over_http = {by: n for by, n in http_call(proxy.url + "/status").json()["recognised"].items() if n}

    in_fleet = count_recognitions(monkeypatch)
    [workload] = parse_workloads(WORKLOAD, NUM_TURNS)
    fleet_config = FleetConfig(
        fleet_topology("1p1d"), "ppd", workload, 4.0, duration_s=2.0, seed=3, api="chat",
        send_session_id=False, hops=HopCosts(),
    )  # fmt: skip
    fleet_rows = simulate(fleet_config).rows
    assert len(fleet_rows) == len(rows) and all(row.ok for row in fleet_rows)
    # every later turn found by its whole history (the earlier messages plus the relayed answer)
    assert over_http == dict(in_fleet) == {"history": num_later} and num_later >= 8
    assert {row.route for row in fleet_rows if row.turn > 1} == {"ppd-direct"}


EXCERPT = Path(__file__).parents[2] / "src/ppd/traces/data/mooncake-conversation-excerpt.jsonl"


def test_fleet_and_proxy_recognise_the_same_chat_trace_turns_by_chunks(
    ppd_server: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace turn (one user message holding the prompt) repeats its history's blocks, not the
    previous messages + answer: both find it by the message text's leading chunks."""
    from ppd.bench.arrivals import trace_request_rate

    prefill, decode = ppd_server("sim", "--time-scale", "0.01"), ppd_server("sim", "--time-scale", "0.01")
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", prefill.url, "--decode", decode.url)
    [workload] = parse_workloads(f"mooncake:{EXCERPT}", 1)
    assert workload.trace is not None
    config = BenchConfig(
        url=proxy.url, workloads=[workload], qps=(), speedups=(100.0,), modes=("ppd",), output_dir=tmp_path,
        name="trace-chat", quiet=True, api="chat", send_session_id=False, drain_timeout_s=60.0,
        request_timeout_s=60.0,
    )  # fmt: skip
    _, rows = load_result(run_bench(config))
    over_http = {by: n for by, n in http_call(proxy.url + "/status").json()["recognised"].items() if n}

    in_fleet = count_recognitions(monkeypatch)
    rate = trace_request_rate(workload.trace, 100.0)
    fleet_config = FleetConfig(
        fleet_topology("1p1d"), "ppd", workload, rate, api="chat", send_session_id=False, hops=HopCosts()
    )
    fleet_rows = simulate(fleet_config).rows
    sent = sorted(row.trace_request for row in rows if row.sent)  # type: ignore[type-var]
    assert sorted(row.trace_request for row in fleet_rows if row.sent) == sent  # type: ignore[type-var]
    assert over_http == dict(in_fleet) and over_http["chunks"] >= 20


def test_proxy_keys_only_its_lead_and_still_finds_a_longer_conversation(
    ppd_server: Callable[..., Server],
) -> None:
    """--history-keyed-bytes 4096: a 20 KiB history is not kept whole, so its next turn is found by
    its lead's chunks, and sent to its holder; the flags show in /status."""
    import json

    prefill, decode = ppd_server("sim", "--time-scale", "0.01"), ppd_server("sim", "--time-scale", "0.01")
    proxy = ppd_server(
        "proxy", "--mode", "ppd", "--prefill", prefill.url, "--decode", decode.url, "--history-chunk-bytes",
        "256", "--history-chunks-per-instance", "1000", "--history-keyed-bytes", "4096",
    )  # fmt: skip

    def complete(prompt: str) -> tuple[str, dict[str, str]]:
        body = {"model": "llama", "prompt": prompt, "max_tokens": 4, "ignore_eos": True}
        data = json.dumps(body).encode()
        reply = http_call(proxy.url + "/v1/completions", data, {"Content-Type": "application/json"})
        assert reply.status == 200, reply.body
        return json.loads(reply.body)["choices"][0]["text"], reply.headers

    first = "w1 " * 8 + " ".join(f"w{n}" for n in range(100, 3100))  # ~17 KiB
    answer, _ = complete(first)
    complete("w1 " * 8 + " ".join(f"w{n}" for n in range(5000, 8000)))  # another conversation
    _, headers = complete(f"{first} {answer.strip()} w9 w9 w9")
    assert headers["x-ppd-route"] == "ppd-direct" and headers["x-ppd-turn"] == "2"
    status = http_call(proxy.url + "/status").json()
    assert {by: n for by, n in status["recognised"].items() if n} == {"chunks": 1}
    options = status["options"]
    assert (options["history_chunk_bytes"], options["history_keyed_bytes"]) == (256, 4096)
    assert options["history_chunks_per_instance"] == 1000
