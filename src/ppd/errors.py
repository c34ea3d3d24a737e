"""Errors shared by every component."""


class UsageError(Exception):
    """Bad command-line or config input; the CLI prints it as one line and exits 2."""
