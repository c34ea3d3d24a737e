"""How long vLLM's API server held new requests against how many streams it ran: the traced W1 and W3
points (session5/, session5b/) cut into 5 s windows of the bench's sends, and per window the p50 of
a turn-1 request's send -> the engine core's schedule(), the median running batch, the step rate,
and the tokens and requests per second the engine handled. Where the batch ran more streams than
the server merges (api_merge_max_seqs, 128), the wait over the windows' baseline (those of up to
128 streams), in engine steps, is the intake's loop turns behind a step's output (the profile key
api_intake_turns, timing.ApiServer):

    python results/h200-vllm0.25.1-single/session6/intake_turns.py

The clocks are aligned per point by the median offset of the first 15 turn-1 requests (the k-th
send matched to the k-th fresh request scheduled, as session5/ttft_parts.py does, but on the first
ones only: later the server delays first tokens too, which would bias a whole-run offset).
"""

from __future__ import annotations

import gzip
import json
import statistics
from pathlib import Path
from typing import Any

import session5_trace

HERE = Path(__file__).resolve().parent
SESSION5 = HERE.parent / "session5"
MERGE_MAX_SEQS = 128
WINDOW_S = 5.0
LEASES = (  # folder, trace, points in order, split at idle gaps of (s) or by workload
    (SESSION5, "steps-async-7points.jsonl.gz", "W1:16 W3:8 W2:4 W1:8 W3:4 W2:5 W4:2.5", None),
    (HERE.parent / "session5b", "steps-async-w1-20-24-16.jsonl.gz", "W1:20 W1:24 W1:16", 1.0),
)


def windows(folder: Path, trace: str, names: str, gap_s: float | None) -> list[dict[str, Any]]:
    step_trace = session5_trace.step_trace()
    ttft_parts = session5_trace.load("session5_ttft_parts", SESSION5 / "ttft_parts.py")
    steps, outputs = step_trace.read_trace(str(folder / trace))
    points = names.split()
    if gap_s is None:
        parts = step_trace.split_points(steps, points)
    else:
        parts = step_trace.split_at_gaps(steps, outputs, gap_s)
    found = []
    for name, part in zip(points, parts, strict=True):
        workload, qps = name.split(":")
        if workload not in ("W1", "W3"):  # W2/W4 queue in the engine itself: not the API server's wait
            continue
        with gzip.open(folder / f"h200-s4-async-{workload.lower()}.jsonl.gz", "rt") as f:
            rows = [r for r in map(json.loads, f) if r["qps"] == float(qps) and r["ok"]]
        traced = ttft_parts.requests_of(part, outputs)
        fresh = [t for t in traced if t["cached"] == 0]
        first_rows = sorted((r for r in rows if r["turn"] == 1), key=lambda r: r["sent_s"])
        pairs = list(zip(fresh, first_rows, strict=False))
        offset_s = statistics.median(t["first_s"] - r["sent_s"] - r["ttft_ms"] / 1e3 for t, r in pairs[:15])
        start_s = 0.0
        while start_s < 30.0:
            sent = [(t, r) for t, r in pairs if start_s <= r["sent_s"] < start_s + WINDOW_S]
            window = [s for s in part if start_s < s["t"] - offset_s <= start_s + WINDOW_S]
            if len(sent) >= 5 and window:
                waits_ms = [(t["scheduled_s"] - offset_s - r["sent_s"]) * 1e3 for t, r in sent]
                num_new = sum(len(s["new"]) for s in window)
                found.append({
                    "point": f"{folder.name}/{name}",
                    "from_s": start_s,
                    "wait_ms": statistics.median(waits_ms),
                    "running": statistics.median(s["running"] for s in window),
                    "step_ms": WINDOW_S * 1e3 / len(window),
                    "tokens_per_s": (sum(s["decodes"] for s in window) + num_new) / WINDOW_S,
                    "requests_per_s": num_new / WINDOW_S,
                })  # fmt: skip
            start_s += WINDOW_S
    return found


def main() -> None:
    rows = [row for lease in LEASES for row in windows(*lease)]
    columns = "send -> schedule p50 ms | running p50 | step ms | tokens/s | requests/s | turns"
    print(f"| point | from s | {columns} |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base_ms = statistics.median(r["wait_ms"] for r in rows if r["running"] <= MERGE_MAX_SEQS)
    turns = []
    for r in rows:
        above = r["running"] > MERGE_MAX_SEQS
        turn = (r["wait_ms"] - base_ms) / r["step_ms"] if above else None
        if turn is not None:
            turns.append(turn)
        turn_cell = "" if turn is None else f"{turn:.1f}"
        print(
            f"| {r['point']} | {r['from_s']:.0f} | {r['wait_ms']:.1f} | {r['running']:.0f} "
            f"| {r['step_ms']:.1f} | {r['tokens_per_s']:.0f} | {r['requests_per_s']:.1f} | {turn_cell} |"
        )
    quartiles = statistics.quantiles(turns, n=4)
    print(
        f"\nintake_turns baseline_ms={base_ms:.1f} (windows of <= {MERGE_MAX_SEQS} streams) "
        f"windows_above={len(turns)} turns_median={statistics.median(turns):.1f} "
        f"turns_p25={quartiles[0]:.1f} turns_p75={quartiles[2]:.1f}"
    )


if __name__ == "__main__":
    main()
