"""Where a loaded turn 1 loses a decode step over HTTP: the per-request trace of an HTTP grid run
joined with the fleet's own timeline of the same turns.

Over HTTP about a quarter of the loaded replication/auto turn 1s take one decode step more than in
the fleet (benchmarks/fleet_turn_steps.py). With PPD_TURN_TRACE=T set for the HTTP side, `ppd
bench`, `ppd proxy` and every `ppd sim` write their per-request stamps under T (ppd.turn_trace; one
clock: CLOCK_MONOTONIC, shared by every process on one Linux host, checked below from each file's
first line). This script joins them by session id and request id, runs the fleet over the same
points (virtual time, the given costs) and records the same turns' times there, and splits each
turn 1's TTFT on both sides into

    A  the way in: the bench's send -> the engine's submit (HTTP: the sim's engine.submit, after its
       API-time sleep; fleet: VirtualEngine.submit, after client_to_proxy, the proxy's loop,
       proxy_to_engine and the API time)
    B  the engine: submit -> the first token out (the step that takes the request; the sim's
       first chunk written; the fleet's step end)
    R  the way back: the first token out -> the bench's first content chunk (fleet: the TTFT less
       A and B)

and, for the turns one step later over HTTP (HTTP - fleet TTFT > --step-ms) and the rest, the
medians of A, B and R on both sides and of the HTTP side's parts of A: send -> the proxy's
handler, the proxy's handler -> its upstream request, upstream request -> the sim's handler, the
sim's handler -> submit; and in the sim, how late the submit came after its modelled ready time
(the API-time sleep's timer) and how late the step that took it was decided after its modelled
start (the step timer), both on the loop's clock. The HTTP side joins a step when its submit comes
before the step's decision; the fleet when its ready time is before the step's start.

    PPD_TURN_TRACE=T python benchmarks/fleet_vs_sim.py --http-only --out DIR [--topologies ..]
    python benchmarks/turn_trace.py T DIR [--hops H] [--proxy-cpu P] [--step-ms 3] [--modes replication,auto]
        [--workloads W1,W3]
    python benchmarks/turn_trace.py T DIR --way-in
    python benchmarks/turn_trace.py T DIR --clock
    python benchmarks/turn_trace.py T DIR --body-reads

--way-in runs no fleet: over every traced turn (all modes and workloads, turn 1s and later turns) it
splits the way in's two growing parts, send -> the proxy's handler and the proxy's upstream request
-> the sim's handler, by workload, turn and load, and the second by the time since the target
engine's last step ended (the sim writes every stream's chunk then: a per-stream write cost in its
loop would show as a wait just after a step end). Ends with `turn_trace_way_in turns=N ...`.

--clock runs no fleet: where the sims' modelled clock stands against real time. Each intake's
`arrival_loop` (the engine's clock read when the request came) against its `arrival` (the same
moment on CLOCK_MONOTONIC), and each step that took a request while its engine was idle (the
step's `prev_t` before the intake's handler: nothing ran in between) against that request's
`ready_loop`: on uvloop the clock read is libuv's uv_now, cut to a whole millisecond, so the
request arrives and the idle engine's step starts up to ~1 ms early on the modelled clock. Ends
with `turn_trace_clock intakes=N arrival_early_ms_p50=.. idle_steps=M step_before_ready=K ...`.

--body-reads runs no fleet: does a sim read the request bodies reaching it one at a time? Each of
the proxy's upstream requests (a P hop's and its target's) from its send to the sim's `arrival` (its
body parsed), by the prompt's size, for a request sent while the one sent before it to the same sim
had not arrived yet (behind) and for the rest (alone). Ends with `turn_trace_body_reads requests=N
behind=B` and, per size, `<size>_behind_ms=.. <size>_alone_ms=..` (medians).

DIR: the HTTP result sets (http-<topology>-<workload>.json and rows, packed or not). Ends with
`turn_trace turns=N later=L dA_later_ms=.. dA_rest_ms=.. dB_later_ms=.. dB_rest_ms=.. dR_later_ms=..
dR_rest_ms=..` (HTTP - fleet, medians).
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import itertools
import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _sims import SRC
from fleet_vs_sim import fleet_configs

sys.path.insert(0, str(SRC))

from ppd.fleet.config import hops_from_spec
from ppd.fleet.engines import VirtualEngine
from ppd.fleet.fleet import _TurnFlow
from ppd.fleet.proxy_loop import proxy_cpu_from_spec
from ppd.fleet.sequence import simulate_in_order
from ppd.results import TurnRow, read_rows
from ppd.sim.request import Request

MODES = ("replication", "auto")
Event = dict[str, Any]
TurnKey = tuple[str, str, str, int]  # (mode, "W3-q8-r0", conversation "c5", turn)


def turn_key(session_id: str, turn: int) -> TurnKey:
    """A turn's key from a bench or fleet session id (`<who>-<salt>-<mode>-<W>-q<qps>-r<run>-c<n>`)."""
    mode, workload, qps, run, conversation = session_id.rsplit("-", 5)[-5:]
    return (mode, f"{workload}-{qps}-{run}", conversation, turn)


