"""The typed configuration of one `ppd bench` invocation, built by the CLI or by other code (the demo)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ppd.bench.metrics import Slo
from ppd.errors import UsageError
from ppd.modes import MODES, Mode, is_mode
from ppd.traces.formats import LinkedTrace
from ppd.traces.replay import Window

Api = Literal["completions", "chat"]


@dataclass(frozen=True)
class TurnShape:
    """One turn's size: new user words (= tokens) appended to the history, and output tokens."""

    num_new_words: int
    num_output_tokens: int


@dataclass(frozen=True)
class WorkloadSpec:
    """A workload: the shapes its conversations take.

    Conversation i of a run takes one of `conversations` picked by the run's seeded schedule, so the
    same (seed, workload, qps, run) gives the same conversations in every mode.
    """

    name: str
    conversations: tuple[tuple[TurnShape, ...], ...]
    source: str = "builtin"  # "builtin", "custom", or the conversation file's path
    trace: TraceWorkload | None = None  # a trace replay: conversations is empty, the trace says all


@dataclass(frozen=True)
class TraceWorkload:
    """A production trace replayed at its own timestamps (scaled): see ppd.traces.replay."""

    linked: LinkedTrace
    window: Window = field(default_factory=Window)


@dataclass(frozen=True)
class BenchConfig:
    """Everything one invocation does. Times in s unless named otherwise."""

    url: str
    workloads: tuple[WorkloadSpec, ...]
    qps: tuple[float, ...]
    duration_s: float = 60.0  # arrival window per run, warmup included
    runs: int = 1
    modes: tuple[Mode, ...] = ()  # empty: measure the URL as it is
    think_time_s: float = 0.0
    seed: int = 0
    warmup_s: float = 0.0  # turns sent in [0, warmup_s) of a run are recorded with in_warmup=True
    slo: Slo = field(default_factory=Slo)
    output_dir: Path = Path("results")
    name: str | None = None  # result set name; default bench-<utc>-<workloads>
    append: bool = False  # add runs to an existing set of that name
    api: Api = "completions"
    model: str | None = None  # None: the first model of GET /v1/models
    send_session_id: bool = True  # False: the proxy must recognise conversations by their history
    request_timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    drain_timeout_s: float = 120.0  # after the arrival window, in-flight conversations get this long
    admin_token: str | None = None
    prompt_salt: str | None = None  # None: a fresh random salt per invocation (see workloads.py)
    max_connections: int = 0  # 0: unlimited
    quiet: bool = False
    use_uvloop: bool = True
    poisson: bool = True  # False: evenly spaced arrivals at the same rate
    temperature: float | None = None  # None: the server's default sampling; 0: greedy
    # Trace workloads: replay speedups (each a run point, its qps the resulting request rate); empty:
    # `qps` are the trace's target mean request rates.
    speedups: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        # A rate names its point in the arrivals' and prompts' seeds (arrivals.derive_seed reads its
        # repr): qps=(4,) from Python must be (4.0,), as the CLI gives, or it sends other conversations.
        object.__setattr__(self, "qps", tuple(float(q) if isinstance(q, int) else q for q in self.qps))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy for the result file (the admin token is never written)."""
        # Not asdict(self): it would copy every request of a trace workload.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("workloads", "slo")}
        data["slo"] = asdict(self.slo)
        data["output_dir"] = str(self.output_dir)
        data["admin_token"] = None if self.admin_token is None else "<set>"
        data["workloads"] = [workload_to_dict(workload) for workload in self.workloads]
        return data


def workload_to_dict(workload: WorkloadSpec) -> dict[str, Any]:
    """A workload for the result file; a file workload is summarised, not copied."""
    if workload.trace is not None:
        return trace_workload_to_dict(workload.name, workload.trace)
    data: dict[str, Any] = {"name": workload.name, "source": workload.source}
    data["num_conversations"] = len(workload.conversations)
    if len(workload.conversations) == 1:
        data["turns"] = [asdict(shape) for shape in workload.conversations[0]]
    else:
        turns = [shape for conversation in workload.conversations for shape in conversation]
        data["num_turns"] = len(turns)
        data["mean_new_words"] = sum(shape.num_new_words for shape in turns) / len(turns)
        data["mean_output_tokens"] = sum(shape.num_output_tokens for shape in turns) / len(turns)
    return data


def trace_workload_to_dict(name: str, workload: TraceWorkload) -> dict[str, Any]:
    """A trace workload for the result file: where it came from, its slice and how much links."""
    trace, links = workload.linked.trace, workload.linked.links
    return {
        "name": name,
        "source": trace.source,
        "trace_format": trace.format,
        "block_size": trace.block_size,
        "num_requests": len(trace.requests),
        "trace_duration_s": trace.duration_s,
        "window_s": [workload.window.start_s, workload.window.end_s],
        "common_head_blocks": len(links.common_head),
        "num_conversations": links.num_conversations,
        "num_linked_requests": links.num_linked,
        "linked_share": round(links.linked_share, 4),
    }


def validate(config: BenchConfig) -> None:
    """Raise UsageError naming the first bad field and what is allowed."""
    checks = [
        (bool(config.workloads), "at least one workload is required"),
        (bool(config.qps or config.speedups) and all(q > 0 for q in config.qps), "qps values must be > 0"),
        (config.duration_s > 0, "duration must be > 0 s"),
        (config.runs >= 1, "runs must be >= 1"),
        (all(is_mode(mode) for mode in config.modes), f"modes must be among {', '.join(MODES)}"),
        (config.think_time_s >= 0, "think time must be >= 0 s"),
        (0 <= config.warmup_s < config.duration_s, "warmup must be >= 0 s and shorter than the duration"),
        (config.request_timeout_s > 0 and config.connect_timeout_s > 0, "timeouts must be > 0 s"),
        (config.drain_timeout_s >= 0, "drain timeout must be >= 0 s"),
        (config.api in ("completions", "chat"), "api must be completions or chat"),
        (config.max_connections >= 0, "max connections must be >= 0 (0: unlimited)"),
        (config.url.startswith(("http://", "https://")), "url must start with http:// or https://"),
        (config.temperature is None or 0 <= config.temperature <= 2, "temperature must be in [0, 2]"),
        (all(speedup > 0 for speedup in config.speedups), "speedups must be > 0"),
    ]
    for passed, message in checks:
        if not passed:
            raise UsageError(message)
    for workload in config.workloads:
        _validate_workload(workload)


def _validate_workload(workload: WorkloadSpec) -> None:
    if workload.trace is not None:
        return  # its reader validated every request
    if not workload.conversations or not all(workload.conversations):
        raise UsageError(f"workload {workload.name}: needs conversations of at least one turn")
    for conversation in workload.conversations:
        for shape in conversation:
            if shape.num_new_words < 1 or shape.num_output_tokens < 1:
                raise UsageError(f"workload {workload.name}: turns need >= 1 new word and >= 1 output token")
