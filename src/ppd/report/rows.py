"""Read a result set's per-turn rows as numpy columns, one table per run, for the bootstrap.

Reading is tolerant: only the fields the report needs are taken, so rows written by a newer bench
with more fields still read. Warm-up rows are dropped (summaries leave them out too). A rows file
may be stored as `<rows_file>`, `<rows_file>.gz`, or (committed sets that dropped the ITL lists to
save space) `<stem>.rows-no-itl.jsonl[.gz]` beside it (results.rows_path).
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppd.report.bootstrap import BoolArray, FloatArray, IntArray
from ppd.report.inputs import ResultFile
from ppd.results import rows_path

RunKey = tuple[str, str, float, int]  # mode, workload, qps (normalized), run


@dataclass(frozen=True)
class RunRows:
    """The measured (non-warm-up) turns of one run as columns; NaN where a latency is undefined."""

    conversation: IntArray  # conversation index within the run
    turn: IntArray  # 1-based
    sent: BoolArray
    ok: BoolArray
    good: BoolArray  # ok and within the set's SLOs (goodput)
    ttft_ms: FloatArray
    e2e_ms: FloatArray
    tpot_ms: FloatArray
    # Prefix-cache hits of ok turns that report them (0 where not): prompt tokens, and the tokens the
    # prefilling instance found cached (P's own on a P -> D route; ppd.bench.metrics.cache_hit_rate).
    prompt_tokens: FloatArray | None = None
    cached_tokens: FloatArray | None = None

    def in_turn_group(self, group: str) -> BoolArray:
        """Mask of the rows in turn group "1", "2+" or "all"."""
        if group == "1":
            mask: BoolArray = self.turn == 1
        elif group == "2+":
            mask = self.turn >= 2
        elif group == "all":
            mask = np.ones(self.turn.shape, dtype=bool)
        else:
            raise ValueError(f"unknown turn group {group!r}; known: 1, 2+, all")
        return mask


def find_rows_file(result: ResultFile) -> Path | None:
    """Where the result set's rows are stored (results.rows_path), or None when they are not beside
    the JSON."""
    name = result.meta.get("rows_file")
    if not isinstance(name, str) or not name:
        return None
    path = rows_path(result.path.parent / name)
    return path if path.is_file() else None


def read_run_rows(result: ResultFile, qps_key: Any) -> dict[RunKey, RunRows]:
    """Every run of the result's summaries that has rows, as columns; {} when the rows are absent.

    `qps_key` normalizes QPS values the way the merged points do. Rows of runs without a summary
    (an interrupted run, or pairs dropped by --auto) are left out.
    """
    path = find_rows_file(result)
    if path is None:
        return {}
    wanted = {
        (str(s["mode"]), str(s["workload"]), qps_key(s["qps"]), int(s["run"])) for s in result.summaries
    }
    slo = result.meta.get("config", {}).get("slo") or {}
    columns: dict[RunKey, list[dict[str, Any]]] = defaultdict(list)
    for row in _json_lines(path):
        if row.get("in_warmup"):
            continue
        key = (
            str(row.get("mode")),
            str(row.get("workload")),
            qps_key(row.get("qps", 0.0)),
            int(row.get("run", -1)),
        )
        if key in wanted:
            columns[key].append(row)
    return {key: _run_rows(rows, slo) for key, rows in columns.items()}


# The per-chunk gaps are most of a long answer's row and the report never reads them: cutting them
# out of the text before parsing reads the H100 W3 rows ~10x faster (0.43 -> 0.04 s of CPU).
_ITL_FIELD = re.compile(r'"itl_ms":\s*\[[^\]]*\]\s*,|,\s*"itl_ms":\s*\[[^\]]*\]')


def _json_lines(path: Path) -> list[dict[str, Any]]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = _ITL_FIELD.sub("", data.decode()).splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # a torn last line from a crash
                break
            raise ValueError(f"{path}:{number}: not a JSON line") from None
    return rows


def _run_rows(rows: list[dict[str, Any]], slo: dict[str, Any]) -> RunRows:
    sent = np.array([bool(r.get("sent")) for r in rows], dtype=bool)
    ok = np.array([bool(r.get("ok")) for r in rows], dtype=bool) & sent
    ttft_ms = _floats(rows, "ttft_ms")
    tpot_ms = _floats(rows, "tpot_ms")
    return RunRows(
        conversation=np.array([int(r["conversation"]) for r in rows], dtype=np.int64),
        turn=np.array([int(r["turn"]) for r in rows], dtype=np.int64),
        sent=sent,
        ok=ok,
        good=ok
        & _within(ttft_ms, slo.get("ttft_ms"), undefined_meets=False)
        & _within(tpot_ms, slo.get("tpot_ms"), undefined_meets=True),
        ttft_ms=ttft_ms,
        e2e_ms=_floats(rows, "e2e_ms"),
        tpot_ms=tpot_ms,
        **_cache_columns(rows, ok),
    )


def _cache_columns(rows: list[dict[str, Any]], ok: BoolArray) -> dict[str, FloatArray]:
    prompt, cached = np.zeros(len(rows)), np.zeros(len(rows))
    for index, row in enumerate(rows):
        served = row.get("prefill_cached_tokens")
        served = row.get("cached_tokens") if served is None else served
        if ok[index] and served is not None and row.get("prompt_tokens"):
            prompt[index], cached[index] = float(row["prompt_tokens"]), float(served)
    return {"prompt_tokens": prompt, "cached_tokens": cached}


def _floats(rows: list[dict[str, Any]], name: str) -> FloatArray:
    return np.array([np.nan if r.get(name) is None else float(r[name]) for r in rows], dtype=np.float64)


def _within(values: FloatArray, limit: float | None, undefined_meets: bool) -> BoolArray:
    """Which turns meet one objective, as ppd.bench.metrics.meets_slo decides (no TTFT fails a TTFT
    objective; no TPOT, a one-token answer, meets a TPOT objective)."""
    if limit is None:
        return np.ones(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        within: BoolArray = values <= float(limit)
    return within | np.isnan(values) if undefined_meets else within