# ---- the HTTP side: trace files -------------------------------------------------------------


def trace_events(folder: Path) -> Iterator[Event]:
    """Every event of a PPD_TURN_TRACE folder, each with "pid": its file's <role>-<pid> name."""
    for path in sorted([*folder.glob("*.jsonl"), *folder.glob("*.jsonl.gz")]):
        pid = path.name.split(".")[0]
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for line in data.decode().splitlines():
            if line.strip():
                event = json.loads(line)
                event["pid"] = pid
                yield event


@dataclass
class HttpTurn:
    bench: Event
    proxy: Event | None = None
    intake: Event | None = None  # the target's (D's or the replica's)
    first: Event | None = None
    step: Event | None = None  # the step that yielded its first token
    # The submit came after the decision of the step before the one that took it (else: a step late)
    after_previous_step: bool | None = None


@dataclass
class HttpTrace:
    turns: dict[TurnKey, HttpTurn] = field(default_factory=dict)
    clock_offsets_ms: list[float] = field(default_factory=list)  # perf_counter - monotonic per file


def load_http(folder: Path) -> HttpTrace:
    """Every traced turn with what each process recorded of it."""
    trace = HttpTrace()
    bench: dict[str, list[Event]] = defaultdict(list)
    proxy: dict[tuple[str, int], Event] = {}
    intakes: dict[str, Event] = {}
    firsts: dict[str, Event] = {}
    steps: dict[str, list[Event]] = defaultdict(list)
    for event in trace_events(folder):
        kind = event["ev"]
        if kind == "clock":
            trace.clock_offsets_ms.append((event["perf"] - event["monotonic"]) * 1e3)
        elif kind == "bench" and event["sid"] and event["sent"] is not None:
            bench[event["sid"]].append(event)
        elif kind == "proxy" and event["sid"] and event["turn"] is not None:
            proxy[(event["sid"], event["turn"])] = event
        elif kind == "intake":
            # P and D of a P->D turn share the id; D's intake (pulled) is the one a token follows
            if event["pulled"] or event["rid"] not in intakes:
                intakes[event["rid"]] = event
        elif kind == "first":
            firsts[event["rid"]] = event
        elif kind == "step":
            steps[event["eng"]].append(event)
    step_of = {
        rid: (engine, event) for engine, events in steps.items() for event in events for rid in event["first"]
    }
    for sid, sends in bench.items():
        for number, sent in enumerate(sorted(sends, key=lambda e: e["sent"]), start=1):
            turn = HttpTurn(sent, proxy.get((sid, number)))
            rid = None if turn.proxy is None else turn.proxy["rid"]
            if rid is not None:
                turn.intake = next(
                    (intakes[k] for k in (f"cmpl-{rid}", f"chatcmpl-{rid}") if k in intakes), None
                )
            if turn.intake is not None:
                turn.first = firsts.get(turn.intake["rid"])
                found = step_of.get(turn.intake["rid"])
                if found is not None and found[0] == turn.intake["eng"]:
                    turn.step = found[1]
                    turn.after_previous_step = turn.intake["submit"] > turn.step["prev_t"]
            trace.turns[turn_key(sid, number)] = turn
    return trace


# ---- the fleet side: the same points, with the turns' times recorded -------------------------


@dataclass
class FleetTurn:
    sent_s: float
    request: Request | None = None  # the target's request
    submit_s: float | None = None
    engine: str = ""  # the target's name
    step_start_s: float | None = None  # the start of the step that took it (after the run)


def fleet_turns(
    http_json: Path, hops_spec: str, proxy_cpu_spec: str
) -> tuple[dict[TurnKey, FleetTurn], list[TurnRow]]:
    """The fleet over an HTTP result set's points (as fleet_vs_sim.run_fleet), recording each turn's
    send, its target request and that request's submit on the virtual clock."""
    turns: dict[TurnKey, FleetTurn] = {}
    rows: list[TurnRow] = []
    configs = fleet_configs(http_json, proxy_cpu_from_spec(proxy_cpu_spec), hops_from_spec(hops_spec))
    for run in simulate_in_order(configs, lambda: _recording(turns)):  # one each: engine names repeat
        rows += run.rows
    return turns, rows


