"""Can `ppd bench` replay a production trace on time? A 60 s slice of the Mooncake conversation trace at
20 requests/s against a very fast sim, side by side with synthetic single-turn load of the same rate
and mean lengths (the bench's ordinary path) as the baseline.

Trace replay does more per request than synthetic load: it builds each prompt from the trace's block
ids (~12k words on average), links turns, waits for a turn's predecessor, and skips requests longer
than the sim's max_model_len. This checks that none of it costs the schedule. It ends with

    trace_replay requests=N linked_turns=L skipped=S achieved_rate_ratio=R lag_p99_ms=X

where requests are the slice's, linked turns those sent as later turns of a conversation, skipped
those over max_model_len, R = achieved / offered rate of conversation starts (what only the client
decides; a later turn also waits for the turn before it, i.e. for the server): conversations with a
sendable turn over the window, against those started over the window stretched to the last start;
and X the p99 of every sent request's schedule lag (send - due).
The table also shows the request-level rate (sent requests over the window stretched to the last
send). Goals: R >= 0.99 and X <= 5 ms.

    flock /work/cpu.lock .venv/bin/python benchmarks/trace_replay.py [--rate 20] [--duration-s 60] \\
        [--start-s 600] [--trace data/traces/mooncake-conversation_trace.jsonl.gz]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _sims import running_sim
from ppd.bench.config import BenchConfig
from ppd.bench.metrics import distribution
from ppd.bench.runner import run_bench
from ppd.bench.workloads import parse_workloads
from ppd.results import TurnRow, load_result
from ppd.traces.formats import read_trace_spec
from ppd.traces.replay import Window

DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "data/traces/mooncake-conversation_trace.jsonl.gz"
SIM_MAX_MODEL_LEN = 16384


@dataclass
class Replay:
    label: str
    num_requests: int
    num_sent: int
    num_ok: int
    num_linked: int
    num_skipped: int
    offered_rate: float  # requests/s
    achieved_rate: float
    lag_p50_ms: float
    lag_p99_ms: float
    start_ratio: float  # achieved / offered rate of conversation starts

    @property
    def request_ratio(self) -> float:
        return self.achieved_rate / self.offered_rate


def slice_window(trace_path: Path, start_s: float, num_requests: int) -> Window:
    """The window from start_s holding exactly num_requests requests."""
    trace = read_trace_spec(f"mooncake:{trace_path}").trace
    first = next(r.index for r in trace.requests if r.arrival_s >= start_s)
    if first + num_requests >= len(trace.requests):
        raise SystemExit(f"the trace has fewer than {num_requests} requests after {start_s:g} s")
    return Window(start_s, trace.requests[first + num_requests].arrival_s)


def summarize(label: str, rows: list[TurnRow], duration_s: float, start_ratio: float) -> Replay:
    """Request-level rates and lags of one run's rows."""
    due = [row for row in rows if not (row.error or "").startswith("skipped:")]
    sent = [row for row in due if row.sent and row.sent_s is not None]
    last_sent_s = max((row.sent_s for row in sent if row.sent_s is not None), default=duration_s)
    lag = distribution(row.schedule_lag_ms for row in sent if row.schedule_lag_ms is not None)
    return Replay(
        label,
        len(rows),
        len(sent),
        sum(row.ok for row in sent),
        sum(1 for row in sent if row.turn > 1),
        len(rows) - len(due),
        len(due) / duration_s,
        len(sent) / max(duration_s, last_sent_s),
        lag["p50"] or 0.0,
        lag["p99"] or 0.0,
        start_ratio,
    )


