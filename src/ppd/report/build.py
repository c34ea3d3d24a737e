"""Build a whole report directory from result files: merged JSON, crossovers, plots, summary.md."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ppd import __version__
from ppd.report.bootstrap import BootstrapConfig
from ppd.report.crossover import analyze
from ppd.report.inputs import ResultFile
from ppd.report.merge import MergedPoint, MergedResults, merge
from ppd.report.summary import render_summary
from ppd.results import write_json_atomic

STATISTICS = (
    "points with rows (ci95_method 'bootstrap'): latencies, success rate and SLO attainment pooled "
    "over the point's runs, 95% percentile interval of a bootstrap that resamples runs, then whole "
    "conversations within them (paired across modes run on the same schedules), p99 null below 100 "
    "samples; std is then the bootstrap standard error. Other metrics, and points without rows "
    "(ci95_method 't'): mean over runs, 95% Student t interval (t(0.975, runs-1) * std / sqrt(runs)), "
    "null with one run; null metric when any run had it null. Method: docs/report.md"
)
MERGED_FILE = "merged_results.json"
CROSSOVER_FILE = "qps_crossover_analysis.json"
SUMMARY_FILE = "summary.md"


@dataclass(frozen=True)
class Report:
    """A written report: the merged data and where each output file is."""

    merged: MergedResults
    crossover: dict[str, Any]
    out_dir: Path
    merged_json: Path
    crossover_json: Path
    summary_md: Path
    plots: list[Path]


def build_report(
    inputs: list[ResultFile],
    out_dir: Path,
    notes: Sequence[str] = (),
    bootstrap: BootstrapConfig | None = None,
) -> Report:
    """Merge the inputs and write every report file into out_dir (created if needed).

    `notes` are printed near the top of summary.md (e.g. the demo's time scale); `bootstrap` sets
    the resamples and seed of the intervals (default: BootstrapConfig()).
    """
    from ppd.report.plots import write_plots  # matplotlib is slow to import; only reports need it

    out_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = bootstrap or BootstrapConfig()
    merged = merge(inputs, bootstrap)
    if not merged.points:
        raise ValueError("the result files hold no summaries (no run has completed yet)")
    crossover = analyze(merged)
    merged_json = out_dir / MERGED_FILE
    write_json_atomic(merged_json, merged_to_json(merged, out_dir, bootstrap))
    crossover_json = out_dir / CROSSOVER_FILE
    write_json_atomic(crossover_json, crossover)
    summary_md = out_dir / SUMMARY_FILE
    summary_md.write_text(render_summary(merged, crossover, notes))
    plots = write_plots(merged, out_dir)
    return Report(merged, crossover, out_dir, merged_json, crossover_json, summary_md, plots)


def merged_to_json(
    merged: MergedResults, out_dir: Path | None = None, bootstrap: BootstrapConfig | None = None
) -> dict[str, Any]:
    """The merged results file: inputs' provenance plus one entry per merged point.

    Input paths are written relative to out_dir when given, so a committed report regenerates
    byte for byte from any checkout.
    """
    return {
        "schema": "ppd.report/1",
        "tool": {"name": "ppd", "version": __version__},
        "statistics": STATISTICS,
        "bootstrap": asdict(bootstrap or BootstrapConfig()),
        "modes": merged.modes(),
        "workloads": merged.workloads(),
        "inputs": [_input_json(result, out_dir) for result in merged.inputs],
        "points": [_point_json(merged.points[key]) for key in sorted(merged.points)],
    }


def _input_json(result: ResultFile, out_dir: Path | None) -> dict[str, Any]:
    meta = result.meta
    keep = (
        "name",
        "created_utc",
        "updated_utc",
        "tool",
        "engines",
        "topology",
        "config",
        "seed",
        "rows_file",
    )
    return {
        "path": _path_label(result.path, out_dir),
        **{key: meta.get(key) for key in keep},
        "num_runs": len(meta.get("runs", [])),
        "num_summaries_used": len(result.summaries),
    }


def _path_label(path: Path, out_dir: Path | None) -> str:
    if out_dir is None:
        return str(path)
    return os.path.relpath(path.resolve(), out_dir.resolve())


def _point_json(point: MergedPoint) -> dict[str, Any]:
    return {
        "workload": point.key.workload,
        "mode": point.key.mode,
        "qps": point.key.qps,
        "turn_group": point.key.turn_group,
        "num_runs": point.num_runs,
        "runs": point.run_ids,
        "from_rows": point.from_rows,
        "metrics": {
            name: None if estimate is None else estimate.to_json()
            for name, estimate in sorted(point.metrics.items())
        },
        "null_runs": {name: count for name, count in sorted(point.num_null_runs.items()) if count},
        "totals": dict(sorted(point.totals.items())),
    }