class _recording:
    """Wraps _TurnFlow._new_request and VirtualEngine.submit while the block runs (pure-Python
    build only: the instrumentation of this script, not of the fleet)."""

    def __init__(self, turns: dict[TurnKey, FleetTurn]) -> None:
        self.turns = turns
        self.sends: dict[str, int] = defaultdict(int)
        self.by_request: dict[int, FleetTurn] = {}
        self.starts: dict[str, list[float]] = defaultdict(list)  # step starts by engine
        self.runs: dict[str, list[tuple[float, list[float]]]] = defaultdict(list)  # decode runs

    def step_starts(self, engine: str) -> list[float]:
        """Every step start of an engine: single steps and the steps of its decode runs."""
        starts = list(self.starts[engine])
        for start_s, end_s in self.runs[engine]:
            starts += [start_s, *end_s[:-1]]  # the run's own list: a cut shortened it
        return sorted(starts)

    def __enter__(self) -> None:
        self.new_request, self.submit = _TurnFlow._new_request, VirtualEngine.submit
        self.start = VirtualEngine._start
        new_request, submit, start = self.new_request, self.submit, self.start
        recording = self

        def recorded_start(engine: VirtualEngine) -> None:
            now_s, run = engine.clock.now_s, engine._run
            start(engine)
            if engine._run is not None and engine._run is not run:
                recording.runs[engine.name].append((now_s, engine._run.step_end_s))
            elif engine._busy:
                recording.starts[engine.name].append(now_s)

        def recorded_new_request(flow: Any, engine: VirtualEngine, *args: Any, **kwargs: Any) -> Request:
            request = new_request(flow, engine, *args, **kwargs)
            if engine is flow.target:
                job = flow.job
                recording.sends[job.session_id] += 1
                turn = FleetTurn(job.sent_s, request, engine=engine.name)
                recording.turns[turn_key(job.session_id, recording.sends[job.session_id])] = turn
                recording.by_request[id(request)] = turn
            return request

        def recorded_submit(engine: VirtualEngine, request: Request) -> None:
            turn = recording.by_request.get(id(request))
            if turn is not None and turn.request is request:
                turn.submit_s = engine.clock.now_s
            submit(engine, request)

        _TurnFlow._new_request = recorded_new_request  # type: ignore[method-assign,assignment]
        VirtualEngine.submit = recorded_submit  # type: ignore[method-assign,assignment]
        VirtualEngine._start = recorded_start  # type: ignore[method-assign]

    def __exit__(self, *exc_info: object) -> None:
        _TurnFlow._new_request = self.new_request  # type: ignore[method-assign,assignment]
        VirtualEngine.submit = self.submit  # type: ignore[method-assign,assignment]
        VirtualEngine._start = self.start  # type: ignore[method-assign]
        for turn in self.by_request.values():  # the step that took it: the first to start after
            starts = self.step_starts(turn.engine)
            if turn.submit_s is not None:
                index = bisect.bisect_left(starts, turn.submit_s - 1e-12)
                turn.step_start_s = starts[index] if index < len(starts) else None


# ---- joining and summing up ------------------------------------------------------------------


PARTS: dict[str, Callable[[Any], float]] = {  # the HTTP side's parts of A, B and R; the sim's timers
    "send>proxy": lambda t: t.proxy["start"] - t.bench["sent"],
    "proxy>upstream": lambda t: t.proxy["target_sent"] - t.proxy["start"],
    "upstream>sim": lambda t: t.intake["handler"] - t.proxy["target_sent"],
    "sim>arrival": lambda t: t.intake["arrival"] - t.intake["handler"],
    "arrival>submit": lambda t: t.intake["submit"] - t.intake["arrival"],
    "submit-ready": lambda t: t.intake["submit"] - t.intake["ready_loop"],
    "decided-start": lambda t: t.step["t"] - t.step["start_loop"],
    "first>proxy": lambda t: t.proxy["first"] - t.first["t"],
    "proxy>bench": lambda t: t.bench["first"] - t.proxy["first"],
}


