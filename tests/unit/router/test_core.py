"""The router core on a virtual clock, with no HTTP: decide, hops and load, failures, commit, learn."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from ppd.router.conversations import Identity
from ppd.router.core import ModeUnavailable, Router, RouterConfig
from ppd.router.failover import FAILOVER_KINDS, FailureAction, classify
from ppd.router.records import TurnRecord

PD = RouterConfig("ppd", prefill_urls=("p0",), decode_urls=("d0", "d1"), replica_urls=("p0", "d0", "d1"))
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 0}}


def serve(router: Router, session: str, num_prompt_tokens: int, now_s: float) -> TurnRecord:
    """One turn carried out as a driver would, every hop instant except the times given."""
    record = TurnRecord(started_s=now_s)
    route = router.decide(record, Identity(session_id=session), num_prompt_tokens, now_s)
    if route.prefill_url is not None:
        hop = router.begin(record, "prefill", now_s)
        router.finish(hop, now_s + 0.05, succeeded=True)
    hop = router.begin(record, "target", now_s + 0.05)
    router.first_byte(hop, now_s + 0.08)
    router.finish(hop, now_s + 0.5, succeeded=True, last_byte=True)
    record.usage = dict(USAGE, prompt_tokens=num_prompt_tokens)
    router.commit(record, now_s + 0.5)
    router.learn(record)
    return record


def test_a_ppd_conversation_goes_p_to_d_then_straight_to_its_holder() -> None:
    router = Router(PD)
    first = serve(router, "c1", 100, now_s=10.0)
    assert first.route is not None and (first.route.kind, first.route.prefill_url) == ("pd", "p0")
    assert first.state == "completed" and first.prefill_ms == pytest.approx(50.0)
    second = serve(router, "c1", 150, now_s=20.0)
    assert second.turn is not None and (second.turn.number, second.turn.holder_url) == (
        2,
        first.route.target_url,
    )
    assert second.route is not None and second.route.kind == "ppd-direct"
    assert second.route.target_url == first.route.target_url
    assert router.estimates.num_outputs == 2  # both turns taught the estimates


def test_load_counters_move_with_the_hops() -> None:
    router = Router(PD)
    record = TurnRecord(started_s=0.0)
    router.decide(record, Identity(session_id="c"), 300, 0.0)
    assert record.route is not None
    p = router.pool.by_url["p0"]
    hop = router.begin(record, "prefill", 0.0)
    assert (p.outstanding_requests, p.outstanding_prefill_tokens, p.running_decodes) == (1, 300, 0)
    router.finish(hop, 0.1, succeeded=True)
    d = router.pool.by_url[record.route.target_url]
    hop = router.begin(record, "target", 0.1)
    assert record.target_load is not None and record.target_load.queued_prefill_tokens == 0
    assert (d.outstanding_requests, d.outstanding_prefill_tokens) == (1, 0)  # D pulls; it prefills nothing
    router.first_byte(hop, 0.15)
    assert d.running_decodes == 1 and record.first_byte_s == 0.15
    router.finish(hop, 0.9)
    router.finish(hop, 1.0)  # a second finish changes nothing
    assert (p.outstanding_requests, d.outstanding_requests, d.running_decodes) == (0, 0, 0)


def test_a_failed_prefill_leaves_the_turn_to_its_decode_and_blames_p() -> None:
    router = Router(PD)
    record = TurnRecord(started_s=0.0)
    router.decide(record, Identity(session_id="c"), 100, 0.0)
    assert record.route is not None
    target = record.route.target_url
    hop = router.begin(record, "prefill", 0.0)
    router.finish(hop, 0.2)
    action = router.fail(hop, "unreachable", "refused", 0.2)
    assert action == FailureAction("decode_alone", "now", True, "prefill_failed")
    assert (record.route.kind, record.route.target_url, record.route.prefill_url) == (
        "pd-fallback",
        target,
        None,
    )
    assert record.failovers == ["prefill_failed"]
    p = router.pool.by_url["p0"]
    assert not p.healthy and p.num_failures == 1
    # The next decision finds no healthy P: D alone from the start.
    again = TurnRecord(started_s=1.0)
    route = router.decide(again, Identity(session_id="other"), 100, 1.0)
    assert route.kind == "pd-fallback" and again.failovers == ["no_prefill"]


def test_a_target_5xx_is_retried_elsewhere_and_blamed_once_another_serves_the_turn() -> None:
    router = Router(RouterConfig("replication", replica_urls=("r0", "r1")))
    record = TurnRecord(started_s=0.0)
    first = router.decide(record, Identity(session_id="c"), 50, 0.0)
    hop = router.begin(record, "target", 0.0)
    action = router.fail(hop, "engine_error", "500", 0.01)
    router.finish(hop, 0.01)
    assert action.next == "retry_elsewhere" and action.blame == "suspect"
    failed = router.pool.by_url[first.target_url]
    assert failed.request_failure_streak == 0 and record.suspects == [(first.target_url, "500")]
    retry = router.reroute(record)
    assert retry.target_url != first.target_url and record.failovers == ["retried"]
    hop = router.begin(record, "retry", 0.01)
    router.first_byte(hop, 0.02)
    router.finish(hop, 0.3, succeeded=True)
    record.usage = USAGE
    conversation = router.commit(record, 0.3)
    assert conversation.holder_url == retry.target_url
    assert failed.healthy and failed.request_failure_streak == 1  # the other served it: blamed
    router.learn(record)
    assert router.estimates.num_outputs == 0  # a failed-over turn is not a clean observation


def test_a_5xx_that_no_other_instance_contradicts_blames_no_engine() -> None:
    router = Router(RouterConfig("replication", replica_urls=("r0", "r1")))
    record = TurnRecord(started_s=0.0)
    router.decide(record, Identity(session_id="c"), 50, 0.0)
    for hop_name in ("target", "retry"):
        hop = router.begin(record, hop_name, 0.0)  # type: ignore[arg-type]
        router.fail(hop, "engine_error", "500", 0.01)
        router.finish(hop, 0.01)
        if hop_name == "target":
            router.reroute(record)
    record.end("errored", 502, "500")
    router.learn(record)
    assert all(i.num_failures == 0 and i.healthy for i in router.pool.by_url.values())


def test_a_prefill_refusal_leaves_the_client_request_to_d_and_blames_no_one() -> None:
    router = Router(PD)
    record = TurnRecord(started_s=0.0)
    router.decide(record, Identity(session_id="c"), 100, 0.0)
    hop = router.begin(record, "prefill", 0.0)
    action = router.fail(hop, "rejected", "400 max_tokens", 0.01)
    assert action == FailureAction("decode_alone", "never", False, "prefill_refused")
    assert record.route is not None and record.route.kind == "pd-fallback"
    assert record.failovers == ["prefill_refused"] and router.pool.by_url["p0"].num_failures == 0


def test_client_faults_and_disconnects_never_blame_an_engine() -> None:
    router = Router(RouterConfig("replication", replica_urls=("r0",)))
    for failure in ("rejected", "client_gone"):
        record = TurnRecord(started_s=0.0)
        router.decide(record, Identity(session_id=failure), 10, 0.0)
        hop = router.begin(record, "target", 0.0)
        router.fail(hop, failure, "the client's doing", 0.1)
        router.finish(hop, 0.1)
    instance = router.pool.by_url["r0"]
    assert instance.num_failures == 0 and instance.healthy and instance.outstanding_requests == 0


def test_a_stream_broken_after_its_first_byte_is_cut_not_retried() -> None:
    router = Router(RouterConfig("replication", replica_urls=("r0", "r1")))
    record = TurnRecord(started_s=0.0)
    router.decide(record, Identity(session_id="c"), 10, 0.0)
    hop = router.begin(record, "target", 0.0)
    router.first_byte(hop, 0.05)
    assert router.fail(hop, "unreachable", "reset", 0.2) == FailureAction("break_stream", "now", False)


@pytest.mark.parametrize(
    ("failure", "hop", "expected"),
    [
        ("unreachable", "prefill", ("decode_alone", "now", True, "prefill_failed")),
        ("no_answer", "prefill", ("decode_alone", "now", False, "prefill_failed")),
        ("engine_error", "prefill", ("decode_alone", "suspect", False, "prefill_failed")),
        ("rejected", "prefill", ("decode_alone", "never", False, "prefill_refused")),
        ("unreachable", "target", ("retry_elsewhere", "now", True, "retried")),
        ("engine_error", "target", ("retry_elsewhere", "suspect", False, "retried")),
        ("no_answer", "target", ("answer_error", "now", False, None)),
        ("rejected", "target", ("pass_through", "never", False, None)),
        ("unreachable", "retry", ("answer_error", "now", True, None)),
        ("no_answer", "retry", ("answer_error", "now", False, None)),
        ("engine_error", "retry", ("answer_error", "suspect", False, None)),
        ("rejected", "retry", ("pass_through", "never", False, None)),
        ("no_answer", "stream", ("break_stream", "now", False, None)),
        ("client_gone", "stream", ("give_up", "never", False, None)),
        ("client_gone", "prefill", ("give_up", "never", False, None)),
    ],
)
def test_classify_is_the_documented_table(
    failure: str, hop: str, expected: tuple[str, str, bool, str]
) -> None:
    assert classify(failure, hop) == FailureAction(*expected)  # type: ignore[arg-type]


def test_conversations_expire_on_the_drivers_clock() -> None:
    router = Router(RouterConfig("replication", replica_urls=("r0",), conversation_idle_ttl_s=60.0))
    serve(router, "c", 10, now_s=0.0)
    record = TurnRecord(started_s=30.0)
    router.decide(record, Identity(session_id="c"), 20, 30.0)
    assert record.turn is not None and record.turn.number == 2
    late = TurnRecord(started_s=200.0)
    router.decide(late, Identity(session_id="c"), 20, 200.0)  # idle 199.5 s > 60 s: forgotten
    assert late.turn is not None and late.turn.number == 1


def test_modes_need_their_instances() -> None:
    with pytest.raises(ModeUnavailable, match="replicas only"):
        Router(RouterConfig("pd", replica_urls=("r0",)))
    router = Router(PD)
    assert router.set_mode("auto") == "ppd" and router.mode == "auto"
    with pytest.raises(ValueError, match="allowed"):
        RouterConfig("fast", replica_urls=("r0",))  # type: ignore[arg-type]
    assert set(FAILOVER_KINDS) == {"no_prefill", "prefill_failed", "prefill_refused", "retried"}


def test_the_router_core_imports_neither_aiohttp_nor_asyncio() -> None:
    code = (
        "import sys, ppd.router, ppd.modes; "
        "print(sorted(m for m in sys.modules if m.startswith(('aiohttp', 'asyncio'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def _package_imports(package_dir: Path, package: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in package_dir.glob("*.py"):
        name = f"{package}.{path.stem}"
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ppd."):
                graph[name].add(node.module)
            elif isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names if alias.name.startswith("ppd.")}
    return graph


def test_no_import_cycles_in_the_router_or_the_proxy() -> None:
    source = Path(__file__).resolve().parents[3] / "src" / "ppd"
    graph = _package_imports(source / "router", "ppd.router") | _package_imports(
        source / "proxy", "ppd.proxy"
    )
    graph = {module: {m for m in imports if m in graph} for module, imports in graph.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, f"import cycle: {' -> '.join([*visiting, module])}"
        visiting.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not any(
        imported.startswith("ppd.proxy")
        for module, imports in graph.items()
        if module.startswith("ppd.router")
        for imported in imports
    )
