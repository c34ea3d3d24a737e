"""Where a TTFT p50 gap between HTTP and the fleet comes from, turn by turn: the same conversations
(same seeds) on both sides, each turn 1's TTFT over HTTP less the fleet's. At a busy engine a turn's
TTFT is set by the step it joins, so a turn that reaches the scheduler a little later waits one more
decode step: such turns show up as a difference of about one step (> --step-ms), not as a shift of
every turn. Per point (replication and auto, where turn 1 goes straight to a decoding engine) it
prints how many turns are one step later / earlier over HTTP, the median difference of the rest, the
fleet's TTFT of both groups (a turn the fleet put just before a step boundary has the fleet's
shortest TTFTs), and the bench's own part of the TTFT over HTTP (the bench's TTFT less the proxy's,
from the proxy's decision log) for both groups: if that part is the same, the extra step was taken
after the proxy had the turn, not in the client.

    python benchmarks/fleet_vs_sim.py --out DIR --fleet-only --hops H --proxy-cpu P   # fleet rows
    python benchmarks/fleet_turn_steps.py DIR [--step-ms 3]

DIR holds http-<topology>-<workload>.json with its rows (as written, or packed: .rows-no-itl.jsonl.gz),
fleet-<topology>-<workload>.json(l) and proxy-decisions-<topology>.jsonl (or .jsonl.gz). Ends with
`fleet_turn_steps turns=N later=L earlier=E later_share=S client_part_later_ms=A client_part_rest_ms=B`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from _sims import SRC

sys.path.insert(0, str(SRC))

from ppd.results import TurnRow, read_rows

MODES = ("replication", "auto")
Row = TurnRow


def read_decisions(out: Path, topology: str) -> list[dict[str, Any]]:
    """The proxy's decision log of a topology (gzipped or not); [] when there is none."""
    for path in (out / f"proxy-decisions-{topology}.jsonl", out / f"proxy-decisions-{topology}.jsonl.gz"):
        if path.exists():
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    return []


def turn_ones(rows: list[Row], qps: float, mode: str) -> list[Row]:
    return [r for r in rows if r.qps == qps and r.mode == mode and r.turn == 1 and r.ok and not r.in_warmup]


def median_or_nan(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def point_line(
    label: str, pairs: list[tuple[Row, Row, float | None]], step_ms: float
) -> tuple[str, dict[str, list[float]]]:
    """One point's line; pairs are (HTTP row, fleet row, the proxy's TTFT ms or None)."""
    groups: dict[str, list[float]] = {"later": [], "rest": [], "client_later": [], "client_rest": []}
    fleet_ttft: dict[str, list[float]] = {"later": [], "rest": []}
    earlier = 0
    for http, fleet, proxy_ttft_ms in pairs:
        if http.ttft_ms is None or fleet.ttft_ms is None:
            continue
        diff_ms = http.ttft_ms - fleet.ttft_ms
        earlier += diff_ms < -step_ms
        group = "later" if diff_ms > step_ms else "rest"
        groups[group].append(diff_ms)
        fleet_ttft[group].append(fleet.ttft_ms)
        if proxy_ttft_ms is not None:
            groups["client_" + group].append(http.ttft_ms - proxy_ttft_ms)
    n, later = len(pairs), len(groups["later"])
    diff_later, diff_rest = median_or_nan(groups["later"]), median_or_nan(groups["rest"])
    fleet_later, fleet_rest = median_or_nan(fleet_ttft["later"]), median_or_nan(fleet_ttft["rest"])
    bench_later, bench_rest = median_or_nan(groups["client_later"]), median_or_nan(groups["client_rest"])
    line = (
        f"{label:28} n={n:3} later={later:3} ({later / n:4.0%}) earlier={earlier:2}"
        f" | later by {diff_later:+5.2f} ms, rest {diff_rest:+5.2f}"
        f" | fleet TTFT {fleet_later:5.1f} / {fleet_rest:5.1f}"
        f" | bench part {bench_later:4.2f} / {bench_rest:4.2f} ms"
    )
    groups["earlier"] = [1.0] * earlier
    return line, groups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a folder with both sides' rows (see above)")
    parser.add_argument(
        "--step-ms", type=float, default=3.0, help="a difference beyond this is a step (default 3)"
    )
    args = parser.parse_args()
    totals: dict[str, list[float]] = {
        key: [] for key in ("later", "rest", "client_later", "client_rest", "earlier")
    }
    print(
        "point                         turns, one step later / earlier over HTTP | HTTP - fleet ms"
        " | fleet TTFT p50, later / rest | bench part p50, later / rest"
    )
    for http_json in sorted(args.out.glob("http-*.json")):
        topology, workload = http_json.stem.split("-")[1:3]
        fleet = {
            (r.mode, r.qps, r.run, r.conversation): r
            for r in read_rows(args.out / f"fleet-{topology}-{workload}.jsonl")
            if r.turn == 1
        }
        decisions = read_decisions(args.out, topology)
        proxy_ms = {r["conversation"]: r["ttft_ms"] for r in decisions if r["turn"] == 1}
        rows = read_rows(http_json.with_suffix(".jsonl"))
        for qps in sorted({r.qps for r in rows}):
            for mode in MODES:
                pairs = [
                    (
                        r,
                        fleet[(mode, qps, r.run, r.conversation)],
                        proxy_ms.get("s:" + r.conversation_id),
                    )
                    for r in turn_ones(rows, qps, mode)
                ]
                if not pairs:
                    continue
                line, groups = point_line(f"{topology} {workload} {qps:g}/s {mode}", pairs, args.step_ms)
                print(line)
                for key, values in groups.items():
                    totals[key].extend(values)
    n = len(totals["later"]) + len(totals["rest"])
    print(
        f"fleet_turn_steps turns={n} later={len(totals['later'])} earlier={len(totals['earlier'])}"
        f" later_share={len(totals['later']) / n:.3f}"
        f" client_part_later_ms={median_or_nan(totals['client_later']):.2f}"
        f" client_part_rest_ms={median_or_nan(totals['client_rest']):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
