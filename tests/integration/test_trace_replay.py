"""Acceptance: the Mooncake excerpt replayed end to end through the proxy onto sim engines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helpers import Server, http_call
from ppd.bench.config import BenchConfig
from ppd.bench.runner import run_bench
from ppd.bench.workloads import parse_workloads
from ppd.results import load_result
from ppd.traces.formats import read_trace_spec

EXCERPT = Path(__file__).parents[2] / "src/ppd/traces/data/mooncake-conversation-excerpt.jsonl"
SPEC = f"mooncake:{EXCERPT}"
SIM_ARGS = ("--time-scale", "0.01")  # max_model_len 16384: 12 of the excerpt's 82 requests exceed it


def _replay(proxy: Server, tmp_path: Path, name: str, send_session_id: bool = True) -> list:  # type: ignore[type-arg]
    config = BenchConfig(
        url=proxy.url,
        workloads=parse_workloads(SPEC, 1),
        qps=(),
        speedups=(300.0,),  # the excerpt's 900 s in 3 s
        modes=("ppd",),
        output_dir=tmp_path,
        name=name,
        quiet=True,
        send_session_id=send_session_id,
        drain_timeout_s=60.0,
        request_timeout_s=60.0,
    )
    meta, rows = load_result(run_bench(config))
    assert meta["config"]["workloads"][0]["num_linked_requests"] == 29
    return rows


def test_excerpt_replays_with_linked_turns_and_skipped_long_contexts(
    ppd_server: Callable[..., Server], tmp_path: Path
) -> None:
    prefill, decode = ppd_server("sim", *SIM_ARGS), ppd_server("sim", *SIM_ARGS)
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", prefill.url, "--decode", decode.url)
    rows = _replay(proxy, tmp_path, "excerpt")
    links = read_trace_spec(SPEC).links

    assert len(rows) == 82 and sorted(row.trace_request for row in rows) == list(range(82))
    skipped = [row for row in rows if not row.sent]
    assert len(skipped) == 12
    assert all(row.error and row.error.startswith("skipped: context") for row in skipped)
    assert all((row.prompt_tokens, row.status) == (None, None) for row in skipped)
    sent = [row for row in rows if row.sent]
    assert all(row.ok for row in sent)
    # Each row is one trace request, in its conversation, numbered in arrival order.
    for row in rows:
        assert row.trace_request is not None
        same = [r for r in rows if r.conversation_id == row.conversation_id]
        assert {links.conversation_of[r.trace_request] for r in same if r.trace_request is not None} == {
            links.conversation_of[row.trace_request]
        }
    linked = [row for row in sent if row.turn > 1]
    assert len(linked) == 28  # 29 later turns in the excerpt, one of them over-long
    # A linked turn goes straight to the D holding its history and finds it in the prefix cache,
    # unless every earlier turn of its conversation was skipped (then it starts the conversation).
    for row in linked:
        same = [r for r in rows if r.conversation_id == row.conversation_id]
        earlier_sent = any(r.sent and r.turn < row.turn for r in same)
        assert row.route == ("ppd-direct" if earlier_sent else "pd"), row
        assert row.history_tokens and row.cached_tokens is not None and row.prompt_tokens
        if any(r.sent and r.turn == row.turn - 1 for r in same):
            # what the trace says repeats the previous turn, less the partial block the sim cannot cache
            assert row.cached_tokens >= min(row.history_tokens, row.prompt_tokens - 1) // 16 * 16 - 16
        assert row.cached_share == round(row.cached_tokens / row.prompt_tokens, 6)


def test_a_holder_that_evicted_the_history_is_counted_in_metrics_and_status(
    ppd_server: Callable[..., Server], tmp_path: Path
) -> None:
    """D's KV cache holds 20,000 tokens (a few conversations), so most histories are evicted by the
    time their next turn comes; the proxy sends those turns to D anyway (ppd) and counts the loss."""
    prefill = ppd_server("sim", *SIM_ARGS)
    decode = ppd_server("sim", *SIM_ARGS, "--kv-cache-tokens", "20000")
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", prefill.url, "--decode", decode.url)
    rows = _replay(proxy, tmp_path, "evicted")
    direct = [row for row in rows if row.route == "ppd-direct"]
    lost = 0
    for row in direct:
        previous = max(
            (r for r in rows if r.conversation_id == row.conversation_id and r.sent and r.turn < row.turn),
            key=lambda r: r.turn,
        )
        assert previous.prompt_tokens and previous.output_tokens and row.prompt_tokens
        history = min(previous.prompt_tokens + previous.output_tokens, row.prompt_tokens - 1)
        lost += (row.cached_tokens or 0) < 0.5 * history
    assert direct and lost >= len(direct) // 2  # the cache was too small to keep most histories

    metrics = http_call(proxy.url + "/metrics").body.decode()
    assert f'ppd_proxy_history_checks_total{{route="ppd-direct"}} {len(direct)}' in metrics
    assert f'ppd_proxy_history_lost_total{{route="ppd-direct"}} {lost}' in metrics
    history = http_call(proxy.url + "/status").json()["history"]
    assert (history["checks"], history["lost"]) == (len(direct), lost)
    assert history["lost_share"] == lost / len(direct)
    assert history["learnt"]["checks"] == len(direct)


def test_without_session_ids_the_proxy_recognises_linked_turns_by_their_leading_chunks(
    ppd_server: Callable[..., Server], tmp_path: Path
) -> None:
    """--no-session-id: a trace turn repeats its history's blocks, not the previous prompt + answer,
    so only the router's chunk index (router/chunks.py) can name its conversation."""
    prefill, decode = ppd_server("sim", *SIM_ARGS), ppd_server("sim", *SIM_ARGS)
    proxy = ppd_server("proxy", "--mode", "ppd", "--prefill", prefill.url, "--decode", decode.url)
    rows = _replay(proxy, tmp_path, "no-session", send_session_id=False)
    sent = [row for row in rows if row.sent]
    assert len(sent) == 70 and all(row.ok for row in sent)
    # The later turns whose previous turn was sent: the ones a holder can have the history of.
    continuing = {
        row.trace_request
        for row in sent
        if any(r.sent and r.conversation_id == row.conversation_id and r.turn < row.turn for r in rows)
    }
    direct = {row.trace_request for row in sent if row.route == "ppd-direct"}
    assert len(continuing) == 27
    assert direct == continuing  # every one recognised, and no new conversation taken for a later turn
    metrics = http_call(proxy.url + "/metrics").body.decode()
    assert f'ppd_proxy_conversations_recognised_total{{by="chunks"}} {len(direct)}' in metrics
    assert 'by="session"' not in metrics
    assert http_call(proxy.url + "/status").json()["recognised"]["chunks"] == len(direct)
    # Served by the holder from its cache: the recognised turns found their history there.
    for row in sent:
        if row.trace_request in direct:
            assert row.history_tokens and row.cached_tokens is not None and row.prompt_tokens
            assert row.cached_tokens >= min(row.history_tokens, row.prompt_tokens - 1) // 16 * 16 - 16
