"""The proxy's event loop as a serial CPU resource: the wait a turn has behind other streams.

`ppd proxy` is one Python process with one asyncio event loop. Every request it forwards costs CPU
(parse, route, forward, finish), and so does every chunk it relays: a `readany()` on the engine's
stream and a write to the client's (proxy/relay.py). When an engine's step ends, every stream of its
batch gets a chunk at once, and the loop reads them one after another; whatever reaches the proxy
meanwhile waits. The hop costs (config.HopCosts) are what an isolated turn pays, the loop's own
service of that turn included; this module adds only the wait behind the other turns' work.

The model: one FIFO server per proxy process, fed by
- requests: a turn's intake, and pd's second hop when P's answer is back, `request_us` each;
- engine steps: a step's streamed tokens are waiting for the proxy when it ends; the loop
  wakes for them (`wake_us`: on an idle loop that is most of a chunk's cost) and reads each stream
  (`read_us`: a `readany()` and the write on to the client). A stream whose earlier chunks are
  still unread when the loop gets to it is read by one `readany()`: a step that ends before the
  pass over its engine's streams has started is read by that pass, at `token_us` per extra token.
With N processes, the conversations are spread evenly over them (by session id): a process takes
in its own turns' requests and relays 1/N of every step's chunks (the expected share). The router
state stays one, as if the processes shared it.

Costs are measured on the real-time system (benchmarks/proxy_relay_cost.py --write, written to
proxy_cpu.json beside this module); see docs/fleet.md.
"""

from __future__ import annotations

import bisect
import heapq
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ppd.errors import UsageError
from ppd.fleet.costs import file_values, measured_values

PROXY_CPU_FILE = Path(__file__).parent / "proxy_cpu.json"
_KEEP_RECORDS_S = 60.0  # relay waits are looked up at most one decode run (< a few s) after the step
_MIN_RECORDS = 4096


@dataclass(frozen=True)
class ProxyCpu:
    """The CPU one `ppd proxy` process spends, in us (all zero: the loop is never busy)."""

    request_us: float = 0.0  # per request forwarded to an engine (a pd turn forwards two)
    wake_us: float = 0.0  # per pass over an engine step's chunks that wakes an idle loop
    read_us: float = 0.0  # per relayed read: a readany() on an engine's stream and its write on
    token_us: float = 0.0  # per token beyond the first that one read carries
    source: str = "zero: no proxy CPU"

    @property
    def is_zero(self) -> bool:
        return self.request_us == 0 and self.wake_us == 0 and self.read_us == 0 and self.token_us == 0


def measured_proxy_cpu() -> ProxyCpu:
    """The proxy's CPU costs measured on the real-time system (proxy_cpu.json beside this module)."""
    return ProxyCpu(**measured_values(PROXY_CPU_FILE, ProxyCpu.__dataclass_fields__))


def proxy_cpu_from_spec(spec: str) -> ProxyCpu:
    """ProxyCpu from a --proxy-cpu value: `measured` (proxy_cpu.json), `zero`, or a JSON file of
    ProxyCpu keys (another host's figures); UsageError otherwise."""
    if spec == "measured":
        return measured_proxy_cpu()
    if spec == "zero":
        return ProxyCpu()
    return ProxyCpu(**file_values("--proxy-cpu", spec, ProxyCpu.__dataclass_fields__))


class _EngineSteps:
    """One engine's steps as one proxy process receives their chunks, and when each was read.

    Steps come in segments: one step, or a decode run's step end times (the run's own list, so a
    run cut short is shortened here too; only steps that have not ended are ever cut)."""

    __slots__ = ("end_s", "prune_at", "read_s", "segments", "start_s", "step_index")

    def __init__(self) -> None:
        self.segments: deque[tuple[list[float], int]] = deque()  # (step end times, tokens per step)
        self.step_index = 0  # the next unread step of segments[0]
        self.end_s: list[float] = []  # per step read: when it ended
        self.read_s: list[float] = []  # when a stream's chunk of it was read, on average
        self.start_s = -1.0  # when the last pass over this engine's streams started
        self.prune_at = _MIN_RECORDS  # prune the records when they reach this many

    def next_end_s(self) -> float | None:
        """The end of the next unread step; None when every booked step has been read."""
        while self.segments:
            ends = self.segments[0][0]
            if self.step_index < len(ends):
                return ends[self.step_index]
            self.segments.popleft()
            self.step_index = 0
        return None

    def take(self) -> int:
        """Mark the next step read; its tokens."""
        tokens = self.segments[0][1]
        self.step_index += 1
        return tokens


