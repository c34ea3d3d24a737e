"""Does the fleet's model of the kept-alive connections (ppd/fleet/connections.py) open as many
connections as the HTTP path did? Reads a fleet_vs_sim folder (`http-<topology>-<W>.json` beside
`fleet-<topology>-<W>.json` and `proxy-decisions-<topology>.jsonl[.gz]`, as `fleet_vs_sim.py --out DIR`
leaves it) and compares, per run, the connections opened on each hop:

    bench -> proxy    the bench's runs[].connections_opened (aiohttp's connection-create hook) against
                      the fleet's (its modelled client pool)
    proxy -> engines  the proxy's decision-log lines' connections_opened, summed over the run's turns
                      (its session ids name the run), against the fleet's proxy pools
                      (meta.fleet[].proxy.connections_opened)

Sets written before a count was recorded have none and are left out. Ends with one line per hop:

    fleet_connections hop=client runs=N same=K fleet_more=A fleet_fewer=B http_opened=H fleet_opened=F
    fleet_connections hop=proxy ...

    python benchmarks/fleet_connections.py DIR
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

Point = tuple[str, str, float, int]  # workload, mode, qps, run

# `ppd bench`'s X-Session-ID (bench/loadgen.conversation_id), as the proxy's decision log keys it.
SESSION_ID = re.compile(
    r"^s:bench-[^-]+-(?P<mode>[a-z]+)-(?P<workload>.+)-q(?P<qps>[^-]+)-r(?P<run>\d+)-c\d+$"
)


def http_client_counts(path: Path) -> dict[Point, int]:
    meta = json.loads(path.read_text())
    return {
        (run["workload"], run["mode"], run["qps"], run["run"]): run["connections_opened"]
        for run in meta["runs"]
        if run.get("connections_opened") is not None
    }


def fleet_counts(path: Path) -> tuple[dict[Point, int], dict[Point, int]]:
    """The fleet's client and proxy counts per run."""
    meta = json.loads(path.read_text())
    client = http_client_counts(path)
    proxy = {
        (run["workload"]["name"], run["mode"], run["qps"], run["run"]): run["proxy"]["connections_opened"]
        for run in meta["fleet"]
        if run["proxy"].get("connections_opened") is not None
    }
    return client, proxy


def http_proxy_counts(folder: Path, topology: str) -> dict[Point, int]:
    """The proxy's decision log summed per run; {} when the log has no counts.

    A new conversation's key is known only once the router commits its first turn, so a turn 1 cut
    off before that (the drain cutting a stream, status 499) has no conversation in the log. It
    belongs to the run of the named line before it: a log is one proxy's lines in the order they
    ended (fleet_vs_sim joins the logs of the proxies that ran side by side, one after the other), and
    the drain cuts a run's streams at its end, after some of its turns ended."""
    paths = [folder / f"proxy-decisions-{topology}.jsonl", folder / f"proxy-decisions-{topology}.jsonl.gz"]
    path = next((p for p in paths if p.exists()), None)
    if path is None:
        return {}
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as lines:
        records: list[dict[str, Any]] = [json.loads(line) for line in lines]
    records = [r for r in records if r.get("connections_opened") is not None]
    counts: Counter[Point] = Counter()
    point: Point | None = None
    for record in records:
        found = SESSION_ID.match(record.get("conversation") or "")
        if found is not None:
            point = (found["workload"], found["mode"], float(found["qps"]), int(found["run"]))
        elif record.get("conversation") is not None:
            continue  # not one of the bench's conversations
        if point is not None:
            counts[point] += record["connections_opened"]
    return dict(counts)


def compare(hop: str, rows: list[tuple[str, Point, int, int]]) -> None:
    print(f"== {hop}")
    print(f"{'topology':<9} {'workload':<9} {'mode':<12} {'qps':>5} {'run':>3} {'http':>5} {'fleet':>5}")
    for topology, (workload, mode, qps, run), http, fleet in rows:
        print(f"{topology:<9} {workload:<9} {mode:<12} {qps:>5g} {run:>3} {http:>5} {fleet:>5}")
    same = sum(1 for *_, http, fleet in rows if http == fleet)
    more = sum(1 for *_, http, fleet in rows if fleet > http)
    print(
        f"fleet_connections hop={hop} runs={len(rows)} same={same} fleet_more={more} "
        f"fleet_fewer={len(rows) - same - more} http_opened={sum(r[2] for r in rows)} "
        f"fleet_opened={sum(r[3] for r in rows)}"
    )


def main(folder: Path) -> None:
    http_paths = sorted(folder.glob("http-*.json"))
    if not http_paths:
        sys.exit(f"fleet_connections: no http-*.json in {folder}")
    client_rows: list[tuple[str, Point, int, int]] = []
    proxy_rows: list[tuple[str, Point, int, int]] = []
    proxy_logs: dict[str, dict[Point, int]] = {}
    for http_path in http_paths:
        topology = http_path.stem.removeprefix("http-").rsplit("-", 1)[0]
        fleet_path = http_path.with_name("fleet-" + http_path.name.removeprefix("http-"))
        if not fleet_path.exists():
            sys.exit(f"fleet_connections: {fleet_path} is missing (run fleet_vs_sim.py --fleet-only first)")
        fleet_client, fleet_proxy = fleet_counts(fleet_path)
        if topology not in proxy_logs:
            proxy_logs[topology] = http_proxy_counts(folder, topology)
        for point, http in http_client_counts(http_path).items():
            if point in fleet_client:
                client_rows.append((topology, point, http, fleet_client[point]))
        for point, fleet in fleet_proxy.items():
            if point in proxy_logs[topology]:
                proxy_rows.append((topology, point, proxy_logs[topology][point], fleet))
    compare("client", client_rows)
    compare("proxy", proxy_rows)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
