"""summary.md: the Key Results tables, crossovers, sample counts and inputs, all computed from data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ppd.report.comparisons import (
    TURN2_TTFT_MEAN,
    Improvement,
    ImprovementRow,
    MetricTable,
    PairOutcome,
    PairRow,
    head_to_head,
    improvements,
    metric_tables,
)
from ppd.report.labels import (
    crossing_label,
    estimate_label,
    interval_label,
    mode_label,
    number,
    percent,
    qps_label,
)
from ppd.report.merge import MergedResults

CI_NOTE = (
    "Values are pooled over a point's runs, with 95% intervals in parentheses: a bootstrap that "
    "resamples whole conversations (and runs, when there are several), paired between modes run on "
    "the same arrival schedules. Result sets without their rows fall back to the mean over runs "
    'with a Student t interval ("no CI" for a single run). P99 needs ≥ 100 samples, else it is '
    "null. A tie: the 95% interval of the difference contains 0. Method: docs/report.md."
)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return lines


def render_summary(merged: MergedResults, crossover: dict[str, Any], notes: Sequence[str] = ()) -> str:
    """The whole summary.md; `notes` go under the opening line."""
    num_runs = len({(k.workload, k.mode, k.qps, run) for k, p in merged.points.items() for run in p.run_ids})
    lines = [
        "# ppd report",
        "",
        f"{len(merged.inputs)} result file(s), {num_runs} measured run(s) of mode x workload x QPS; modes: "
        + ", ".join(mode_label(m) for m in merged.modes())
        + "; workloads: "
        + ", ".join(merged.workloads())
        + ".",
        "",
        *(line for note in notes for line in (note, "")),
        CI_NOTE,
        "",
        "## Key results",
        "",
        *key_results(merged),
        "## Crossover points",
        "",
        *crossover_section(crossover),
        "## Samples",
        "",
        *samples_section(merged),
        "## Inputs",
        "",
        *inputs_section(merged),
    ]
    return "\n".join(lines) + "\n"


def key_results(merged: MergedResults) -> list[str]:
    """The Key Results tables that summary.md opens with, and `ppd demo` prints."""
    return [
        "### PPD vs PD (turn-2 TTFT improvement)",
        "",
        *improvement_section(improvements(merged, "ppd", "pd")),
        "### PPD vs Replication: which wins where",
        "",
        *head_to_head_section(head_to_head(merged, "ppd", "replication"), "ppd", "replication"),
        "### Goodput per mode (requests/s meeting the SLOs, all turns)",
        "",
        slo_text(merged),
        "",
        *goodput_section(metric_tables(merged, "all", "goodput_rps")),
        "### Mean TTFT of turns 2+ by mode (ms)",
        "",
        *grid_section(metric_tables(merged, "2+", "ttft_ms.mean")),
        *cache_section(metric_tables(merged, "2+", "cache_hit_rate")),
    ]


def cache_section(tables: list[MetricTable]) -> list[str]:
    """Prefix-cache hit rate of turns 2+ per mode (cached over prompt tokens, at the instance that
    prefilled them: P on P -> D routes); nothing when no row reported cached tokens."""
    if not tables:
        return []
    return [
        "### Prefix-cache hit rate of turns 2+ by mode (cached / prompt tokens where prefilled)",
        "",
        *grid_section(tables),
    ]


def improvement_section(rows: list[ImprovementRow]) -> list[str]:
    """Avg / min / max of PPD's turn-2+ mean TTFT improvement over PD, per workload."""
    if not rows:
        return ["Not available: needs both PD and PPD results for the same workload and QPS.", ""]
    body = []
    for row in rows:
        body.append(
            [
                row.workload,
                percent(row.average_percent),
                f"{percent(row.worst.percent)} (QPS {qps_label(row.worst.qps)})",
                f"{percent(row.best.percent)} (QPS {qps_label(row.best.qps)})",
                "; ".join(_improvement_at(i) for i in row.per_qps),
            ]
        )
    header = ["Workload", "Avg improvement", "Min", "Max", "Per QPS: improvement (95% CI)"]
    note = (
        "Improvement = (PD − PPD) / PD of the mean TTFT of turns 2+ at each QPS both measured; "
        "Avg is the mean over those QPS points. Negative means PPD was slower."
    )
    return [*table(header, body), "", note, ""]


