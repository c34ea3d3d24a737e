"""`ppd report RESULT... [--auto] [--out DIR] [--resamples N] [--seed N]`: merge result files into
plots, tables and JSON."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ppd.errors import UsageError
from ppd.report.bootstrap import MIN_RESAMPLES, BootstrapConfig

DEFAULT_RESULTS_DIR = Path("results")


@dataclass(frozen=True)
class ReportConfig:
    """What to read and where to write."""

    inputs: list[Path]  # result JSON files or directories of them
    auto: bool  # keep only the newest file per (mode, workload)
    out_dir: Path
    bootstrap: BootstrapConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ppd report`."""
    parser.add_argument(
        "results", nargs="*", type=Path, metavar="RESULT",
        help="result JSON files or directories holding them (default with --auto: results/)",
    )  # fmt: skip
    parser.add_argument(
        "--auto", action="store_true",
        help="for each (mode, workload), use only the newest result file that measured it",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR",
        help="output directory (default: report/ beside the first input)",
    )  # fmt: skip
    parser.add_argument(
        "--resamples", type=int, default=BootstrapConfig.num_resamples, metavar="N",
        help=f"bootstrap resamples per interval (default %(default)s, at least {MIN_RESAMPLES})",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=BootstrapConfig.seed, metavar="N",
        help="bootstrap seed: the same inputs and seed give the same intervals (default 0)",
    )  # fmt: skip


def build_config(args: argparse.Namespace) -> ReportConfig:
    """A ReportConfig from parsed arguments; UsageError when there is nothing to read."""
    inputs = list(args.results)
    if not inputs:
        if not args.auto:
            raise UsageError("give result files or directories, or --auto to read the newest in results/")
        inputs = [DEFAULT_RESULTS_DIR]
    out_dir = args.out if args.out is not None else default_out_dir(inputs[0])
    try:
        bootstrap = BootstrapConfig(num_resamples=args.resamples, seed=args.seed)
    except ValueError as exc:
        raise UsageError(f"--resamples: {exc}") from None
    return ReportConfig(inputs=inputs, auto=bool(args.auto), out_dir=out_dir, bootstrap=bootstrap)


def default_out_dir(first_input: Path) -> Path:
    """report/ inside the input directory, or beside the input file."""
    return (first_input if first_input.is_dir() else first_input.parent) / "report"


def run(args: argparse.Namespace) -> int:
    """Build the report and say where its files are."""
    from ppd.report.build import build_report
    from ppd.report.inputs import collect_inputs

    config = build_config(args)
    try:
        inputs = collect_inputs(config.inputs, config.auto)
        files = build_report(inputs, config.out_dir, bootstrap=config.bootstrap)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"read {len(inputs)} result file(s): " + ", ".join(str(r.path) for r in inputs))
    for path in [files.summary_md, files.merged_json, files.crossover_json, *files.plots]:
        print(f"wrote {path}")
    return 0
