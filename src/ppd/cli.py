"""The `ppd` command: parse arguments, build each component's typed config, run it.

Each subcommand lives in its component as a module `ppd.<part>.cli` with two functions:
`add_arguments(parser)` and `run(args) -> int`. Those modules import their heavy
dependencies (matplotlib, numpy, the server stacks) inside `run`, and only the named subcommand's
module is imported at all, so every subcommand starts fast: one of them importing something heavy
at module level (`ppd.fleet.cli` took 1.1 s) no longer slows every other one down.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence

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


def build_parser(commands: Collection[str] = tuple(SUBCOMMANDS)) -> argparse.ArgumentParser:
    """The `ppd` parser; only the subcommands in commands get their options (and modules imported)."""
    parser = _Parser(prog="ppd", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"ppd {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        if name in commands:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def named_command(args: Sequence[str]) -> str | None:
    """The subcommand that args name first, or None (then argparse reports what is wrong)."""
    for arg in args:
        if not arg.startswith("-"):
            return arg if arg in SUBCOMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ppd` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = named_command(args_list)
    parser = build_parser(commands=() if command is None else (command,))
    args = parser.parse_args(args_list)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except UsageError as exc:
        print(f"ppd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
