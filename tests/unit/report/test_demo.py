"""`ppd demo` options become a DemoConfig; bad values are usage errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.report.demo import FULL_PLAN, MODES, QUICK_PLAN, add_arguments, build_config, time_scale_note


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_full_and_quick_plans() -> None:
    full = build_config(_parse())
    assert (full.out_dir, full.plan, full.time_scale) == (Path("demo-out"), FULL_PLAN, 0.1)
    assert sorted(full.plan.qps_by_workload) == ["W1", "W2", "W3", "W4"]
    assert full.plan.num_runs == 12 * len(MODES)
    quick = build_config(_parse("--quick", "--out", "x", "--runs", "2"))
    assert quick.plan.qps_by_workload == QUICK_PLAN.qps_by_workload
    assert (quick.out_dir, quick.plan.runs, quick.plan.num_runs) == (Path("x"), 2, 24)


@pytest.mark.parametrize("argv", [("--runs", "0"), ("--time-scale", "0"), ("--time-scale", "-1")])
def test_bad_values_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        build_config(_parse(*argv))


def test_time_scale_note_states_the_units() -> None:
    note = time_scale_note(0.25)
    assert "time scale 0.25" in note and "~0.25x" in note and "~4x" in note
