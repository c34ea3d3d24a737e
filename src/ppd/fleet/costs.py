"""The fleet's measured-cost files (hops.json, proxy_cpu.json) and the cost files a flag names.

Both cost kinds (config.HopCosts, proxy_loop.ProxyCpu) are flat dataclasses of numbers plus a
`source` label, so one reader serves both: `--hops FILE` and `--proxy-cpu FILE` fail the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ppd.errors import UsageError


def measured_values(path: Path, known: Iterable[str]) -> dict[str, Any]:
    """A committed measurement file's values for the known fields (its other keys are its notes)."""
    data = json.loads(path.read_text())
    return {key: data[key] for key in known if key in data}


def file_values(flag: str, spec: str, known: Iterable[str]) -> dict[str, Any]:
    """The values of the cost file a flag names (`--hops FILE`): an object with keys among known and
    every cost a number >= 0, labelled `file: PATH` unless it names its source; UsageError otherwise."""
    try:
        data = json.loads(Path(spec).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag} {spec}: expected measured, zero or a readable JSON file ({exc})") from None
    fields = set(known)
    if not isinstance(data, dict) or set(data) - fields:
        raise UsageError(f"{flag} {spec}: expected an object with keys among {sorted(fields)}")
    costs = [value for key, value in data.items() if key != "source"]
    if any(isinstance(value, bool) or not isinstance(value, int | float) or value < 0 for value in costs):
        raise UsageError(f"{flag} {spec}: every cost must be a number >= 0")
    data.setdefault("source", f"file: {spec}")  # not the default's "zero: ...": plans label by it
    return data
