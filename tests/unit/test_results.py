"""The bench -> report file contract: rows round-trip, torn lines, atomic JSON."""

from __future__ import annotations

import gzip
import json
import stat
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from ppd.results import (
    SCHEMA,
    TurnRow,
    load_result,
    read_rows,
    row_from_dict,
    row_to_json,
    rows_path,
    write_json_atomic,
)


def make_row(turn: int) -> TurnRow:
    return TurnRow(
        mode="ppd",
        workload="W1",
        qps=2.0,
        run=0,
        conversation=3,
        conversation_id="c3",
        turn=turn,
        sent=True,
        ok=True,
        status=200,
        error=None,
        scheduled_s=1.0,
        sent_s=1.001,
        schedule_lag_ms=1.0,
        ttft_ms=20.0,
        e2e_ms=200.0,
        tpot_ms=7.0,
        itl_ms=[7.0, 7.1],
        prompt_tokens=512,
        cached_tokens=512,
        output_tokens=256,
        route="ppd-direct",
        upstream="http://d",
        prefill_ms=None,
    )


def test_rows_round_trip_through_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [make_row(1), make_row(2)]
    path.write_text("".join(row_to_json(row) + "\n" for row in rows))
    assert read_rows(path) == rows


def test_rows_stored_compressed_are_read_under_the_plain_name(tmp_path: Path) -> None:
    rows = [make_row(1), make_row(2)]
    (tmp_path / "rows.jsonl.gz").write_bytes(
        gzip.compress("".join(row_to_json(r) + "\n" for r in rows).encode())
    )
    assert read_rows(tmp_path / "rows.jsonl") == rows
    (tmp_path / "rows.jsonl").write_text(
        row_to_json(make_row(3)) + "\n"
    )  # the plain file wins when both exist
    assert read_rows(tmp_path / "rows.jsonl") == [make_row(3)]


def test_rows_stored_without_their_itl_lists_are_read_under_the_plain_name(tmp_path: Path) -> None:
    rows = [replace(make_row(1), itl_ms=[]), replace(make_row(2), itl_ms=[])]
    (tmp_path / "set.rows-no-itl.jsonl.gz").write_bytes(
        gzip.compress("".join(row_to_json(r) + "\n" for r in rows).encode())
    )
    assert rows_path(tmp_path / "set.jsonl") == tmp_path / "set.rows-no-itl.jsonl.gz"
    assert read_rows(tmp_path / "set.jsonl") == rows
    (tmp_path / "other.b.jsonl").write_text("")  # another set named <stem>.<x> is not this set's rows
    assert rows_path(tmp_path / "other.jsonl") == tmp_path / "other.jsonl"
    odd = tmp_path / "w[1].rows-no-itl.jsonl.gz"  # glob metacharacters in a set's name
    odd.write_bytes(gzip.compress(row_to_json(make_row(1)).encode()))
    assert rows_path(tmp_path / "w[1].jsonl") == odd


def test_a_torn_last_line_is_skipped_but_a_torn_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    good = row_to_json(make_row(1))
    path.write_text(good + "\n" + good[:40])
    assert read_rows(path) == [make_row(1)]
    path.write_text(good[:40] + "\n" + good + "\n")
    with pytest.raises(ValueError, match=r"rows\.jsonl:1"):
        read_rows(path)


def test_unknown_row_keys_are_rejected() -> None:
    data = asdict(make_row(1)) | {"surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        row_from_dict(data)


def test_atomic_json_is_readable_by_others_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "out" / "result.json"
    write_json_atomic(path, {"schema": SCHEMA, "rows_file": "result.jsonl"})
    (tmp_path / "out" / "result.jsonl").write_text(row_to_json(make_row(1)) + "\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.json", "result.jsonl"]
    meta, rows = load_result(path)
    assert meta["schema"] == SCHEMA and rows == [make_row(1)]


def test_load_result_refuses_another_schema(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema": "other/9", "rows_file": "x"}))
    with pytest.raises(ValueError, match="other/9"):
        load_result(path)
