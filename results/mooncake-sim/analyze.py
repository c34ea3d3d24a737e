"""The figures results/mooncake-sim/README.md quotes, from the result sets beside this script.

    python results/mooncake-sim/analyze.py results/mooncake-sim/fleet-1p1d.json ...

Per result set, topology and rate: for each mode, the turn-2+ prefix-cache hit rate (cached over
prompt tokens where prefilled: P's own on P -> D turns), mean TTFT of turn 1 and turns 2+, mean E2E,
goodput; for PPD's direct turns, how many found their history lost (cached < half of min(previous
prompt + answer, prompt - 1): the proxy's own check) and their mean TTFT against the same trace
requests' TTFT under PD (a paired comparison: same requests, same times).
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

from ppd.bench.metrics import cache_hit_rate
from ppd.results import TurnRow, load_result


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def lost(row: TurnRow, previous: TurnRow | None) -> bool | None:
    """The proxy's check (router/holding.py) recomputed from the rows."""
    if previous is None or row.prompt_tokens is None or row.cached_tokens is None:
        return None
    history = (previous.prompt_tokens or 0) + (previous.output_tokens or 0)
    reusable = min(history, row.prompt_tokens - 1)
    return reusable > 0 and row.cached_tokens < 0.5 * reusable


def previous_sent(rows: list[TurnRow]) -> dict[int, TurnRow | None]:
    """id(row) -> the conversation's previous sent turn."""
    by_conversation: dict[str, list[TurnRow]] = defaultdict(list)
    for row in rows:
        by_conversation[row.conversation_id].append(row)
    result: dict[int, TurnRow | None] = {}
    for turns in by_conversation.values():
        last: TurnRow | None = None
        for row in sorted(turns, key=lambda r: r.turn):
            result[id(row)] = last
            if row.sent and row.ok:
                last = row
    return result


def point_table(name: str, meta: dict, rows: list[TurnRow]) -> None:
    """One table per rate: the modes side by side, then PPD's direct turns."""
    for qps in sorted({row.qps for row in rows}):
        at = [row for row in rows if row.qps == qps and not row.in_warmup]
        print(f"\n#### {name}: {qps:g} req/s ({len({r.trace_request for r in at})} requests)\n")
        print(
            "| mode | turn-2+ cache hit | TTFT t1 mean ms | TTFT t2+ mean ms | E2E mean ms "
            "| goodput req/s | ok | skipped |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for mode in ("pd", "ppd", "replication", "auto"):
            rs = [r for r in at if r.mode == mode]
            if rs:
                print(mode_line(meta, mode, qps, rs))
        direct_table(at)


def mode_line(meta: dict, mode: str, qps: float, rs: list[TurnRow]) -> str:
    ok = [r for r in rs if r.ok]
    later = [r for r in ok if r.turn > 1]
    summary = next(
        (s for s in meta["summaries"] if (s["mode"], s["qps"], s["turn_group"]) == (mode, qps, "all")), {}
    )
    hit = cache_hit_rate(later)
    ttft1 = mean([r.ttft_ms for r in ok if r.turn == 1 and r.ttft_ms])
    ttft2 = mean([r.ttft_ms for r in later if r.ttft_ms])
    e2e = mean([r.e2e_ms for r in ok if r.e2e_ms])
    skipped = sum(1 for r in rs if (r.error or "").startswith("skipped"))
    return (
        f"| {mode} | {fmt(hit and hit * 100, 1)}% | {fmt(ttft1)} | {fmt(ttft2)} | {fmt(e2e)} "
        f"| {fmt(summary.get('goodput_rps'), 3)} | {len(ok)}/{sum(r.sent for r in rs)} | {skipped} |"
    )


def direct_table(rows: list[TurnRow]) -> None:
    """PPD's direct turns: found vs lost histories, and the same requests under PD."""
    ppd = [r for r in rows if r.mode == "ppd"]
    pd_by_request = {r.trace_request: r for r in rows if r.mode == "pd" and r.ok}
    previous = previous_sent(ppd)
    groups: dict[str, list[TurnRow]] = {"found": [], "lost": []}
    for row in ppd:
        if row.route == "ppd-direct" and row.ok:
            verdict = lost(row, previous[id(row)])
            if verdict is not None:
                groups["lost" if verdict else "found"].append(row)
    total = len(groups["found"]) + len(groups["lost"])
    if not total:
        return
    num_lost = len(groups["lost"])
    print(f"\nPPD direct turns: {total}, history lost on {num_lost} ({num_lost / total:.0%})\n")
    print(
        "| direct turns | n | cached share | TTFT mean ms (PPD) | same requests under PD: TTFT mean ms "
        "| E2E mean ms PPD / PD |"
    )
    print("|---|---|---|---|---|---|")
    for label, group in groups.items():
        paired = [(r, pd_by_request[r.trace_request]) for r in group if r.trace_request in pd_by_request]
        share = mean([(r.cached_tokens or 0) / r.prompt_tokens for r in group if r.prompt_tokens])
        ppd_ttft = mean([r.ttft_ms for r, _ in paired if r.ttft_ms])
        pd_ttft = mean([p.ttft_ms for _, p in paired if p.ttft_ms])
        ppd_e2e = mean([r.e2e_ms for r, _ in paired if r.e2e_ms])
        pd_e2e = mean([p.e2e_ms for _, p in paired if p.e2e_ms])
        print(
            f"| {label} | {len(group)} | {fmt(share and share * 100, 1)}% | {fmt(ppd_ttft)} | {fmt(pd_ttft)} "
            f"| {fmt(ppd_e2e)} / {fmt(pd_e2e)} |"
        )


def main() -> None:
    for path in map(Path, sys.argv[1:]):
        meta, rows = load_result(path)
        print(f"\n### {path.name}")
        for run in meta.get("fleet", []):
            history = run.get("history") or {}
            if history.get("checks"):
                print(
                    f"- {run['mode']} at {run['qps']:g} req/s: router history checks {history['checks']}, "
                    f"lost {history['lost']} ({history['lost_share']:.0%}), missed token share "
                    f"{history['missed_token_share']:.0%}"
                )
        point_table(path.stem, meta, rows)


if __name__ == "__main__":
    main()
