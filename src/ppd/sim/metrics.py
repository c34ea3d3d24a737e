"""/metrics in Prometheus text format: vLLM's metric names where vLLM has one, `ppd_sim:` otherwise."""

from __future__ import annotations

from ppd.sim.engine import Engine
from ppd.sim.kv_handoff import PullStats


def render_metrics(engine: Engine, pulls: PullStats, model_name: str) -> str:
    """The whole /metrics page."""
    labels = f'{{model_name="{model_name}",engine="0"}}'
    stats, kv_cache, leases = engine.stats, engine.kv_cache, engine.leases
    scheduler = engine.scheduler
    rows: list[tuple[str, str, str, float]] = [
        ("vllm:num_requests_running", "gauge", "Requests in the running batch.", len(scheduler.running)),
        ("vllm:num_requests_waiting", "gauge", "Requests waiting.", engine.core.num_waiting_requests),
        ("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage; 1 means 100 percent.", kv_cache.usage),
        (
            "vllm:prefix_cache_queries_total",
            "counter",
            "Prefix-cache queries, in tokens.",
            kv_cache.num_queried_tokens,
        ),
        ("vllm:prefix_cache_hits_total", "counter", "Prefix-cache hits, in tokens.", kv_cache.num_hit_tokens),
        ("vllm:prompt_tokens_total", "counter", "Prefill tokens processed.", stats.num_prompt_tokens),
        ("vllm:generation_tokens_total", "counter", "Tokens generated.", stats.num_generation_tokens),
        ("vllm:num_preemptions_total", "counter", "Preemptions.", scheduler.num_preemptions),
        (
            # vLLM counts a client-aborted request in no request counter (request_success_total
            # {finished_reason="abort"} stays 0: vllm-project/vllm#31503, #55634); the sim counts it here.
            "ppd_sim:aborted_requests_total",
            "counter",
            "Requests aborted because their client went away.",
            stats.num_aborted_requests,
        ),
        ("ppd_sim:steps_total", "counter", "Engine steps run.", stats.num_steps),
        (
            "ppd_sim:step_drift_ms",
            "gauge",
            "How late the last step ended past the modeled clock.",
            stats.last_drift_s * 1e3,
        ),
        (
            "ppd_sim:max_step_drift_ms",
            "gauge",
            "Largest step drift since start or /ppd/stats/reset.",
            stats.max_drift_s * 1e3,
        ),
        (
            "ppd_sim:kv_pulls_total",
            "counter",
            "KV pulls from remote prefill engines (acting as D).",
            pulls.num_pulls,
        ),
        ("ppd_sim:kv_pull_failures_total", "counter", "KV pulls that failed.", pulls.num_failed_pulls),
        ("ppd_sim:kv_pulled_blocks_total", "counter", "KV blocks pulled.", pulls.num_blocks_pulled),
        ("ppd_sim:kv_pulled_bytes_total", "counter", "KV bytes pulled.", pulls.num_bytes_pulled),
        ("ppd_sim:kv_transfer_seconds_total", "counter", "Modeled pull time.", pulls.transfer_s),
        ("ppd_sim:kv_leases", "gauge", "KV leases held for remote decode (acting as P).", len(leases)),
        ("ppd_sim:kv_leases_pulled_total", "counter", "Leases pulled by a D.", leases.num_pulled),
        ("ppd_sim:kv_leases_expired_total", "counter", "Leases that expired unpulled.", leases.num_expired),
    ]
    lines = []
    for name, kind, help_text, value in rows:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{labels} {float(value)!r}"]
    success = f'vllm:request_success_total{{model_name="{model_name}",engine="0",finished_reason="length"}}'
    lines += [
        "# HELP vllm:request_success_total Finished requests.",
        "# TYPE vllm:request_success_total counter",
        f"{success} {float(stats.num_finished_requests)!r}",
    ]
    return "\n".join(lines) + "\n"
