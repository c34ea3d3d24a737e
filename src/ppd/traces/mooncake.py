"""The Mooncake FAST'25 trace format (kvcache-ai/Mooncake, FAST25-release/traces/*.jsonl).

One JSON object per line: `timestamp` (ms since the trace's start), `input_length` and
`output_length` (tokens), `hash_ids` (one id per 512-token block of the prompt; equal ids are
identical blocks, so a request repeating an earlier request's leading ids can reuse its prefix cache).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from ppd.errors import UsageError
from ppd.traces.files import read_text, trace_name
from ppd.traces.records import Trace, TraceRequest

BLOCK_SIZE = 512  # prompt tokens per hash id, from the release's README


def read_mooncake(path: Path) -> Trace:
    """Every request of a Mooncake JSONL file (or .jsonl.gz), in file order; UsageError on a bad line."""
    requests: list[TraceRequest] = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            requests.append(_request(len(requests), _json(line, path, number), path, number))
    if not requests:
        raise UsageError(f"trace {path}: no requests")
    first_s = requests[0].arrival_s
    if any(later.arrival_s < earlier.arrival_s for earlier, later in itertools.pairwise(requests)):
        raise UsageError(f"trace {path}: timestamps must not decrease")
    requests = [_shifted(request, first_s) for request in requests]
    return Trace(trace_name("mooncake", path), str(path), "mooncake", BLOCK_SIZE, tuple(requests))


def _json(line: str, path: Path, number: int) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UsageError(f"trace {path}:{number}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise UsageError(f"trace {path}:{number}: expected a JSON object")
    return data


def _request(index: int, data: dict[str, Any], path: Path, number: int) -> TraceRequest:
    where = f"trace {path}:{number}"
    timestamp_ms = data.get("timestamp")
    if not isinstance(timestamp_ms, int | float) or isinstance(timestamp_ms, bool) or timestamp_ms < 0:
        raise UsageError(f"{where}: timestamp must be a number of ms >= 0")
    num_input, num_output = _positive_int(data.get("input_length")), _positive_int(data.get("output_length"))
    if num_input is None or num_output is None:
        raise UsageError(f"{where}: input_length and output_length must be integers >= 1")
    block_ids = data.get("hash_ids")
    if not isinstance(block_ids, list) or not all(_is_id(block_id) for block_id in block_ids):
        raise UsageError(f"{where}: hash_ids must be a list of integers >= 0")
    expected = -(-num_input // BLOCK_SIZE)
    if len(block_ids) != expected:
        raise UsageError(
            f"{where}: {len(block_ids)} hash_ids for {num_input} input tokens "
            f"(expected one per {BLOCK_SIZE}-token block: {expected})"
        )
    return TraceRequest(index, timestamp_ms / 1000.0, num_input, num_output, tuple(block_ids))


def _shifted(request: TraceRequest, first_s: float) -> TraceRequest:
    return TraceRequest(
        request.index,
        request.arrival_s - first_s,
        request.num_input_tokens,
        request.num_output_tokens,
        request.block_ids,
    )


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None