@dataclass
class Joined:
    point: str
    light: bool  # the workload's lower rate
    diff_ms: float  # HTTP - fleet TTFT
    d_ms: dict[str, float]  # A, B, R: HTTP - fleet
    http_ms: dict[str, float]  # in, A, B, R and PARTS over HTTP
    fleet_ms: dict[str, float]  # in, A, B, R in the fleet
    after_previous_step: bool | None
    batch: int  # requests in the HTTP step that took it: how busy its engine was
    http: HttpTurn  # its trace events
    fleet: FleetTurn


def join(
    http: HttpTurn, fleet: FleetTurn, http_row: TurnRow, fleet_row: TurnRow, light: bool, offset_s: float
) -> Joined | None:
    """One turn on both sides; offset_s puts a fleet time on the HTTP side's clock (run_offsets_s)."""
    t = http
    if (
        t.proxy is None
        or t.intake is None
        or t.first is None
        or t.step is None
        or t.bench["first"] is None
        or fleet.submit_s is None
    ):
        return None
    request = fleet.request
    if (
        request is None
        or request.first_token_s is None
        or fleet_row.ttft_ms is None
        or http_row.ttft_ms is None
    ):
        return None
    http_in = (t.intake["arrival"] - t.bench["sent"]) * 1e3
    http_a = (t.intake["submit"] - t.bench["sent"]) * 1e3
    http_b = (t.first["t"] - t.intake["submit"]) * 1e3
    http_r = http_row.ttft_ms - http_a - http_b
    fleet_in = (request.arrival_s - fleet.sent_s) * 1e3
    fleet_a = (fleet.submit_s - fleet.sent_s) * 1e3
    fleet_b = (request.first_token_s - fleet.submit_s) * 1e3
    fleet_r = fleet_row.ttft_ms - fleet_a - fleet_b
    # how long before the start of the step that took it the request was ready (modelled clocks)
    http_margin = (t.step["start_loop"] - t.intake["ready_loop"]) * 1e3
    fleet_margin = float("nan") if fleet.step_start_s is None else (fleet.step_start_s - fleet.submit_s) * 1e3
    http_ms = {"in": http_in, "A": http_a, "B": http_b, "R": http_r, "margin": http_margin}
    http_ms |= {name: part(t) * 1e3 for name, part in PARTS.items()}
    http_ms["send lag"] = http_row.schedule_lag_ms or 0.0  # the bench's send behind its schedule
    fleet_ms = {"in": fleet_in, "A": fleet_a, "B": fleet_b, "R": fleet_r, "margin": fleet_margin}
    d_ms = {key: http_ms[key] - fleet_ms[key] for key in fleet_ms}
    # On one time line: the HTTP submit, the modelled end of the step that took it and its first token
    # out, less the fleet's submit, step end (= its first token) and first token.
    fleet_token_s = request.first_token_s + offset_s
    d_ms["submit@"] = (t.intake["submit"] - fleet.submit_s - offset_s) * 1e3
    d_ms["ready@"] = (t.intake["ready_loop"] - fleet.submit_s - offset_s) * 1e3
    if fleet.step_start_s is not None:
        d_ms["start@"] = (t.step["start_loop"] - fleet.step_start_s - offset_s) * 1e3
    d_ms["end@"] = (t.step["end_loop"] - fleet_token_s) * 1e3
    d_ms["token@"] = (t.first["t"] - fleet_token_s) * 1e3
    point = f"{http_row.workload} {http_row.qps:g}/s {http_row.mode}"  # the caller adds the topology
    return Joined(
        point,
        light,
        http_row.ttft_ms - fleet_row.ttft_ms,
        d_ms,
        http_ms,
        fleet_ms,
        t.after_previous_step,
        t.step["n"],
        t,
        fleet,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def group_line(
    label: str, joined: list[Joined], keys: list[str], pick: Callable[[Joined], dict[str, float]]
) -> str:
    return f"{label:<10} n={len(joined):4} " + " ".join(
        f"{k}={median([pick(j)[k] for j in joined if k in pick(j)]):6.2f}" for k in keys
    )


KEYS_D = ["in", "A", "B", "R", "margin"]
KEYS_HTTP = [*KEYS_D, *PARTS, "send lag"]
KEYS_ALIGNED = ["ready@", "submit@", "start@", "end@", "token@"]
BATCH_BINS = ((0, 8), (8, 24), (24, 48), (48, 100_000))
RACE_S = 0.0002


def collect(trace: HttpTrace, out: Path, args: argparse.Namespace) -> tuple[list[Joined], int]:
    """The traced turn 1s of the chosen modes, joined with the fleet's; and how many had rows."""
    modes = set(args.modes.split(","))
    workloads = set(args.workloads.split(","))
    found, every = 0, []
    for http_json in sorted(out.glob("http-*.json")):
        if http_json.stem.split("-")[2] not in workloads:
            continue
        fleet, fleet_rows = fleet_turns(http_json, args.hops, args.proxy_cpu)
        fleet_by_key = {turn_key(r.conversation_id, r.turn): r for r in fleet_rows}
        lowest_qps = min(json.loads(http_json.read_text())["config"]["qps"])
        topology = http_json.stem.split("-")[1]
        offsets_s = run_offsets_s(trace, fleet)
        for row in read_rows(http_json.with_name(http_json.stem + ".jsonl")):
            if row.turn != 1 or row.mode not in modes or not row.ok or row.in_warmup:
                continue
            key = turn_key(row.conversation_id, row.turn)
            if key not in trace.turns or key not in fleet or key not in fleet_by_key:
                continue
            found += 1
            light = row.qps == lowest_qps
            joined = join(trace.turns[key], fleet[key], row, fleet_by_key[key], light, offsets_s[key[:2]])
            if joined is not None:
                joined.point = f"{topology} {joined.point}"
                every.append(joined)
    return every, found


def run_offsets_s(trace: HttpTrace, fleet: dict[TurnKey, FleetTurn]) -> dict[tuple[str, str], float]:
    """Per run, the HTTP clock at the fleet's time 0: the median of (HTTP send - fleet send) over its
    turn 1s (both sides send them at the same scheduled times, the bench a fraction of a ms late;
    later turns leave when the turn before ended, which differs)."""
    gaps: dict[tuple[str, str], list[float]] = defaultdict(list)
    for key, turn in fleet.items():
        if key in trace.turns and key[3] == 1:
            gaps[key[:2]].append(trace.turns[key].bench["sent"] - turn.sent_s)
    return {run: statistics.median(values) for run, values in gaps.items()}


def print_groups(groups: list[tuple[str, list[Joined]]], with_steps: bool = False) -> None:
    for label, group in groups:
        if not group:
            continue
        print("  HTTP-fleet " + group_line(label, group, [*KEYS_D, *KEYS_ALIGNED], lambda j: j.d_ms))
        print("  fleet      " + group_line(label, group, KEYS_D, lambda j: j.fleet_ms))
        print("  HTTP       " + group_line(label, group, KEYS_HTTP, lambda j: j.http_ms))
        if with_steps:
            after = [j.after_previous_step for j in group if j.after_previous_step is not None]
            lost = [j for j in group if j.http.intake["submit"] - j.http.step["prev_t"] < RACE_S]
            print(
                f"  HTTP: submitted after the decision of the step before the one that took it: "
                f"{sum(after)} of {len(after)}; less than {RACE_S * 1e3:g} ms after it (in the same "
                f"timer tick: an intake that lost the race to the step's timer): {len(lost)}"
            )


def load_way_in(folder: Path, out: Path) -> list[dict[str, Any]]:
    """Every traced turn's way-in parts (ms) with its workload, turn, load and the time since its
    target engine's last step ended (steps between two traced ones interpolated by step index)."""
    bench: list[Event] = []
    proxy: dict[tuple[str, int], Event] = {}
    intakes: dict[str, Event] = {}
    steps: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for event in trace_events(folder):
        kind = event["ev"]
        if kind == "bench" and event["sid"] and event["sent"] is not None:
            bench.append(event)
        elif kind == "proxy" and event["sid"] and event["turn"] is not None:
            proxy[(event["sid"], event["turn"])] = event
        elif kind == "intake" and (event["pulled"] or event["rid"] not in intakes):
            intakes[event["rid"]] = event
        elif kind == "step":
            steps[(event["pid"], event["eng"])].append(event)
    step_ends = {key: _step_ends(events) for key, events in steps.items()}
    light_qps: dict[str, set[float]] = defaultdict(set)  # per workload, each topology's lower rate
    for http_json in out.glob("http-*.json"):
        light_qps[http_json.stem.split("-")[2]].add(min(json.loads(http_json.read_text())["config"]["qps"]))
    sends: dict[str, list[Event]] = defaultdict(list)
    for event in bench:
        sends[event["sid"]].append(event)
    turns = []
    for sid, events in sends.items():
        mode, workload, qps, _run, _conversation = sid.rsplit("-", 5)[-5:]
        for number, sent in enumerate(sorted(events, key=lambda e: e["sent"]), start=1):
            hop = proxy.get((sid, number))
            if hop is None or hop.get("target_sent") is None:
                continue
            rid = hop["rid"]
            intake = next((intakes[k] for k in (f"cmpl-{rid}", f"chatcmpl-{rid}") if k in intakes), None)
            if intake is None:
                continue
            ends = step_ends.get((intake["pid"], intake["eng"]), [])
            index = bisect.bisect_right(ends, hop["target_sent"]) - 1
            turns.append({
                "workload": workload, "turn": number, "mode": mode, "qps": qps,
                "run": sent["pid"], "sent": sent["sent"],
                "light": float(qps[1:]) in light_qps[workload],
                "send>proxy": (hop["start"] - sent["sent"]) * 1e3,
                "upstream>sim": (intake["handler"] - hop["target_sent"]) * 1e3,
                "since_step_ms": (hop["target_sent"] - ends[index]) * 1e3 if index >= 0 else float("inf"),
            })  # fmt: skip
    return turns


def _step_ends(events: list[Event]) -> list[float]:
    """An engine's step ends (real time: decided + modelled length) from its traced steps, the steps
    between two traced ones spread evenly (decode steps of a busy engine are alike); none across an
    idle gap (> 50 ms a step)."""
    events = sorted(events, key=lambda e: e["i"])
    ends: list[float] = []
    for a, b in itertools.pairwise(events):
        end_a = a["t"] + a["end_loop"] - a["start_loop"]
        end_b = b["t"] + b["end_loop"] - b["start_loop"]
        num = b["i"] - a["i"]
        each = (end_b - end_a) / num if num > 0 else float("inf")
        ends += [end_a] if each > 0.05 else [end_a + j * each for j in range(num)]
    if events:
        last = events[-1]
        ends.append(last["t"] + last["end_loop"] - last["start_loop"])
    return sorted(ends)


PHASE_BINS_MS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 50.0)


