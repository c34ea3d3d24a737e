"""Finding and checking result files; --auto keeps the newest per (mode, workload)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.results.synthetic import result_file
from ppd.report.inputs import collect_inputs, read_result_file, result_files_in


def test_a_directory_yields_every_result_json_and_nothing_else(tmp_path: Path) -> None:
    result_file(tmp_path, "a", ("pd",))
    result_file(tmp_path, "b", ("ppd",))
    (tmp_path / "merged_results.json").write_text(json.dumps({"schema": "ppd.report/1"}))
    assert [p.name for p in result_files_in(tmp_path)] == ["a.json", "b.json"]
    assert len(collect_inputs([tmp_path], auto=False)) == 2


def test_auto_keeps_only_the_newest_file_for_each_mode_and_workload(tmp_path: Path) -> None:
    result_file(tmp_path, "old", ("pd", "ppd"), updated_utc="2025-01-01T00:00:00Z")
    result_file(tmp_path, "new", ("ppd",), workloads=("W1",), updated_utc="2025-02-01T00:00:00Z")
    kept = {r.path.name: r for r in collect_inputs([tmp_path], auto=True)}
    assert kept["new.json"].mode_workloads() == {("ppd", "W1")}
    assert kept["old.json"].mode_workloads() == {("pd", "W1"), ("pd", "W2"), ("ppd", "W2")}


def test_the_same_file_named_twice_is_read_once(tmp_path: Path) -> None:
    path = result_file(tmp_path, "a", ("pd",))
    assert len(collect_inputs([path, tmp_path, tmp_path / ".." / tmp_path.name / "a.json"], auto=False)) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"schema": "other/1"}), "schema 'other/1'"),
        (json.dumps({"schema": "ppd.result/1", "summaries": [{"mode": "pd"}]}), "lacks"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_result_file(path)


def test_missing_inputs_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        collect_inputs([tmp_path / "nope.json"], auto=False)
    with pytest.raises(ValueError, match="no result files"):
        collect_inputs([tmp_path], auto=True)
