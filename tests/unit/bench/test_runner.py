from __future__ import annotations

import asyncio
import gzip
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ppd.bench.config import BenchConfig
from ppd.bench.resultset import source_commit
from ppd.bench.runner import run_bench_async
from ppd.bench.workloads import parse_workloads
from ppd.errors import UsageError
from ppd.results import SCHEMA, load_result


def _config(url: str, output: Path, **overrides: Any) -> BenchConfig:
    base = BenchConfig(
        url=url,
        workloads=parse_workloads("4/2", 2),
        qps=(10.0,),
        duration_s=0.3,
        poisson=False,
        output_dir=output,
        name="set",
        quiet=True,
    )
    return replace(base, **overrides)


def test_an_invocation_writes_the_result_json_and_rows(fake_engine: Any, tmp_path: Path) -> None:
    async def scenario() -> tuple[Path, Any]:
        async with fake_engine() as engine:
            return await run_bench_async(_config(engine.url, tmp_path, runs=2)), engine

    path, engine = asyncio.run(scenario())
    assert path == tmp_path / "set.json"
    meta, rows = load_result(path)
    assert meta["schema"] == SCHEMA and meta["rows_file"] == "set.jsonl" and meta["seed"] == 0
    assert meta["engines"] == [
        {"url": engine.url, "role": "engine", "version": "fake-1", "model": "fake-model"}
    ]
    assert meta["topology"] is None and meta["tool"]["name"] == "ppd"
    assert meta["config"]["workloads"][0]["turns"] == [{"num_new_words": 4, "num_output_tokens": 2}] * 2
    assert [run["run"] for run in meta["runs"]] == [0, 1]
    assert len(meta["summaries"]) == 6 and {s["turn_group"] for s in meta["summaries"]} == {"1", "2+", "all"}
    assert len(rows) == 2 * 2 * 2 and all(row.ok and row.mode == "" for row in rows)
    assert all(s["success_rate"] == 1.0 for s in meta["summaries"])


def test_each_run_records_the_connections_its_requests_opened(fake_engine: Any, tmp_path: Path) -> None:
    # Streams of 0.1 s a token overlap, so a run needs several connections at once; the second run
    # finds the first's idle in the session's pool. The engine sees which connection each request
    # came on (its client address): a run opened those it was the first to use.
    async def scenario() -> tuple[Path, Any]:
        async with fake_engine(token_delay_s=0.1) as engine:
            return await run_bench_async(_config(engine.url, tmp_path, runs=2, qps=(20.0,))), engine

    path, engine = asyncio.run(scenario())
    meta, rows = load_result(path)
    assert all(row.ok for row in rows)
    per_run = len(engine.peers) // 2  # the runs one after the other, the same number of turns each
    seen = set(engine.probe_peers)
    opened = []
    for run_peers in (engine.peers[:per_run], engine.peers[per_run:]):
        opened.append(len(set(run_peers) - seen))
        seen |= set(run_peers)
    assert [run["connections_opened"] for run in meta["runs"]] == opened
    assert opened[0] >= 2  # overlapping streams: more than the probe's one connection


def test_an_int_qps_sends_the_conversations_of_the_same_float(fake_engine: Any, tmp_path: Path) -> None:
    # Seeds read repr(qps) (arrivals.derive_seed): qps=(10,) from Python sent other prompts than 10.0.
    async def prompts(qps: float, name: str) -> list[str]:
        async with fake_engine() as engine:
            await run_bench_async(_config(engine.url, tmp_path, qps=(qps,), name=name, prompt_salt="s"))
            return [str(body["prompt"]) for _, body, _ in engine.requests if "prompt" in body]

    as_int = asyncio.run(prompts(10, "int"))
    assert as_int and as_int == asyncio.run(prompts(10.0, "float"))
    assert json.loads((tmp_path / "int.json").read_text())["config"]["qps"] == [10.0]


