"""`ppd bench` flags for trace replay: --rate / --speedup / --window, and what they exclude."""

from __future__ import annotations

from pathlib import Path

import pytest

from ppd.bench.arrivals import plan_trace, trace_duration_s
from ppd.bench.cli import build_config
from ppd.bench.runner import _rates_and_durations
from ppd.cli import build_parser
from ppd.errors import UsageError

EXCERPT = Path(__file__).parents[3] / "src/ppd/traces/data/mooncake-conversation-excerpt.jsonl"
SPEC = f"mooncake:{EXCERPT}"


def _config_of(*argv: str):  # type: ignore[no-untyped-def]
    return build_config(build_parser().parse_args(["bench", "--url", "http://h:1", *argv]))


def test_a_trace_plays_at_its_own_pace_by_default() -> None:
    config = _config_of("--workload", SPEC)
    workload = config.workloads[0]
    assert workload.name == "mooncake-conversation-excerpt" and workload.trace is not None
    assert config.speedups == (1.0,)
    [(rate, duration_s)] = _rates_and_durations(config, workload)
    span_s = workload.trace.linked.trace.duration_s + 0.001  # the window ends just after the last request
    assert duration_s == pytest.approx(span_s, rel=1e-5)
    assert rate == pytest.approx(82 / span_s, rel=1e-5)


def test_rate_scales_the_trace_and_window_slices_it() -> None:
    config = _config_of("--workload", SPEC, "--rate", "2,4", "--window", "0:300")
    workload = config.workloads[0]
    assert workload.trace is not None and config.speedups == ()
    points = _rates_and_durations(config, workload)
    assert [rate for rate, _ in points] == [2.0, 4.0]
    assert points[0][1] == pytest.approx(72 / 2.0)  # 72 requests in the window at 2 req/s
    plans = plan_trace(workload.trace, 4.0)
    assert sum(len(plan.turns) for plan in plans) == 72
    assert max(turn.due_s for plan in plans for turn in plan.replay.turns) < trace_duration_s(
        workload.trace, 4.0
    )  # type: ignore[union-attr]


def test_speedup_gives_rates_from_the_slice() -> None:
    config = _config_of("--workload", SPEC, "--speedup", "10")
    workload = config.workloads[0]
    assert workload.trace is not None
    span_s = workload.trace.linked.trace.duration_s + 0.001
    [(rate, duration_s)] = _rates_and_durations(config, workload)
    assert duration_s == pytest.approx(span_s / 10, rel=1e-5) and rate == pytest.approx(
        820 / span_s, rel=1e-5
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workload", SPEC, "--duration", "30"], "--window"),
        (["--workload", SPEC, "--rate", "1", "--speedup", "2"], "not both"),
        (["--workload", "W1", "--speedup", "2"], "apply to trace workloads"),
        (["--workload", "W1", "--window", "0:10"], "apply to trace workloads"),
        (["--workload", SPEC, "--window", "5000:6000"], "no requests in the window"),
        (["--workload", SPEC, "--speedup", "0"], "--speedup"),
        (["--workload", "mooncake:/no/such.jsonl"], "no such file"),
    ],
)
def test_bad_trace_flags_say_what_is_wrong(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config_of(*argv)