class ProxyLoop:
    """One proxy process's event loop: FIFO over requests and engine steps' chunks (module doc).

    Work is taken strictly in the order it reaches the loop, and only up to the clock's now: a step's
    chunks when it ends (engine_to_proxy is added after the read, as the isolated turn paid it), a
    request when it arrives. Everything that ends by now was booked when it started, so the
    loop's state depends only on the work, not on when the fleet asks (per-step driving and decode
    runs give the same waits)."""

    def __init__(self, cpu: ProxyCpu, num_engines: int, share: float) -> None:
        self.request_s = cpu.request_us * 1e-6
        self.wake_s = cpu.wake_us * 1e-6
        self.read_s = cpu.read_us * 1e-6
        self.token_s = cpu.token_us * 1e-6
        self.share = share  # of every step's streams this process relays
        self.engines = [_EngineSteps() for _ in range(num_engines)]
        self.free_s = 0.0  # when the loop is done with all the work taken so far
        self.busy_s = 0.0  # CPU time charged, for the run's figures
        self._heap: list[tuple[float, int]] = []  # (next step end, engine) of engines with unread steps
        self._queued = [False] * num_engines

    def book_steps(self, engine_index: int, step_end_s: list[float], tokens_per_step: int) -> None:
        """An engine started a step (or a decode run): its chunks reach the proxy as each ends."""
        if tokens_per_step <= 0:
            return
        steps = self.engines[engine_index]
        steps.segments.append((step_end_s, tokens_per_step))
        if not self._queued[engine_index]:
            end_s = steps.next_end_s()
            if end_s is not None:
                self._queued[engine_index] = True
                heapq.heappush(self._heap, (end_s, engine_index))

    def request_wait_s(self, arrival_s: float) -> float:
        """A request reaching the loop at arrival_s (the clock's now): how long it waits (s)."""
        self._read_until(arrival_s)
        start_s = max(self.free_s, arrival_s)
        self.free_s = start_s + self.request_s
        self.busy_s += self.request_s
        return start_s - arrival_s

    def relay_wait_s(self, engine_index: int, step_end_s: float) -> float:
        """How long a chunk of the engine's step that ended at step_end_s (<= now) waits in the loop."""
        self._read_until(step_end_s)
        steps = self.engines[engine_index]
        index = bisect.bisect_left(steps.end_s, step_end_s - 1e-9)
        if index == len(steps.end_s):
            return 0.0  # a step the loop was not told of
        return max(0.0, steps.read_s[index] - step_end_s)

    def _read_until(self, time_s: float) -> None:
        """Take every booked step that has ended by time_s, in the order they ended."""
        # The engine at the heap's head is replaced in place by its next step (one sift instead of a
        # pop and a push; the order of the steps taken is the same: each engine is in the heap once).
        heap = self._heap
        while heap and heap[0][0] <= time_s:
            key_s, engine_index = heap[0]
            steps = self.engines[engine_index]
            end_s = steps.next_end_s()
            if end_s is not None and end_s == key_s:
                self._read(steps, end_s)
                end_s = steps.next_end_s()
            # else that step was cut from its run: the next one is later
            if end_s is None:
                heapq.heappop(heap)
                self._queued[engine_index] = False
            else:
                heapq.heapreplace(heap, (end_s, engine_index))

    def _read(self, steps: _EngineSteps, end_s: float) -> None:
        """A step's chunks: read in the pass over its engine's streams that has not started yet, if
        any (a stream's readany() returns every chunk waiting), else in a pass of their own."""
        num_tokens = steps.take() * self.share
        if end_s <= steps.start_s:  # the pass started after this step ended: it read these too
            cost_s = num_tokens * self.token_s
            self.free_s += cost_s
            self.busy_s += cost_s
            _record(steps, end_s, steps.read_s[-1])
            return
        start_s = max(self.free_s, end_s)
        reads_s = num_tokens * self.read_s
        # The loop wakes for the chunks only when it was idle (a busy loop finds them at its next
        # poll); a share below one read wakes it only at times.
        wake_s = self.wake_s * min(1.0, num_tokens) if start_s == end_s else 0.0
        self.free_s = start_s + wake_s + reads_s
        self.busy_s += wake_s + reads_s
        steps.start_s = start_s
        # A stream's read comes, on average, after half of the others' in the pass (its own read and
        # the wake are in the isolated turn's hop costs).
        ahead_s = reads_s * (1.0 - 1.0 / num_tokens) / 2.0 if num_tokens > 1.0 else 0.0
        _record(steps, end_s, start_s + ahead_s)


def _record(steps: _EngineSteps, end_s: float, read_s: float) -> None:
    """Keep when a step's chunks were read, dropping records long past (a relay wait is looked up
    at most one decode run after its step). A prune waits until the list has doubled since the last
    one, so each drops at least half of it: amortised O(1) per record, not a move of the whole list
    per record once it is full of recent ones."""
    if len(steps.end_s) >= steps.prune_at:
        keep = bisect.bisect_left(steps.end_s, end_s - _KEEP_RECORDS_S)
        del steps.end_s[:keep]
        del steps.read_s[:keep]
        steps.prune_at = max(_MIN_RECORDS, 2 * len(steps.end_s))
    steps.end_s.append(end_s)
    steps.read_s.append(read_s)


class ProxyProcesses:
    """The proxy processes of a deployment; a conversation is served by one (by its session id)."""

    def __init__(self, cpu: ProxyCpu, num_processes: int, num_engines: int) -> None:
        if num_processes < 1:
            raise UsageError("proxy processes must be >= 1")
        share = 1.0 / num_processes
        self.loops = [ProxyLoop(cpu, num_engines, share) for _ in range(num_processes)]

    def loop_of(self, session_id: str) -> ProxyLoop:
        """The process that serves this conversation."""
        if len(self.loops) == 1:
            return self.loops[0]
        return self.loops[zlib.crc32(session_id.encode()) % len(self.loops)]

    def book_steps(self, engine_index: int, step_end_s: list[float], tokens_per_step: int) -> None:
        """An engine started a step or a decode run: every process relays its share of the chunks."""
        for loop in self.loops:
            loop.book_steps(engine_index, step_end_s, tokens_per_step)

    def busy_s(self) -> list[float]:
        """CPU time each process was charged (s)."""
        return [loop.busy_s for loop in self.loops]
