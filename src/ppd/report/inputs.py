"""Find and read the result files a report is built from (schema in ppd.results).

Only the result JSON is read: its summaries already hold every per-run metric the report needs,
so a report over many long runs does not parse millions of rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppd.results import SCHEMA

REQUIRED_SUMMARY_KEYS = ("mode", "workload", "qps", "run", "turn_group")


@dataclass(frozen=True)
class ResultFile:
    """One bench invocation's result JSON, as read from disk."""

    path: Path
    meta: dict[str, Any]  # the whole JSON (config, versions, topology, runs, summaries)

    @property
    def summaries(self) -> list[dict[str, Any]]:
        """Per mode x workload x qps x run x turn group summary dicts."""
        return list(self.meta.get("summaries", []))

    @property
    def updated_utc(self) -> str:
        """ISO time of the last write; orders files for --auto."""
        return str(self.meta.get("updated_utc") or self.meta.get("created_utc") or "")

    def mode_workloads(self) -> set[tuple[str, str]]:
        """The (mode, workload) pairs this file has summaries for."""
        return {(str(s["mode"]), str(s["workload"])) for s in self.summaries}


def read_result_file(path: Path) -> ResultFile:
    """Read and check one result JSON; ValueError says what is wrong with it."""
    try:
        meta = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: schema {found!r}, expected {SCHEMA!r}")
    for number, summary in enumerate(meta.get("summaries", [])):
        missing = [key for key in REQUIRED_SUMMARY_KEYS if key not in summary]
        if missing:
            raise ValueError(f"{path}: summaries[{number}] lacks {missing}")
    return ResultFile(path=path, meta=meta)


def is_result_json(path: Path) -> bool:
    """True for a JSON file whose schema is the bench result schema (cheap check on the head)."""
    if path.suffix != ".json" or not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(4096)
    return b'"schema"' in head and SCHEMA.encode() in head


def result_files_in(directory: Path) -> list[Path]:
    """Every result JSON directly inside a directory, sorted by name."""
    return sorted(p for p in directory.glob("*.json") if is_result_json(p))


def latest_per_mode_workload(files: list[ResultFile]) -> list[ResultFile]:
    """For each (mode, workload), only the newest file that measured it (`--auto`).

    A file is kept with just the summaries of the pairs it is newest for, so an old run of a pair
    never mixes into a newer one; pairs measured by different invocations still come together.
    """
    newest: dict[tuple[str, str], ResultFile] = {}
    for result in sorted(files, key=lambda f: (f.updated_utc, str(f.path))):
        for pair in result.mode_workloads():
            newest[pair] = result
    kept: list[ResultFile] = []
    for result in files:
        pairs = {pair for pair, owner in newest.items() if owner is result}
        if pairs:
            kept.append(_only_pairs(result, pairs))
    return kept


def _only_pairs(result: ResultFile, pairs: set[tuple[str, str]]) -> ResultFile:
    summaries = [s for s in result.summaries if (str(s["mode"]), str(s["workload"])) in pairs]
    return ResultFile(path=result.path, meta={**result.meta, "summaries": summaries})


def collect_inputs(paths: list[Path], auto: bool) -> list[ResultFile]:
    """Read the result files named (directories: every result JSON inside); `auto` keeps the newest."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            found.update(dict.fromkeys(p.resolve() for p in result_files_in(path)))
        elif path.exists():
            found[path.resolve()] = None
        else:
            raise ValueError(f"{path}: no such file or directory")
    if not found:
        raise ValueError(f"no result files ({SCHEMA}) in {', '.join(str(p) for p in paths)}")
    files = [read_result_file(path) for path in found]
    return latest_per_mode_workload(files) if auto else files
