"""The result-file contract between `ppd bench` (writes) and `ppd report` (reads).

One bench invocation writes `<name>.json` (everything but the rows) and `<name>.jsonl` beside it
(one TurnRow per line). The JSON is rewritten atomically after every completed run, and rows are
appended as turns finish, so Ctrl-C keeps every completed row. A finished set's rows may be stored
gzip-compressed as `<rows_file>.gz`, or without their ITL lists as `<stem>.rows-no-itl.jsonl.gz`
(results committed to a repository): readers take any of them (rows_path).

Result JSON (schema "ppd.result/1"):
    {
      "schema": "ppd.result/1",
      "name": str,                      # file stem
      "created_utc": str, "updated_utc": str,
      "tool": {"name": "ppd", "version": str, "python": str, "aiohttp": str},
      "engines": [{"url": str, "role": str, "version": str | None, "model": str | None}],
      "topology": dict | None,          # the proxy's GET /status at start, or None
      "config": {...},                  # the full bench config (url, workload specs, qps list, ...)
      "seed": int,
      "rows_file": str,                 # the JSONL file name, relative to the JSON
      "runs": [RunInfo as dict, ...],
      "summaries": [dict, ...],         # per mode x workload x qps x run x turn group; see bench.metrics
    }
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA = "ppd.result/1"
TURN_GROUPS = ("1", "2+", "all")


@dataclass
class TurnRow:
    """One turn of one conversation, as the client saw it. Times in ms unless named _s."""

    mode: str  # pd | ppd | replication | auto | "" when measuring a bare URL
    workload: str  # W1..W4 or a file workload's name
    qps: float  # offered conversation arrival rate of the run
    run: int  # run index within the (mode, workload, qps) point, from 0
    conversation: int  # conversation index within the run, from 0
    conversation_id: str  # the X-Session-ID the client sent
    turn: int  # 1-based turn index
    sent: bool  # False for turns never sent because an earlier turn failed or the drain ended
    ok: bool
    status: int | None  # HTTP status, None when no response came
    error: str | None
    scheduled_s: float  # when the turn was due, s since the run's start
    sent_s: float | None  # when it was actually sent, s since the run's start
    schedule_lag_ms: float | None  # sent - scheduled
    ttft_ms: float | None
    e2e_ms: float | None
    tpot_ms: float | None
    itl_ms: list[float] = field(default_factory=list)  # gaps between content chunks
    prompt_tokens: int | None = None  # from usage
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens
    output_tokens: int | None = None  # usage.completion_tokens
    route: str | None = None  # x-ppd-route
    upstream: str | None = None  # x-ppd-upstream
    prefill_ms: float | None = None  # x-ppd-prefill-ms
    in_warmup: bool = False  # sent during --warmup-s: recorded, excluded from summaries
    cached_share: float | None = None  # cached_tokens / prompt_tokens
    trace_request: int | None = None  # a trace replay's turn: the request's index in the trace file
    history_tokens: int | None = None  # a trace turn: prompt tokens repeating its conversation's history
    prefill_cached_tokens: int | None = None  # a P -> D route: P's cached tokens (x-ppd-prefill-cached-...)


@dataclass
class RunInfo:
    """One measured run of one (mode, workload, qps) point."""

    mode: str
    workload: str
    qps: float
    run: int
    started_utc: str
    duration_s: float  # arrival window
    elapsed_s: float  # arrival window + drain
    num_conversations: int
    offered_rate: float  # conversations/s scheduled
    achieved_rate: float  # conversations/s actually started
    seed: int
    connections_opened: int | None = None  # TCP connections the client opened during the run


def row_from_dict(data: dict[str, Any]) -> TurnRow:
    """A TurnRow from one JSONL line's dict; unknown keys are an error."""
    names = {f.name for f in fields(TurnRow)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown row keys {sorted(unknown)}; known: {sorted(names)}")
    return TurnRow(**data)


def row_to_json(row: TurnRow) -> str:
    """One JSONL line (no newline) for a row."""
    return json.dumps(asdict(row), separators=(",", ":"))


NO_ITL_TAG = ".rows-no-itl"  # committed rows without their ITL lists: <stem>.rows-no-itl.jsonl[.gz]


def rows_path(path: Path) -> Path:
    """The rows file as stored: `path`, `path`.gz, or its copy without ITL lists
    (`<stem>.rows-no-itl.jsonl[.gz]`, committed sets that keep the repository small); `path` itself
    when none of them exists."""
    stem = path.name.removesuffix(".jsonl")
    for name in (path.name, path.name + ".gz", stem + NO_ITL_TAG + ".jsonl", stem + NO_ITL_TAG + ".jsonl.gz"):
        candidate = path.with_name(name)
        if candidate.exists():
            return candidate
    return path


def read_rows(path: Path) -> list[TurnRow]:
    """All rows of a JSONL rows file (or its .gz, or its tagged copy: rows_path); a torn last line (from
    a crash) is skipped."""
    rows = []
    path = rows_path(path)
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = data.decode().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(row_from_dict(json.loads(line)))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON line") from None
    return rows


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes files private; results are meant to be shared
        with os.fdopen(fd, "w") as tmp:
            json.dump(data, tmp, indent=1)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_result(path: Path) -> tuple[dict[str, Any], list[TurnRow]]:
    """A result JSON and its rows."""
    meta = json.loads(path.read_text())
    if meta.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {meta.get('schema')!r}, expected {SCHEMA!r}")
    rows = read_rows(path.parent / meta["rows_file"])
    return meta, rows
