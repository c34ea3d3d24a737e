"""`ppd down`: stop exactly what `ppd up` started (the pids in its state file), never by name."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppd.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `ppd down`."""
    parser.add_argument(
        "--state", type=Path, default=Path(".ppd/state.json"), help="state file `ppd up` wrote"
    )
    parser.add_argument("--timeout-s", type=float, default=30.0, help="grace after SIGTERM before SIGKILL")


def run(args: argparse.Namespace) -> int:
    """Stop every process the state file lists; 0 also when there was nothing to stop."""
    from ppd.launch.deploy import stop
    from ppd.launch.process import STILL_RUNNING

    if args.timeout_s < 0:
        raise UsageError("--timeout-s must be >= 0")
    lines = stop(args.state, args.timeout_s, progress=_print)
    if not lines:
        print(f"nothing to stop: no deployment recorded in {args.state}")
        return 0
    stuck = [line for line in lines if STILL_RUNNING in line]
    if stuck:
        print(f"{len(stuck)} process(es) could not be stopped; {args.state} is kept")
        return 1
    print("stopped everything")
    return 0


def _print(message: str) -> None:
    print(message, flush=True)
