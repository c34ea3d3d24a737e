"""The one Prometheus text parser (ppd.prometheus) that the probes and result scripts share."""

from __future__ import annotations

import asyncio
import math
import tarfile
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ppd.prometheus import (
    PrometheusParseError,
    name_starts_with,
    parse_sample,
    parse_samples,
    scrape_engine_series,
    series_diff,
    series_values,
    total,
)
from ppd.proxy.metrics import ProxyMetrics

# Real vLLM 0.25.1 /metrics scrapes (an H200 run), committed with its results.
VLLM_SCRAPES = Path(__file__).resolve().parents[2] / "results/h200-vllm0.25.1-single/raw/metrics.tar.gz"


def rpartition_series(text: str, prefix: str) -> dict[str, float]:
    """What each probe did before, by hand: split the sample line at its last space."""
    series = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def test_real_vllm_scrapes_parse_to_what_the_probes_read_before() -> None:
    with tarfile.open(VLLM_SCRAPES) as archive:
        members = [member for member in archive.getmembers() if member.isfile()]
        texts = [archive.extractfile(member).read().decode() for member in members]  # type: ignore[union-attr]
    assert len(texts) == 32
    for text in texts:
        samples = list(parse_samples(text))
        assert len(samples) == sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        assert series_values(text, name_starts_with("vllm:")) == rpartition_series(text, "vllm:")
    info = next(sample for sample in parse_samples(texts[0]) if sample.name == "python_info")
    assert dict(info.labels)["implementation"] == "CPython" and info.value == 1.0


def test_labels_with_spaces_escapes_braces_and_a_timestamp() -> None:
    sample = parse_sample(r'm_total{path="/a b",msg="say \"hi\", {x}\\n",le="+Inf"} 3.5 1700000000000')
    assert sample.name == "m_total" and sample.value == 3.5
    assert sample.labels == (("path", "/a b"), ("msg", 'say "hi", {x}\\n'), ("le", "+Inf"))
    assert sample.series == r'm_total{path="/a b",msg="say \"hi\", {x}\\n",le="+Inf"}'
    assert parse_sample("up 1").series == "up" and parse_sample("up{} 0").labels == ()
    assert parse_sample('x{a="1",} 2').labels == (("a", "1"),)  # a trailing comma is allowed
    assert math.isinf(parse_sample("x +Inf").value) and math.isnan(parse_sample("x NaN").value)


@pytest.mark.parametrize(
    "line",
    ['{a="1"} 2', 'x{a="1" 2', "x{a=1} 2", "x", "x one", "x 1 2 3", 'x{a="1"}}'],
)
def test_broken_sample_lines_are_refused_by_line(line: str) -> None:
    with pytest.raises(PrometheusParseError):
        parse_sample(line)


def test_the_proxys_own_metrics_parse() -> None:
    metrics = ProxyMetrics()
    metrics.observe("pd", "ttft_s", 0.2)
    upstream = {"url": "http://127.0.0.1:1", "healthy": True}
    upstreams = [upstream | {"outstanding_requests": 0, "outstanding_prefill_tokens": 0}]
    series = series_values(metrics.render("pd", upstreams, 3))
    assert series["ppd_proxy_conversations"] == 3.0
    assert total(series, "ppd_proxy_ttft_seconds_count") == 1.0


def test_diff_keeps_changes_only_and_counts_new_series_from_zero() -> None:
    before = {"a": 1.0, "b": 2.0}
    after = {"a": 1.0, "b": 2.5, "c": 1e-7 + 1}
    assert series_diff(before, after) == {"b": 0.5, "c": 1.0}
    assert series_diff(before, after, ndigits=None)["c"] == 1e-7 + 1
    assert total({'h_sum{x="1"}': 1.0, 'h_sum{x="2"}': 2.0, "h_count": 5.0}, "h_sum") == 3.0


async def _scrape_from(text: str, status: int = 200) -> dict[str, float]:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=text, status=status)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            return await scrape_engine_series(session, f"http://127.0.0.1:{port}", "test")
    finally:
        await runner.cleanup()


def test_scrape_keeps_the_engine_series_and_answers_empty_when_it_cannot_read_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (
        'vllm:num_requests_running{model_name="llama"} 3\n'
        "ppd_sim:steps_total 7\n"
        "process_cpu_seconds_total 1.5\n"
    )
    assert asyncio.run(_scrape_from(text)) == {
        'vllm:num_requests_running{model_name="llama"}': 3.0,
        "ppd_sim:steps_total": 7.0,
    }
    assert asyncio.run(_scrape_from("vllm:broken{ 1\n")) == {}
    assert "test: http://127.0.0.1:" in capsys.readouterr().err
    assert asyncio.run(_scrape_from(text, status=503)) == {}


def test_scrape_of_an_unreachable_engine_is_empty() -> None:
    async def scrape() -> dict[str, float]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            return await scrape_engine_series(session, "http://127.0.0.1:9", "test")

    assert asyncio.run(scrape()) == {}