def run(url: str, workload: str, rate: float, window: Window | None, duration_s: float, out: Path) -> Replay:
    """One run: the trace slice at `rate` requests/s, or synthetic single-turn load (window None)."""
    workloads = parse_workloads(workload, 1, window)
    config = BenchConfig(
        url=url,
        workloads=workloads,
        qps=(rate,),
        duration_s=duration_s,
        drain_timeout_s=60.0,
        output_dir=out,
        name="trace" if window else "synthetic",
        quiet=True,
        prompt_salt="trace-replay",
    )
    meta, rows = load_result(run_bench(config))
    run_info = meta["runs"][0]
    duration_s = run_info["duration_s"]
    return summarize("trace" if window else "synthetic", rows, duration_s, start_ratio(rows, duration_s))


def start_ratio(rows: list[TurnRow], duration_s: float) -> float:
    """Achieved / offered rate of conversation starts (first sendable turns; skipped ones aside)."""
    first_sent: dict[str, float | None] = {}
    for row in sorted(rows, key=lambda r: r.turn):
        if (row.error or "").startswith("skipped:") or row.conversation_id in first_sent:
            continue
        first_sent[row.conversation_id] = row.sent_s
    starts = [sent_s for sent_s in first_sent.values() if sent_s is not None]
    offered = len(first_sent) / duration_s
    achieved = len(starts) / max(duration_s, max(starts, default=0.0))
    return achieved / offered if offered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s")
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--start-s", type=float, default=600.0, help="where the slice starts in the trace")
    parser.add_argument("--time-scale", type=float, default=0.001)
    args = parser.parse_args()
    num_requests = round(args.rate * args.duration_s)
    window = slice_window(args.trace, args.start_s, num_requests)
    linked = read_trace_spec(f"mooncake:{args.trace}")
    requests = [r for r in linked.trace.requests if window.start_s <= r.arrival_s < (window.end_s or 0)]
    fitting = [r for r in requests if r.num_input_tokens + r.num_output_tokens <= SIM_MAX_MODEL_LEN]
    mean_in = round(sum(r.num_input_tokens for r in fitting) / len(fitting))
    mean_out = round(sum(r.num_output_tokens for r in fitting) / len(fitting))
    sim_args = ("--time-scale", str(args.time_scale), "--max-model-len", str(SIM_MAX_MODEL_LEN))
    with running_sim(*sim_args) as url, tempfile.TemporaryDirectory() as tmp:
        baseline = run(
            url,
            f"{mean_in}/{mean_out}",
            args.rate * len(fitting) / len(requests),
            None,
            args.duration_s,
            Path(tmp),
        )
        trace = run(url, f"mooncake:{args.trace}", args.rate, window, args.duration_s, Path(tmp))
    print(
        f"sim --time-scale {args.time_scale:g} --max-model-len {SIM_MAX_MODEL_LEN}; trace {args.trace.name} "
        f"window {window.start_s:g}:{window.end_s:g} s ({num_requests} requests) at {args.rate:g} req/s "
        f"= {args.duration_s:g} s; baseline: single-turn {mean_in}/{mean_out} Poisson at the rate of the "
        "slice's requests that fit"
    )
    print(
        f"{'run':>10} {'requests':>9} {'sent':>6} {'ok':>6} {'linked':>7} {'skipped':>8} {'req/s':>7} "
        f"{'achieved':>9} {'req ratio':>10} {'start ratio':>12} {'lag p50 ms':>11} {'lag p99 ms':>11}"
    )
    for result in (baseline, trace):
        print(
            f"{result.label:>10} {result.num_requests:>9} {result.num_sent:>6} {result.num_ok:>6} "
            f"{result.num_linked:>7} {result.num_skipped:>8} {result.offered_rate:>7.2f} "
            f"{result.achieved_rate:>9.2f} {result.request_ratio:>10.4f} {result.start_ratio:>12.4f} "
            f"{result.lag_p50_ms:>11.3f} {result.lag_p99_ms:>11.3f}"
        )
    print(
        f"trace_replay requests={trace.num_requests} linked_turns={trace.num_linked} "
        f"skipped={trace.num_skipped} achieved_rate_ratio={trace.start_ratio:.4f} "
        f"lag_p99_ms={trace.lag_p99_ms:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
