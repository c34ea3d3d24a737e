"""Placeholder until this subcommand lands."""

import argparse

from ppd.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options yet."""


def run(args: argparse.Namespace) -> int:
    """Not built yet."""
    raise UsageError("not built yet")