def test_modes_are_set_before_each_run_with_the_admin_token(fake_engine: Any, tmp_path: Path) -> None:
    async def scenario() -> tuple[Path, Any]:
        async with fake_engine() as engine:
            config = _config(engine.url, tmp_path, modes=("pd", "ppd"), admin_token="tok")
            return await run_bench_async(config), engine

    path, engine = asyncio.run(scenario())
    switch = [
        ("/mode/pd", "Bearer tok"),
        ("/conversations/clear", "Bearer tok"),
        ("/mode/ppd", "Bearer tok"),
        ("/conversations/clear", "Bearer tok"),
    ]
    assert engine.admin_calls == switch + switch  # a check of every mode first, then before each run
    meta, rows = load_result(path)
    assert [run["mode"] for run in meta["runs"]] == ["pd", "ppd"]
    assert meta["config"]["admin_token"] == "<set>"
    assert {row.mode for row in rows} == {"pd", "ppd"}


def test_append_numbers_runs_on_and_refuses_to_overwrite(fake_engine: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with fake_engine() as engine:
            await run_bench_async(_config(engine.url, tmp_path))
            with pytest.raises(UsageError, match="--append"):
                await run_bench_async(_config(engine.url, tmp_path))
            await run_bench_async(_config(engine.url, tmp_path, append=True, qps=(10.0, 5.0)))
            rows_file = tmp_path / "set.jsonl"
            (tmp_path / "set.jsonl.gz").write_bytes(gzip.compress(rows_file.read_bytes()))
            rows_file.unlink()  # a finished set, stored compressed: readable, not continued
            with pytest.raises(UsageError, match="gunzip"):
                await run_bench_async(_config(engine.url, tmp_path, append=True))
            (tmp_path / "set.jsonl.gz").rename(tmp_path / "set.rows-no-itl.jsonl")  # as committed, unzipped
            with pytest.raises(UsageError, match="without ITL lists"):
                await run_bench_async(_config(engine.url, tmp_path, append=True))
            (tmp_path / "set.rows-no-itl.jsonl").rename(tmp_path / "set.jsonl.gz")

    asyncio.run(scenario())
    meta, rows = load_result(tmp_path / "set.json")
    assert [(run["qps"], run["run"]) for run in meta["runs"]] == [(10.0, 0), (10.0, 1), (5.0, 0)]
    assert len(meta["appended"]) == 1
    assert {(row.qps, row.run) for row in rows} == {(10.0, 0), (10.0, 1), (5.0, 0)}


def test_an_interrupted_invocation_keeps_rows_and_marks_the_run(fake_engine: Any, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with fake_engine(lambda body: "hang" if len(body["prompt"].split()) > 4 else "ok") as engine:
            task = asyncio.create_task(run_bench_async(_config(engine.url, tmp_path)))
            await asyncio.sleep(0.8)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(scenario())
    meta = json.loads((tmp_path / "set.json").read_text())
    assert meta["runs"] == [] and meta["summaries"] == []
    assert [(r["mode"], r["run"]) for r in meta["interrupted_runs"]] == [("", 0)]
    _, rows = load_result(tmp_path / "set.json")
    assert {(row.turn, row.ok, row.error) for row in rows} == {(1, True, None), (2, False, "interrupted")}


def test_a_url_without_models_needs_model(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--model"):
        asyncio.run(run_bench_async(_config("http://127.0.0.1:9", tmp_path)))


def test_default_names_never_collide(fake_engine: Any, tmp_path: Path) -> None:
    async def scenario() -> list[Path]:
        async with fake_engine() as engine:
            config = _config(engine.url, tmp_path, name=None, qps=(20.0,), duration_s=0.1)
            return [await run_bench_async(config) for _ in range(2)]

    first, second = asyncio.run(scenario())
    assert first != second and first.name.startswith("bench-") and first.name.endswith("-4x2.json")
    assert first.exists() and second.exists()


def test_a_refused_mode_stops_before_any_run(fake_engine: Any, tmp_path: Path) -> None:
    async def scenario() -> Any:
        async with fake_engine() as engine:
            with pytest.raises(UsageError, match="/mode/replication answered 404"):
                await run_bench_async(_config(engine.url, tmp_path, modes=("pd", "replication")))
            return engine

    engine = asyncio.run(scenario())
    assert engine.requests == []


def test_a_snapshot_without_git_names_its_commit_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PPD_GIT_COMMIT", raising=False)
    assert source_commit(tmp_path) is None
    monkeypatch.setenv("PPD_GIT_COMMIT", "2addcf05b27f")
    assert source_commit(tmp_path) == "2addcf05b27f"