def _improvement_at(improvement: Improvement) -> str:
    text = f"{qps_label(improvement.qps)}: {percent(improvement.percent)}"
    if improvement.low_percent is None or improvement.high_percent is None:
        return text + " (no CI)"
    interval = interval_label(improvement.low_percent, improvement.high_percent, decimals=1)
    return text + f" ({interval}%{'' if improvement.significant else ', tie'})"


def head_to_head_section(rows: list[PairRow], mode_a: str, mode_b: str) -> list[str]:
    """Where each of two modes has the lower turn-2+ mean TTFT, and where the winner changes."""
    label_a, label_b = mode_label(mode_a), mode_label(mode_b)
    if not rows:
        return [f"Not available: needs both {label_a} and {label_b} results for the same points.", ""]
    body = []
    for row in rows:
        wins_a = [_win_label(o) for o in row.outcomes if o.winner == mode_a]
        wins_b = [_win_label(o) for o in row.outcomes if o.winner == mode_b]
        ties = [qps_label(o.qps) for o in row.outcomes if o.winner == "tie"]
        body.append(
            [
                row.workload,
                ", ".join(wins_a) or "—",
                ", ".join(wins_b) or "—",
                ", ".join(ties) or "—",
                "; ".join(crossing_label(c) for c in row.crossings) or "no change",
            ]
        )
    header = [
        "Workload",
        f"{label_a} wins at QPS (lower by)",
        f"{label_b} wins at QPS (lower by)",
        "Tie within 95% CI at QPS",
        "Winner changes at QPS",
    ]
    note = (
        f"Metric: {TURN2_TTFT_MEAN.label}. A win: the 95% interval of the difference excludes 0; a tie: "
        "it contains 0. The winner changes only between points won in opposite directions."
    )
    if _untested(rows):
        note += " Points marked * have no interval (one run, no rows): their winner is untested."
    return [*table(header, body), "", note, ""]


def _win_label(outcome: PairOutcome) -> str:
    untested = "*" if outcome.significant is None else ""
    return f"{qps_label(outcome.qps)}{untested} (−{percent(outcome.margin_percent)})"


def slo_text(merged: MergedResults) -> str:
    """Which SLOs the inputs' goodput was measured against (bench config "slo")."""
    slos = {json.dumps(r.meta.get("config", {}).get("slo"), sort_keys=True) for r in merged.inputs}
    parts = []
    for text in sorted(slos):
        slo = json.loads(text) or {}
        limits = [
            f"{name.split('_')[0].upper()} ≤ {number(value)} ms"
            for name, value in sorted(slo.items())
            if value
        ]
        parts.append(", ".join(limits) if limits else "none (goodput = every successful request)")
    return "SLO: " + "; ".join(parts) + "."


def goodput_section(tables: list[MetricTable]) -> list[str]:
    """Goodput grids, or why there are none."""
    if not tables:
        return ["Not available: no run recorded a goodput.", ""]
    return grid_section(tables)


def grid_section(tables: list[MetricTable]) -> list[str]:
    """One mode x QPS table per workload."""
    lines: list[str] = []
    for grid in tables:
        header = [f"{grid.workload}: mode", *(f"QPS {qps_label(q)}" for q in grid.qps_values)]
        body = [
            [mode_label(mode), *(estimate_label(c) for c in cells)] for mode, cells in grid.by_mode.items()
        ]
        lines += [*table(header, body), ""]
    return lines


def _untested(rows: list[PairRow]) -> bool:
    return any(o.significant is None for row in rows for o in row.outcomes)


def crossover_section(crossover: dict[str, Any]) -> list[str]:
    """Every change of winner found in qps_crossover_analysis.json, one table row each."""
    body = []
    for analysis in crossover["analyses"]:
        for pair in analysis["pairs"]:
            for c in pair["crossings"]:
                body.append(
                    [
                        analysis["workload"],
                        analysis["label"],
                        " vs ".join(mode_label(m) for m in pair["modes"]),
                        f"{mode_label(c['winner_below'])} → {mode_label(c['winner_above'])}",
                        number(c["qps"]),
                        _interval_text(c),
                        " and ".join(qps_label(q) for q in c["between_measured_qps"]),
                    ]
                )
    lines = [*best_section(crossover), "### Where the winner changes", ""]
    if not body:
        lines += [
            "No mode overtakes another significantly within the measured QPS range (on any analysed "
            "metric): nowhere is a mode significantly better at one QPS and significantly worse at another.",
            "",
        ]
        return lines
    header = [
        "Workload", "Metric", "Modes", "Winner below → above", "QPS", "95% interval of the QPS",
        "Between measured QPS",
    ]  # fmt: skip
    note = (
        "The QPS and its interval interpolate the difference linearly in ln(QPS) between measured "
        "points; only the bracket of measured QPS is free of that assumption. "
        "Details: qps_crossover_analysis.json."
    )
    return [*lines, *table(header, body), "", note, ""]