def way_in(folder: Path, out: Path) -> int:
    turns = load_way_in(folder, out)
    parts = ("send>proxy", "upstream>sim")
    print(f"traced turns with the proxy's and the sim's stamps: {len(turns)}")
    print("== the way in's parts by workload, turn and load (medians, ms; every mode)")
    for workload in sorted({t["workload"] for t in turns}):
        for first in (True, False):
            for light in (True, False):
                group = [t for t in turns if t["workload"] == workload and (t["turn"] == 1) == first
                         and t["light"] == light]  # fmt: skip
                if group:
                    print(
                        f"  {workload} {'turn 1 ' if first else 'turn 2+'} {'light ' if light else 'loaded'} "
                        f"n={len(group):5} "
                        + " ".join(f"{p}={median([t[p] for t in group]):5.2f}" for p in parts)
                    )
    print("== upstream>sim by the time since the target engine's last step ended (medians, ms)")
    w3_first = [t for t in turns if t["workload"] == "W3" and t["turn"] == 1]
    rest = [t for t in turns if not (t["workload"] == "W3" and t["turn"] == 1)]
    for low, high in itertools.pairwise((*PHASE_BINS_MS, float("inf"))):
        line = f"  {low:4g}-{high:<4g} ms"
        for label, group in (("W3 turn 1s", w3_first), ("the rest", rest)):
            at = [t["upstream>sim"] for t in group if low <= t["since_step_ms"] < high]
            line += f"  {label}: n={len(at):4} {median(at):5.2f}"
        print(line)
    print(
        "== send>proxy of each run's turn 1s in the order they were sent (ms; W1 and W3, replication and "
        "auto; a run's first turn 1s take the kept-alive connections the run before left, later ones open "
        "new ones)"
    )
    runs: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in turns:
        if t["turn"] == 1 and t["workload"] in ("W1", "W3") and t["mode"] in MODES:
            runs[(t["run"], t["workload"], t["qps"], t["mode"])].append(t)
    for (_, workload, qps, mode), group in sorted(
        runs.items(), key=lambda item: min(t["sent"] for t in item[1])
    ):
        group.sort(key=lambda t: t["sent"])
        print(f"  {workload} {qps:4} {mode:12} " + " ".join(f"{t['send>proxy']:.1f}" for t in group))
    loaded_w3 = [t for t in w3_first if not t["light"]]
    light_w3 = [t for t in w3_first if t["light"]]
    loaded_rest = [t for t in rest if not t["light"]]
    print(
        f"turn_trace_way_in turns={len(turns)}"
        + "".join(
            f" {p.replace('>', '_')}_w3t1_light_ms={median([t[p] for t in light_w3]):.2f}"
            f" {p.replace('>', '_')}_w3t1_loaded_ms={median([t[p] for t in loaded_w3]):.2f}"
            f" {p.replace('>', '_')}_others_loaded_ms={median([t[p] for t in loaded_rest]):.2f}"
            for p in parts
        )
    )
    return 0


