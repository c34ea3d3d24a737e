"""Prometheus rendering and histograms."""

from __future__ import annotations

from ppd.proxy.metrics import Histogram, ProxyMetrics


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram(bounds_s=(0.01, 0.1))
    for value in (0.005, 0.05, 0.05, 5.0):
        histogram.observe(value)
    lines = list(histogram.lines("x", 'route="pd"'))
    assert lines[:3] == ['x_bucket{route="pd",le="0.01"} 1', 'x_bucket{route="pd",le="0.1"} 3',
                         'x_bucket{route="pd",le="+Inf"} 4']  # fmt: skip
    assert lines[-1] == 'x_count{route="pd"} 4'


def test_render_has_counters_histograms_and_upstream_gauges() -> None:
    metrics = ProxyMetrics()
    metrics.requests[("ppd-direct", 200)] += 2
    metrics.routes["ppd-direct"] += 2
    metrics.observe("ppd-direct", "ttft_s", 0.02)
    upstream = {
        "url": "http://d",
        "healthy": True,
        "outstanding_requests": 3,
        "outstanding_prefill_tokens": 0,
    }
    text = metrics.render("ppd", [upstream], num_conversations=4)
    assert 'ppd_proxy_requests_total{route="ppd-direct",status="200"} 2' in text
    assert 'ppd_proxy_ttft_seconds_count{route="ppd-direct"} 1' in text
    assert 'ppd_proxy_upstream_outstanding_requests{url="http://d"} 3' in text
    assert 'ppd_proxy_mode{mode="ppd"} 1' in text and "ppd_proxy_conversations 4" in text
    metrics.clear()
    assert "ppd_proxy_requests_total{" not in metrics.render("ppd", [], 0)
