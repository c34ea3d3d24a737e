"""A trace replayed on the fleet: the bench's slice, skipped over-long turns, linked turns to D."""

from dataclasses import replace
from pathlib import Path

from ppd.bench.arrivals import trace_request_rate
from ppd.bench.workloads import parse_workloads
from ppd.fleet import FleetConfig, HopCosts, fleet_topology, simulate

EXCERPT = Path(__file__).parents[3] / "src/ppd/traces/data/mooncake-conversation-excerpt.jsonl"


def test_the_excerpt_replays_like_the_bench() -> None:
    [workload] = parse_workloads(f"mooncake:{EXCERPT}", 1)
    assert workload.trace is not None
    rate = trace_request_rate(workload.trace, 10.0)
    run = simulate(FleetConfig(fleet_topology("1p1d"), "ppd", workload, rate, hops=HopCosts()))
    rows = run.rows
    assert len(rows) == 82 and sorted(row.trace_request for row in rows) == list(range(82))  # type: ignore[type-var]
    skipped = [row for row in rows if not row.sent]
    assert len(skipped) == 12 and all((row.error or "").startswith("skipped: context") for row in skipped)
    sent = [row for row in rows if row.sent]
    assert all(row.ok for row in sent)
    linked = [row for row in sent if row.turn > 1]
    assert len(linked) == 28
    for row in linked:
        same = [r for r in rows if r.conversation_id == row.conversation_id]
        earlier_sent = any(r.sent and r.turn < row.turn for r in same)
        assert row.route == ("ppd-direct" if earlier_sent else "pd")
        if any(r.sent and r.turn == row.turn - 1 for r in same):
            assert row.history_tokens and row.prompt_tokens and row.cached_tokens is not None
            assert row.cached_tokens >= min(row.history_tokens, row.prompt_tokens - 1) // 16 * 16 - 16
        assert row.cached_share == round(row.cached_tokens / row.prompt_tokens, 6)  # type: ignore[operator]
    assert run.run_info.duration_s == workload.trace.linked.trace.duration_s / 10.0 + 1e-4


def test_without_session_ids_the_fleets_router_recognises_the_same_turns_by_chunks() -> None:
    """--no-session-id on the fleet: the router core sees the bench's prompt text and finds every
    later turn whose previous turn was sent, as the HTTP proxy does (tests/integration)."""
    [workload] = parse_workloads(f"mooncake:{EXCERPT}", 1)
    assert workload.trace is not None
    rate = trace_request_rate(workload.trace, 10.0)
    config = FleetConfig(fleet_topology("1p1d"), "ppd", workload, rate, hops=HopCosts())
    with_ids = simulate(config).rows
    without = simulate(replace(config, send_session_id=False)).rows
    direct = {row.trace_request for row in with_ids if row.route == "ppd-direct"}
    assert len(direct) == 27
    assert {row.trace_request for row in without if row.route == "ppd-direct"} == direct
    # the same routes, so the same cache hits
    cached = {row.trace_request: row.cached_tokens for row in with_ids}
    assert {row.trace_request: row.cached_tokens for row in without} == cached
