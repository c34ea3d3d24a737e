"""Acceptance: `ppd bench` against sim engines behind the proxy, in all three modes, on W1 and W4."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from helpers import Server
from ppd.bench.config import BenchConfig
from ppd.bench.runner import run_bench
from ppd.bench.workloads import parse_workloads
from ppd.results import TurnRow, load_result

SIM_ARGS = ("--time-scale", "0.1", "--max-model-len", "32768")  # W4 turn 2 needs 16,512 tokens
EXPECTED_ROUTES = {
    "pd": {1: {"pd"}, 2: {"pd"}},
    "ppd": {1: {"pd"}, 2: {"ppd-direct"}},
    "replication": {1: {"replica"}, 2: {"replica"}},
}


def test_bench_compares_pd_ppd_and_replication(ppd_server: Callable[..., Server], tmp_path: Path) -> None:
    prefill = ppd_server("sim", *SIM_ARGS)
    decode = ppd_server("sim", *SIM_ARGS)
    proxy = ppd_server("proxy", "--mode", "pd", "--prefill", prefill.url, "--decode", decode.url)
    config = BenchConfig(
        url=proxy.url,
        workloads=parse_workloads("W1,W4", num_turns=2),
        qps=(2.0,),
        duration_s=2.0,
        modes=("pd", "ppd", "replication"),
        seed=1,
        output_dir=tmp_path,
        name="modes",
        quiet=True,
        drain_timeout_s=30.0,
        request_timeout_s=60.0,
    )
    meta, rows = load_result(run_bench(config))

    assert [(run["workload"], run["mode"]) for run in meta["runs"]] == [
        (workload, mode) for workload in ("W1", "W4") for mode in ("pd", "ppd", "replication")
    ]
    assert {engine["version"] for engine in meta["engines"]} == {"ppd-sim-0.1.0"}
    assert {engine["url"] for engine in meta["engines"]} == {prefill.url, decode.url}
    assert meta["topology"]["upstreams"] and len(meta["summaries"]) == 6 * 3
    assert all(summary["success_rate"] == 1.0 for summary in meta["summaries"] if summary["count"])
    assert all(row.sent and row.ok and row.error is None for row in rows)
    for workload, (new_words, output_tokens) in {"W1": (512, 256), "W4": (8192, 64)}.items():
        for mode in ("pd", "ppd", "replication"):
            _check_point(
                [row for row in rows if (row.workload, row.mode) == (workload, mode)],
                mode,
                new_words,
                output_tokens,
            )
        pd_ttft = _turn2_ttft_p50(rows, workload, "pd")
        ppd_ttft = _turn2_ttft_p50(rows, workload, "ppd")
        assert ppd_ttft < pd_ttft, f"{workload}: PPD turn-2 TTFT {ppd_ttft:.1f} ms, PD {pd_ttft:.1f} ms"


def _check_point(rows: list[TurnRow], mode: str, new_words: int, output_tokens: int) -> None:
    conversations = {row.conversation for row in rows}
    assert conversations and len(rows) == 2 * len(conversations)
    for row in rows:
        assert row.route in EXPECTED_ROUTES[mode][row.turn], (mode, row.turn, row.route)
        assert row.output_tokens == output_tokens and len(row.itl_ms) == output_tokens - 1
        expected_prompt = new_words if row.turn == 1 else 2 * new_words + output_tokens
        assert row.prompt_tokens == expected_prompt
        assert row.ttft_ms is not None and row.e2e_ms is not None and row.tpot_ms is not None
        assert row.ttft_ms <= row.e2e_ms
        if row.turn == 2 and mode in ("ppd", "replication"):
            assert row.cached_tokens is not None and row.cached_tokens > 0, row


def _turn2_ttft_p50(rows: list[TurnRow], workload: str, mode: str) -> float:
    return statistics.median(
        row.ttft_ms
        for row in rows
        if (row.workload, row.mode, row.turn) == (workload, mode, 2) and row.ttft_ms
    )


def test_cli_measures_a_bare_engine(ppd_server: Callable[..., Server], tmp_path: Path) -> None:
    engine = ppd_server("sim", "--time-scale", "0.05")
    argv = f"bench --url {engine.url} --workload 64/8 --qps 4 --arrivals constant --duration 1 --turns 3"
    argv += f" --output {tmp_path} --name bare --quiet"
    done = subprocess.run(
        [sys.executable, "-m", "ppd", *argv.split()], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"results in {tmp_path / 'bare.json'}" in done.stdout
    meta, rows = load_result(tmp_path / "bare.json")
    assert meta["engines"][0]["version"] == "ppd-sim-0.1.0" and meta["topology"] is None
    assert rows and all(row.ok and row.mode == "" and row.route is None for row in rows)
    assert [row.prompt_tokens for row in rows if row.conversation == 0] == [
        64,
        64 + 8 + 64,
        64 + 2 * (8 + 64),
    ]
    assert [row.cached_tokens for row in rows if row.conversation == 0][1] > 0
