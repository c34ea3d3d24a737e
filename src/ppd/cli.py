"""The `ppd` command: parse arguments, build each component's typed config, run it.

Each subcommand lives in its component as a module `ppd.<part>.cli` with two functions:
`add_arguments(parser)` and `run(args) -> int`. Those modules import their heavy
dependencies (matplotlib, numpy, the server stacks) inside `run`, so every subcommand starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ppd import __version__
from ppd.errors import UsageError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sim": ("ppd.sim.cli", "run a simulated vLLM engine (no GPU)"),
    "proxy": ("ppd.proxy.cli", "run the router for pd / ppd / replication / auto"),
    "bench": ("ppd.bench.cli", "open-loop multi-turn load generator"),
    "up": ("ppd.launch.cli_up", "start a topology of engines plus the proxy"),
    "down": ("ppd.launch.cli_down", "stop what `ppd up` started"),
    "report": ("ppd.report.cli", "merge results: statistics, crossover, plots, summary"),
    "demo": ("ppd.report.demo", "the whole comparison on simulated engines, in minutes"),
    "fleet": ("ppd.fleet.cli", "simulate a topology and mode in virtual time; writes a bench result set"),
    "plan": ("ppd.plan.cli", "rank the deployments of N GPUs by goodput within SLOs (simulated)"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ppd", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"ppd {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ppd` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_list)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except UsageError as exc:
        print(f"ppd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
