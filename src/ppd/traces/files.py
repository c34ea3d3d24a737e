"""Reading a trace file's text, plain or gzip-compressed (the shipped copies are `.gz`)."""

from __future__ import annotations

import gzip
from pathlib import Path

from ppd.errors import UsageError


def read_text(path: Path) -> str:
    """The file's text; a `.gz` name is decompressed. UsageError when it cannot be read."""
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise UsageError(f"trace {path}: cannot read ({exc})") from None


def trace_name(kind: str, path: Path) -> str:
    """The workload name of a trace file: its stem, prefixed with its format unless it starts with it."""
    stem = trace_stem(path)
    return stem if stem.lower().startswith(kind) else f"{kind}-{stem}"


def trace_stem(path: Path) -> str:
    """The file name without `.gz` and its format suffix: `trace.jsonl.gz` -> `trace`."""
    name = path.name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name
