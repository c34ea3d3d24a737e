"""How long `ppd report` takes on the committed 2x H100 result sets, with and without the bootstrap.

Runs `python -m ppd report` as a user would (a fresh process: interpreter start, imports, reading,
statistics, six plots) on results/h100x2-vllm0.25.1-nixl/h100-w{1..4}.json, into a temporary
directory, `--repeats` times, and reports the median wall time. Side by side, the same command on
copies of the four JSONs without their rows beside them: the summaries-only report (Student t
across runs), i.e. everything but reading the rows and the conversation bootstrap. Timing-sensitive:
run it under `flock /work/cpu.lock` (or on an otherwise idle machine).

    python benchmarks/report_speed.py [--repeats 3] [--resamples 2000]

Ends with

    report_speed_baseline summaries_only wall_s=<float>
    report_speed rows=<int> wall_s=<float>
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ppd.results import read_rows

ROOT = Path(__file__).resolve().parents[1]
SET_DIR = ROOT / "results" / "h100x2-vllm0.25.1-nixl"
SETS = [SET_DIR / f"h100-w{n}.json" for n in (1, 2, 3, 4)]
GOAL_S = 30.0


def count_rows(json_path: Path) -> int:
    """Rows the report reads for one set (its rows file as stored: results.rows_path)."""
    return len(read_rows(json_path.parent / json.loads(json_path.read_text())["rows_file"]))


def timed_report(inputs: list[Path], out_dir: Path, resamples: int) -> float:
    """Wall seconds of one `python -m ppd report` process."""
    command = [sys.executable, "-m", "ppd", "report", *map(str, inputs), "--out", str(out_dir)]
    command += ["--resamples", str(resamples)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant; the median is kept")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    args = parser.parse_args()
    num_rows = sum(count_rows(path) for path in SETS)
    with tempfile.TemporaryDirectory(prefix="report-speed-") as scratch:
        bare = Path(scratch) / "summaries-only"
        bare.mkdir()
        bare_inputs = [Path(shutil.copy(path, bare / path.name)) for path in SETS]
        baseline, full = [], []
        for repeat in range(args.repeats):  # interleaved, so drifting machine load hits both alike
            baseline.append(timed_report(bare_inputs, Path(scratch) / f"base-{repeat}", args.resamples))
            full.append(timed_report(SETS, Path(scratch) / f"full-{repeat}", args.resamples))
            print(f"repeat {repeat + 1}: summaries only {baseline[-1]:.1f} s, with rows {full[-1]:.1f} s")
    wall_s = statistics.median(full)
    verdict = "within" if wall_s <= GOAL_S else "over"
    print(f"{num_rows} rows, {args.resamples} resamples; goal ≤ {GOAL_S:g} s: {verdict}")
    print(f"report_speed_baseline summaries_only wall_s={statistics.median(baseline):.2f}")
    print(f"report_speed rows={num_rows} wall_s={wall_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