def clock(folder: Path) -> int:
    """The sims' modelled clock against real time, from the trace alone (module doc, --clock)."""
    intakes: dict[tuple[str, str], Event] = {}
    steps: list[Event] = []
    for event in trace_events(folder):
        if event["ev"] == "intake":
            intakes[(event["pid"], event["rid"])] = event
        elif event["ev"] == "step":
            steps.append(event)
    # A step that took its request on an idle engine starts on the modelled clock when the request
    # is ready there (the clock's arrival + its API time), or at the clock's now if that is earlier;
    # against the request's real ready time (its real arrival + the same API time) it is early by the
    # clock's cut. A busy engine's step starts at the previous step's end, after the request is ready.
    early_ms = []
    for step in steps:
        for rid in step["first"]:
            intake = intakes.get((step["pid"], rid))
            if intake is None or intake["pulled"] or step["prev_t"] >= intake["handler"]:
                continue
            real_ready_s = intake["arrival"] + intake["ready_loop"] - intake["arrival_loop"]
            if step["start_loop"] <= intake["ready_loop"] + 1e-9:  # the idle engine's first step
                early_ms.append((real_ready_s - step["start_loop"]) * 1e3)
    if not intakes:
        sys.exit(f"turn_trace --clock: no sim intake in {folder}")
    arrival_ms = [(e["arrival"] - e["arrival_loop"]) * 1e3 for e in intakes.values()]
    whole_ms = sum(abs(ms - round(ms)) < 1e-6 for ms in (e["arrival_loop"] * 1e3 for e in intakes.values()))
    print(f"intakes {len(intakes)}: arrival on the engine's clock at a whole ms: {whole_ms}")
    print("  real arrival - the clock's arrival (ms): " + quantile_text(arrival_ms))
    print(f"steps that took a request on an idle engine: {len(early_ms)}")
    print("  the request's real ready time - the step's start (ms): " + quantile_text(early_ms))
    print(
        f"turn_trace_clock intakes={len(intakes)} arrival_whole_ms={whole_ms} "
        f"arrival_early_ms_p50={median(arrival_ms):.3f} idle_steps={len(early_ms)} "
        f"step_early_ms_p50={median(early_ms):.3f} "
        f"step_early_ms_mean={statistics.fmean(early_ms) if early_ms else math.nan:.3f}"
    )
    return 0


