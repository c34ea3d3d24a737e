"""The Azure LLM inference trace format (Azure/AzurePublicDataset, data/AzureLLMInferenceTrace_*.csv).

CSV with a header `TIMESTAMP,ContextTokens,GeneratedTokens`: the arrival time as
`YYYY-MM-DD HH:MM:SS.fffffff` (UTC, up to 7 fractional digits), prompt tokens and output tokens.
There is no prefix structure: every request's prompt is its own (no block ids, no conversations).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from ppd.errors import UsageError
from ppd.traces.files import read_text, trace_name
from ppd.traces.records import Trace, TraceRequest

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def read_azure(path: Path) -> Trace:
    """Every request of an Azure CSV (or .csv.gz), in file order; UsageError on a bad row."""
    reader = csv.reader(io.StringIO(read_text(path)))
    header = next(reader, None)
    if header is None or tuple(column.strip() for column in header[:3]) != COLUMNS:
        raise UsageError(f"trace {path}: expected the header {','.join(COLUMNS)}")
    parsed: list[tuple[float, int, int]] = []
    for number, fields in enumerate(reader, start=2):
        if fields:
            parsed.append(_row(fields, f"trace {path}:{number}"))
    if not parsed:
        raise UsageError(f"trace {path}: no requests")
    parsed.sort(key=lambda row: row[0])  # stable: rows with one timestamp keep their order
    first_s = parsed[0][0]
    requests = tuple(
        TraceRequest(index, at_s - first_s, num_input, num_output)
        for index, (at_s, num_input, num_output) in enumerate(parsed)
    )
    return Trace(trace_name("azure", path), str(path), "azure", 0, requests)


def _row(fields: list[str], where: str) -> tuple[float, int, int]:
    if len(fields) < 3:
        raise UsageError(f"{where}: expected 3 columns ({','.join(COLUMNS)})")
    try:
        num_input, num_output = int(fields[1]), int(fields[2])
    except ValueError:
        raise UsageError(f"{where}: ContextTokens and GeneratedTokens must be integers") from None
    if num_input < 1 or num_output < 1:
        raise UsageError(f"{where}: ContextTokens and GeneratedTokens must be >= 1")
    return parse_timestamp_s(fields[0], where), num_input, num_output


def parse_timestamp_s(text: str, where: str) -> float:
    """`2023-11-16 18:15:46.6805900` -> POSIX seconds; the 7th fractional digit is kept."""
    whole, _, fraction = text.strip().partition(".")
    try:
        stamp = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        fraction_s = float(f"0.{fraction}") if fraction else 0.0
    except ValueError:
        raise UsageError(f"{where}: TIMESTAMP {text!r} is not YYYY-MM-DD HH:MM:SS[.fraction]") from None
    return stamp.timestamp() + fraction_s
