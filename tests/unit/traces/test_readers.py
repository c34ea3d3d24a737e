"""The Mooncake and Azure readers: fields, time origin, compressed files, and clear errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.traces.azure import read_azure
from ppd.traces.formats import is_trace_spec, read_trace_spec
from ppd.traces.mooncake import read_mooncake

EXCERPT = Path(__file__).parents[3] / "src/ppd/traces/data/mooncake-conversation-excerpt.jsonl"
FULL_TRACE = Path(__file__).parents[3] / "data/traces/mooncake-conversation_trace.jsonl.gz"


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_mooncake_reads_requests_relative_to_the_first(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"timestamp": 1000, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]},
            {"timestamp": 3500, "input_length": 512, "output_length": 7, "hash_ids": [0]},
        ],
    )
    trace = read_mooncake(path)
    assert trace.name == "mooncake-t" and trace.block_size == 512 and trace.format == "mooncake"
    assert [
        (r.index, r.arrival_s, r.num_input_tokens, r.num_output_tokens, r.block_ids) for r in trace.requests
    ] == [
        (0, 0.0, 600, 5, (0, 1)),
        (1, 2.5, 512, 7, (0,)),
    ]
    assert trace.duration_s == 2.5


def test_mooncake_reads_gzip(tmp_path: Path) -> None:
    line = json.dumps({"timestamp": 0, "input_length": 3, "output_length": 1, "hash_ids": [9]}) + "\n"
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(gzip.compress(line.encode()))
    trace = read_mooncake(path)
    assert trace.name == "mooncake-t" and trace.requests[0].block_ids == (9,)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"timestamp": -1, "input_length": 3, "output_length": 1, "hash_ids": [0]}, "timestamp"),
        ({"timestamp": 0, "input_length": 0, "output_length": 1, "hash_ids": []}, "input_length"),
        ({"timestamp": 0, "input_length": 3, "output_length": True, "hash_ids": [0]}, "output_length"),
        ({"timestamp": 0, "input_length": 3, "output_length": 1, "hash_ids": ["a"]}, "hash_ids"),
        ({"timestamp": 0, "input_length": 1025, "output_length": 1, "hash_ids": [0, 1]}, "expected one per"),
    ],
)
def test_mooncake_rejects_bad_lines_with_their_number(
    tmp_path: Path, record: dict[str, object], message: str
) -> None:
    good = {"timestamp": 0, "input_length": 3, "output_length": 1, "hash_ids": [0]}
    path = _write_jsonl(tmp_path / "t.jsonl", [good, record])
    with pytest.raises(UsageError, match=rf"t\.jsonl:2: .*{message}"):
        read_mooncake(path)


def test_mooncake_rejects_non_json_decreasing_times_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    with pytest.raises(UsageError, match=r"bad\.jsonl:1: not JSON"):
        read_mooncake(tmp_path / "bad.jsonl")
    later, earlier = (
        {"timestamp": t, "input_length": 3, "output_length": 1, "hash_ids": [0]} for t in (5, 1)
    )
    with pytest.raises(UsageError, match="must not decrease"):
        read_mooncake(_write_jsonl(tmp_path / "order.jsonl", [later, earlier]))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UsageError, match="no requests"):
        read_mooncake(tmp_path / "empty.jsonl")


def test_azure_reads_seven_digit_timestamps_and_sorts(tmp_path: Path) -> None:
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
    )
    trace = read_azure(path)
    assert trace.name == "AzureLLMInferenceTrace_conv" and trace.block_size == 0
    assert [(r.num_input_tokens, r.num_output_tokens, r.block_ids) for r in trace.requests] == [
        (374, 44, ()),
        (396, 109, ()),
    ]
    assert trace.requests[1].arrival_s == pytest.approx(4.314579, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A,B,C\n", "expected the header"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16,5,5\n", "TIMESTAMP"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:50,x,5\n", "integers"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:50,5,0\n", ">= 1"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no requests"),
    ],
)
def test_azure_rejects_bad_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(UsageError, match=message):
        read_azure(tmp_path / "a.csv")


def test_trace_specs() -> None:
    assert is_trace_spec("mooncake:x.jsonl") and is_trace_spec("Azure:x.csv") and not is_trace_spec("W1")
    with pytest.raises(UsageError, match="no such file"):
        read_trace_spec("mooncake:/nonexistent.jsonl")
    linked = read_trace_spec(f"mooncake:{EXCERPT}")
    assert len(linked.trace.requests) == 82 and linked.links.num_linked == 29


def test_the_shipped_full_trace_is_the_release() -> None:
    """The figures the docs quote: 12,031 requests, 4,658 (38.7%) linked by the prefix rule."""
    linked = read_trace_spec(f"mooncake:{FULL_TRACE}")
    assert len(linked.trace.requests) == 12_031
    assert linked.links.common_head == (0,)
    assert linked.links.num_linked == 4_658
    assert linked.links.num_conversations == 12_031 - 4_658
