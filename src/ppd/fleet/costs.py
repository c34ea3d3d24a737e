"""The fleet's measured-cost files (hops.json, proxy_cpu.json) and the cost files a flag names.

Both cost kinds (config.HopCosts, proxy_loop.ProxyCpu) are flat dataclasses of numbers (or, for a
measured spread, a tuple of quantiles p0 .. p100 at equal steps) plus a `source` label, so one reader
serves both: `--hops FILE` and `--proxy-cpu FILE` fail the same way.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import Field
from pathlib import Path
from typing import Any

from ppd.errors import UsageError


def measured_values(path: Path, known: Iterable[str]) -> dict[str, Any]:
    """A committed measurement file's values for the known fields (its other keys are its notes)."""
    data = json.loads(path.read_text())
    return {key: _frozen(data[key]) for key in known if key in data}


def _frozen(value: Any) -> Any:
    """A JSON list of quantiles as the dataclasses hold it (a tuple); anything else as it is."""
    return tuple(value) if isinstance(value, list) else value


def quantiles_problem(costs: object) -> str:
    """What is wrong with a cost dataclass's quantile tuples ('' if nothing)."""
    for name, value in vars(costs).items():
        if isinstance(value, tuple) and not _is_spread(value):
            return f"{name}: {_SPREAD}"
    return ""


_SPREAD = "expected quantiles p0 .. p100: empty, or at least two numbers >= 0 in non-decreasing order"


def _is_spread(values: tuple[Any, ...] | list[Any]) -> bool:
    if not values:
        return True
    if len(values) < 2 or any(_not_a_cost(v) for v in values):
        return False
    return all(low <= high for low, high in itertools.pairwise(values))


def file_values(flag: str, spec: str, known: Mapping[str, Field[Any]]) -> dict[str, Any]:
    """The values of the cost file a flag names (`--hops FILE`): an object with keys among known, every
    cost a number >= 0 (a spread: a list of quantiles), labelled `file: PATH` unless it names its
    source; UsageError otherwise."""
    try:
        data = json.loads(Path(spec).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag} {spec}: expected measured, zero or a readable JSON file ({exc})") from None
    fields = set(known)
    if not isinstance(data, dict) or set(data) - fields:
        raise UsageError(f"{flag} {spec}: expected an object with keys among {sorted(fields)}")
    for key, value in data.items():
        if key == "source":
            continue
        if isinstance(known[key].default, tuple):  # a spread
            if not isinstance(value, list) or not _is_spread(value):
                raise UsageError(f"{flag} {spec}: {key}: {_SPREAD}")
        elif _not_a_cost(value):
            raise UsageError(f"{flag} {spec}: {key} must be a number >= 0")
    data = {key: _frozen(value) for key, value in data.items()}
    data.setdefault("source", f"file: {spec}")  # not the default's "zero: ...": plans label by it
    return data


def _not_a_cost(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or value < 0
