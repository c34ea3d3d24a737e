"""Instance pool (one entry per URL, several roles), load counters and health-check backoff."""

from __future__ import annotations

from ppd.proxy.config import ProxyConfig
from ppd.router.core import Router
from ppd.router.instances import InstancePool, next_check_delay_s


def proxy_pool(config: ProxyConfig) -> InstancePool:  # the pool as the proxy builds it
    return Router(config.router_config()).pool


def test_one_upstream_per_url_with_all_its_roles() -> None:
    pool = proxy_pool(ProxyConfig("replication", prefill_urls=("http://a:1",), decode_urls=("http://b:1",)))
    assert [u.roles for u in pool.by_url.values()] == [["prefill", "replica"], ["decode", "replica"]]
    assert pool.replicas[0] is pool.prefills[0]


def test_load_counters_follow_a_request() -> None:
    pool = proxy_pool(ProxyConfig("ppd", prefill_urls=("http://a:1",), decode_urls=("http://b:1",)))
    upstream = pool.prefills[0]
    upstream.begin(100)
    assert (upstream.outstanding_requests, upstream.outstanding_prefill_tokens) == (1, 100)
    upstream.prefill_done(100)
    upstream.end()
    assert (upstream.outstanding_requests, upstream.outstanding_prefill_tokens, upstream.num_requests) == (
        0,
        0,
        1,
    )


def test_backoff_doubles_per_failure_up_to_the_cap() -> None:
    delays = [next_check_delay_s(failures, 2.0, 30.0) for failures in range(6)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