def best_section(crossover: dict[str, Any]) -> list[str]:
    """Per analysed metric, the best mode at each QPS, or "tie" with the modes tied with the lowest."""
    lines: list[str] = []
    for analysis in crossover["analyses"]:
        cells = [f"QPS {qps_label(row['qps'])}: {_best_label(row)}" for row in analysis["best_by_qps"]]
        lines.append(f"- {analysis['workload']}, {analysis['label']}: " + "; ".join(cells))
    if not lines:
        return []
    return [
        "### Best mode at each QPS",
        "",
        *lines,
        "",
        '"tie": the lowest mode\'s lead over the modes named is within the 95% interval of the '
        'difference; "*": no interval for some modes (one run, no rows), so the lead is untested.',
        "",
    ]


def _best_label(row: dict[str, Any]) -> str:
    if row["best"] == "tie":
        tied = [row["mode"], *row["tied_with"]]
        text = "tie (" + ", ".join(mode_label(m) for m in tied) + ")"
    else:
        text = mode_label(row["mode"])
    return text + ("*" if row["untested"] else "")


def _interval_text(crossing: dict[str, Any]) -> str:
    if crossing["ci95_qps_low"] is None:
        return "no interval"
    low = ("≤" if crossing["ci95_low_open"] else "") + number(crossing["ci95_qps_low"])
    high = ("≥" if crossing["ci95_high_open"] else "") + number(crossing["ci95_qps_high"])
    return f"{low} – {high}"


def samples_section(merged: MergedResults) -> list[str]:
    """Runs and request counts behind every point."""
    body = []
    mode_rank = {mode: rank for rank, mode in enumerate(merged.modes())}
    keys = [k for k in merged.points if k.turn_group == "all"]
    for key in sorted(keys, key=lambda k: (merged.workloads().index(k.workload), mode_rank[k.mode], k.qps)):
        everything = merged.points[key]
        turn1 = merged.point(key.workload, key.mode, key.qps, "1")
        later = merged.point(key.workload, key.mode, key.qps, "2+")
        body.append(
            [
                key.workload,
                mode_label(key.mode),
                qps_label(key.qps),
                str(everything.num_runs),
                str(turn1.totals.get("count", 0) if turn1 else 0),
                str(later.totals.get("count", 0) if later else 0),
                str(everything.totals.get("num_failed", 0)),
                str(everything.totals.get("num_not_sent", 0)),
            ]
        )
    header = ["Workload", "Mode", "QPS", "Runs", "Turn-1 requests", "Turn-2+ requests", "Failed", "Not sent"]
    return [*table(header, body), "", "Requests are summed over runs.", ""]


def inputs_section(merged: MergedResults) -> list[str]:
    """Which files, tool and engine versions, seeds and configs the report was built from."""
    body = []
    for result in merged.inputs:
        meta = result.meta
        engines = sorted(
            {f"{e.get('version') or '?'} ({e.get('model') or '?'})" for e in meta.get("engines", [])}
        )
        body.append(
            [
                str(result.path.name),
                str(meta.get("updated_utc") or meta.get("created_utc") or "?"),
                str(meta.get("tool", {}).get("version", "?")),
                ", ".join(engines) or "?",
                str(meta.get("seed", "?")),
                ", ".join(sorted({mode_label(m) for m, _ in result.mode_workloads()})),
                str(len(meta.get("runs", []))),
            ]
        )
    header = ["File", "Updated (UTC)", "ppd", "Engines (version, model)", "Seed", "Modes", "Runs"]
    lines = [*table(header, body), ""]
    for result in merged.inputs:
        config = json.dumps(result.meta.get("config", {}), sort_keys=True)
        topology = json.dumps(result.meta.get("topology"), sort_keys=True)
        lines += [
            f"<details><summary>{result.path.name}: config and topology</summary>",
            "",
            f"```json\n{config}\n{topology}\n```",
            "",
            "</details>",
            "",
        ]
    return lines