BODY_SIZES = (4096, 8192, 16384)  # prompt tokens, each size the requests within a factor sqrt(2) of it


def body_reads(folder: Path) -> int:
    """Upstream send -> the sim's arrival, behind another body or alone (module doc, --body-reads)."""
    proxy: list[Event] = []
    intakes: dict[tuple[str, bool], Event] = {}  # (request id, pulled): a P->D turn's P and D share the id
    for event in trace_events(folder):
        if event["ev"] == "proxy" and event["rid"] is not None:
            proxy.append(event)
        elif event["ev"] == "intake":
            intakes[(event["rid"], event["pulled"])] = event
    sends: dict[tuple[str, str], list[tuple[float, Event]]] = defaultdict(list)  # per sim, (sent, intake)
    for hop in proxy:
        ids = (f"cmpl-{hop['rid']}", f"chatcmpl-{hop['rid']}")
        for sent_s, pulled in (
            (hop["prefill_sent"], False),
            (hop["target_sent"], hop["prefill_sent"] is not None),
        ):
            intake = next((intakes[(rid, pulled)] for rid in ids if (rid, pulled) in intakes), None)
            if sent_s is not None and intake is not None:
                sends[(intake["pid"], intake["eng"])].append((sent_s, intake))
    way_ms: dict[tuple[int, bool], list[float]] = defaultdict(list)  # (size, behind)
    num_requests = num_behind = 0
    for requests in sends.values():
        requests.sort(key=lambda pair: pair[0])
        arrived_s = -math.inf  # the arrival of the request sent before
        for sent_s, intake in requests:
            behind = arrived_s > sent_s
            arrived_s = intake["arrival"]
            num_requests, num_behind = num_requests + 1, num_behind + behind
            size = next(
                (s for s in BODY_SIZES if s / math.sqrt(2) <= intake["prompt"] < s * math.sqrt(2)), None
            )
            if size is not None:
                way_ms[(size, behind)].append((intake["arrival"] - sent_s) * 1e3)
    if not num_requests:
        sys.exit(f"turn_trace --body-reads: no upstream request joined to a sim's intake in {folder}")
    print(
        f"upstream requests joined to their sim's intake: {num_requests}; "
        f"sent behind another body: {num_behind}"
    )
    print("== the proxy's send -> the sim's arrival (body parsed), ms")
    figures = ""
    for size in BODY_SIZES:
        for behind in (True, False):
            values = way_ms[(size, behind)]
            print(
                f"  ~{size:5} tokens {'behind' if behind else 'alone '} n={len(values):5}  "
                + quantile_text(values)
            )
            figures += f" t{size}_{'behind' if behind else 'alone'}_ms={median(values):.2f}"
    print(f"turn_trace_body_reads requests={num_requests} behind={num_behind}{figures}")
    return 0


