"""Reading the Prometheus text format that vLLM, `ppd sim` and `ppd proxy` serve at GET /metrics.

The probes (tools/engine_probe.py, tools/kv_probe.py) and result scripts diff an engine's series
around a measurement; they key each sample by its series as exposed, `name{labels}` (the text
before the value), which is what their JSON result files hold. One parser for all of them: comment
and blank lines skipped, label values may hold spaces, commas, braces and escaped quotes, a sample
may end with a timestamp (ignored), values may be `NaN`, `+Inf`, `-Inf`.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import aiohttp

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class PrometheusParseError(ValueError):
    """A sample line that is not in the text format; the message names the line."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line."""

    series: str  # name{labels} as exposed: the key the probes' result files use
    name: str
    labels: tuple[tuple[str, str], ...]  # unescaped values, in the order exposed
    value: float


def parse_samples(text: str) -> Iterator[Sample]:
    """Every sample of a /metrics text, in order; PrometheusParseError on a broken sample line."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield parse_sample(stripped)


def parse_sample(line: str) -> Sample:
    """One sample line (no comment): name, optional {labels}, value, optional timestamp."""
    name_match = _NAME.match(line)
    if name_match is None:
        raise PrometheusParseError(f"no metric name: {line!r}")
    position = name_match.end()
    labels: list[tuple[str, str]] = []
    if line[position : position + 1] == "{":
        position += 1
        while True:
            if line[position:].lstrip().startswith("}"):  # no labels, or a trailing comma
                position = line.index("}", position) + 1
                break
            label = _LABEL.match(line, position)
            if label is None:
                raise PrometheusParseError(f"broken labels: {line!r}")
            labels.append((label.group(1), _unescape(label.group(2))))
            position = label.end()
            if label.group(3) == "}":
                break
    series = line[:position]
    fields = line[position:].split()
    if not 1 <= len(fields) <= 2:
        raise PrometheusParseError(f"expected a value and at most a timestamp: {line!r}")
    try:
        value = float(fields[0])  # float() reads NaN, +Inf, -Inf as the format writes them
    except ValueError as exc:
        raise PrometheusParseError(f"value is not a number: {line!r}") from exc
    return Sample(series, name_match.group(), tuple(labels), value)


def _unescape(value: str) -> str:
    return re.sub(r"\\.", lambda match: _UNESCAPE.get(match.group(), match.group()), value)


def series_values(text: str, keep: Callable[[Sample], bool] = lambda sample: True) -> dict[str, float]:
    """{series: value} (series: name{labels} as exposed) of every sample `keep` accepts."""
    return {sample.series: sample.value for sample in parse_samples(text) if keep(sample)}


def name_starts_with(*prefixes: str) -> Callable[[Sample], bool]:
    """A `keep` for series_values: metrics whose name starts with one of the prefixes."""
    return lambda sample: sample.name.startswith(prefixes)


def series_diff(
    before: Mapping[str, float], after: Mapping[str, float], ndigits: int | None = 6
) -> dict[str, float]:
    """after - before for each series of `after` that changed (a series new in `after` counts from 0),
    rounded to ndigits (None: not rounded)."""
    changes = {}
    for series, value in after.items():
        change = value - before.get(series, 0.0)
        if change != 0.0 and not math.isnan(change):
            changes[series] = change if ndigits is None else round(change, ndigits)
    return changes


def metric_name(series: str) -> str:
    """The metric name of a series key: `name` of `name{labels}`."""
    return series.split("{", 1)[0]


def total(series: Mapping[str, float], name: str) -> float:
    """The sum over every series of metric `name` (all label sets)."""
    return sum(value for key, value in series.items() if metric_name(key) == name)


async def scrape_engine_series(session: aiohttp.ClientSession, url: str, who: str) -> dict[str, float]:
    """Every vllm:* / ppd_sim:* sample of GET url/metrics by its series text; {} when the engine
    cannot be reached or its text is not the format (said on stderr, prefixed by `who`): a probe
    keeps measuring without the engine's own figures rather than stopping."""
    try:
        async with session.get(url + "/metrics") as response:
            text = await response.text() if response.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return {}
    try:
        return series_values(text, name_starts_with("vllm:", "ppd_sim:"))
    except PrometheusParseError as exc:
        print(f"{who}: {url}/metrics: {exc}", file=sys.stderr)
        return {}
