"""Reading rows for the bootstrap: tolerant of new fields, found under their stored names, and
only the runs the summaries describe."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from fixtures.results.synthetic import result_file, run_rows
from ppd.report.bootstrap import BootstrapConfig
from ppd.report.inputs import read_result_file
from ppd.report.merge import merge, normalize_qps
from ppd.report.resampled import collect_runs, plan_points
from ppd.report.rows import find_rows_file, read_run_rows

FAST = BootstrapConfig(num_resamples=200)


def _one_point(directory: Path) -> Path:
    return result_file(
        directory, "a", ("ppd",), workloads=("W1",), qps_values=(2.0,), offsets=(0.0,), rows=True
    )


def test_rows_with_unknown_fields_and_sparse_conversations_still_read(tmp_path: Path) -> None:
    source = _one_point(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    for row in rows:
        row["cached_share"] = 0.5  # a field a newer bench writes
        row["conversation"] *= 1000  # trace replays may number conversations sparsely
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    merged = merge([read_result_file(source)], FAST)
    point = merged.point("W1", "ppd", 2.0, "2+")
    assert point is not None and point.from_rows
    estimate = point.metric("ttft_ms.mean")
    assert estimate is not None and estimate.num_conversations == 60 and estimate.ci_low is not None
    (sample,) = plan_points(collect_runs([read_result_file(source)], normalize_qps), FAST).values()
    assert sample.plan.run_offsets == (0, 60)  # 60 columns, not 59,001


def test_rows_are_found_compressed_or_under_a_tagged_name(tmp_path: Path) -> None:
    source = _one_point(tmp_path)
    plain = tmp_path / "a.jsonl"
    data = plain.read_bytes()
    result = read_result_file(source)
    assert find_rows_file(result) == plain
    plain.unlink()
    tagged = tmp_path / "a.rows-no-itl.jsonl.gz"
    tagged.write_bytes(gzip.compress(data))
    assert find_rows_file(result) == tagged
    assert len(read_run_rows(result, normalize_qps)) == 1
    tagged.unlink()
    assert find_rows_file(result) is None
    point = merge([result], FAST).point("W1", "ppd", 2.0, "2+")
    assert point is not None and not point.from_rows  # back to the summaries


def test_only_summarised_runs_and_no_warm_up_turns_are_read(tmp_path: Path) -> None:
    source = _one_point(tmp_path)
    extra = run_rows("ppd", "W1", 2.0, 7, 100.0)  # an interrupted run: rows, no summary
    warm = dict(extra[0], run=0, conversation=999, in_warmup=True, ttft_ms=1e9)
    with (tmp_path / "a.jsonl").open("a") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in [*extra, warm])
    runs = read_run_rows(read_result_file(source), normalize_qps)
    assert list(runs) == [("ppd", "W1", 2.0, 0)]
    assert 999 not in runs[("ppd", "W1", 2.0, 0)].conversation


def test_a_torn_last_line_is_skipped_and_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    source = _one_point(tmp_path)
    rows_path = tmp_path / "a.jsonl"
    rows_path.write_text(rows_path.read_text() + '{"mode": "pp')
    assert read_run_rows(read_result_file(source), normalize_qps)
    rows_path.write_text('{"mode"\n' + rows_path.read_text())
    with pytest.raises(ValueError, match=r"a\.jsonl:1: not a JSON line"):
        read_run_rows(read_result_file(source), normalize_qps)


def test_cache_hit_rate_pools_cached_over_prompt_tokens_with_p_counting_on_p_to_d(tmp_path: Path) -> None:
    source = _one_point(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    for index, row in enumerate(rows):
        row["prompt_tokens"], row["cached_tokens"] = 100, 100  # D's count after a pull
        row["prefill_cached_tokens"] = 25 if index % 2 else None  # P's own on P -> D routes
        if not index % 2:
            row["cached_tokens"] = 75  # served from the holder's cache
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    merged = merge([read_result_file(source)], FAST)
    point = merged.point("W1", "ppd", 2.0, "all")
    assert point is not None
    estimate = point.metric("cache_hit_rate")
    assert estimate is not None and estimate.mean == pytest.approx(0.5, abs=0.05)
    assert estimate.ci_low is not None and estimate.ci_low <= estimate.mean <= (estimate.ci_high or 1.0)


def test_itl_lists_are_skipped_wherever_they_sit_in_a_row(tmp_path: Path) -> None:
    source = _one_point(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    lines = []
    for index, row in enumerate(rows):
        gaps = {"itl_ms": [1.5, 2.25]}
        items = list(row.items())
        position = (0, len(items) // 2, len(items))[index % 3]  # first, middle, last
        placed = dict(items[:position] + list(gaps.items()) + items[position:])
        lines.append(json.dumps(placed, separators=(",", ":") if index % 2 else (", ", ": ")))
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    run = read_run_rows(read_result_file(source), normalize_qps)[("ppd", "W1", 2.0, 0)]
    assert run.turn.size == len(rows)
    assert float(run.ttft_ms[0]) == rows[0]["ttft_ms"]
