"""`mooncake:FILE` / `azure:FILE` workload names -> a Trace and its conversation links."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ppd.errors import UsageError
from ppd.traces.azure import read_azure
from ppd.traces.links import Links, link_conversations
from ppd.traces.mooncake import read_mooncake
from ppd.traces.records import Trace

READERS = {"mooncake": read_mooncake, "azure": read_azure}


@dataclass(frozen=True, eq=False)
class LinkedTrace:
    """A trace with its conversations (compared by identity: it holds thousands of requests)."""

    trace: Trace
    links: Links


def is_trace_spec(text: str) -> bool:
    """Whether a workload item names a trace (`mooncake:...`, `azure:...`)."""
    kind, sep, _ = text.partition(":")
    return bool(sep) and kind.lower() in READERS


def read_trace_spec(text: str) -> LinkedTrace:
    """Read `KIND:FILE` and link its conversations; UsageError for an unknown kind or a bad file."""
    kind, _, path_text = text.partition(":")
    reader = READERS.get(kind.lower())
    if reader is None:
        raise UsageError(f"trace {text!r}: expected {' or '.join(f'{k}:FILE' for k in READERS)}")
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"trace {text!r}: no such file {path}")
    trace = reader(path)
    return LinkedTrace(trace, link_conversations(trace))