def quantile_text(values: list[float]) -> str:
    if len(values) < 2:  # deciles need two values
        return "-" if not values else f"p50 {values[0]:.3f} (one value)"
    cuts = statistics.quantiles(values, n=10)
    mean = statistics.fmean(values)
    return f"p10 {cuts[0]:.3f}  p50 {median(values):.3f}  p90 {cuts[-1]:.3f}  mean {mean:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("trace", type=Path, help="the PPD_TURN_TRACE folder of the HTTP run")
    parser.add_argument("out", type=Path, help="the HTTP run's result sets (fleet_vs_sim --out)")
    parser.add_argument("--hops", default="measured", help="the fleet's hop costs: measured|zero|FILE")
    parser.add_argument("--proxy-cpu", default="measured", help="the fleet's proxy loop: measured|zero|FILE")
    parser.add_argument("--step-ms", type=float, default=3.0, help="a TTFT difference beyond this is a step")
    parser.add_argument("--modes", default=",".join(MODES), help="whose turn 1s (default replication,auto)")
    parser.add_argument(
        "--workloads", default="W1,W3", help="which result sets (default W1,W3: short prompts)"
    )
    parser.add_argument(
        "--way-in", action="store_true", help="only the way in's parts over every traced turn (no fleet)"
    )
    parser.add_argument("--clock", action="store_true", help="only the sims' modelled clock (no fleet)")
    parser.add_argument(
        "--body-reads",
        action="store_true",
        help="only each sim's body reads, behind another or alone (no fleet)",
    )
    args = parser.parse_args()
    if args.way_in:
        return way_in(args.trace, args.out)
    if args.clock:
        return clock(args.trace)
    if args.body_reads:
        return body_reads(args.trace)
    trace = load_http(args.trace)
    offsets = trace.clock_offsets_ms
    print(
        f"trace files {len(offsets)}; perf_counter - monotonic: {min(offsets):.3f} .. {max(offsets):.3f} ms"
    )
    every, found = collect(trace, args.out, args)
    print(f"turn 1s ({args.modes}; {args.workloads}) with rows on both sides: {found}; traced: {len(every)}")
    step_ms = args.step_ms
    for point in sorted({j.point for j in every}):
        at = [j for j in every if j.point == point]
        later = [j for j in at if j.diff_ms > step_ms]
        print(f"== {point}: later {len(later)} / {len(at)} (medians, ms)")
        print_groups([("later", later), ("rest", [j for j in at if abs(j.diff_ms) <= step_ms])])
    later = [j for j in every if j.diff_ms > step_ms]
    rest = [j for j in every if abs(j.diff_ms) <= step_ms]
    earlier = [j for j in every if j.diff_ms < -step_ms]
    print("== all points (medians, ms)")
    print_groups([("later", later), ("rest", rest), ("earlier", earlier)], with_steps=True)
    print("== by the HTTP engine's batch when it took the turn (medians, ms; later share)")
    for low, high in BATCH_BINS:
        group = [j for j in every if low <= j.batch < high]
        if group:
            share = sum(j.diff_ms > step_ms for j in group) / len(group)
            print(f"  batch {low}-{high - 1}: later {share:.0%}")
            print_groups([(f"{low}-{high - 1}", group)])
    print("== by load, every traced turn 1 (medians, ms)")
    print_groups([("light", [j for j in every if j.light]), ("loaded", [j for j in every if not j.light])])
    d = {k: (median([j.d_ms[k] for j in later]), median([j.d_ms[k] for j in rest])) for k in KEYS_D}
    print(
        f"turn_trace turns={len(every)} later={len(later)} earlier={len(earlier)}"
        + "".join(f" d{name}_later_ms={a:.2f} d{name}_rest_ms={b:.2f}" for name, (a, b) in d.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
