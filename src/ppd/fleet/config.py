"""The typed configuration of one fleet simulation: topology, mode, workload point, engines, HTTP hops."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ppd.bench.config import Api, WorkloadSpec, workload_to_dict
from ppd.bench.metrics import Slo
from ppd.errors import UsageError
from ppd.fleet.connections import IdleConnections
from ppd.fleet.costs import file_values, measured_values, quantiles_problem
from ppd.fleet.proxy_loop import ProxyCpu, measured_proxy_cpu
from ppd.launch.topology import LayoutOptions, Topology, layout_spec, load_file
from ppd.modes import MODES, Mode
from ppd.router.chunks import CHUNK_BYTES, CHUNKS_PER_INSTANCE, KEYED_BYTES, recognition_problem
from ppd.sim.config import SimConfig, sim_config
from ppd.sim.timing import DEFAULT_PROFILE, Profile, load_profile

HOPS_FILE = Path(__file__).parent / "hops.json"


@dataclass(frozen=True)
class HopCosts:
    """What the HTTP path adds around the engines, in ms (one way unless named otherwise).

    Measured on the real-time system by benchmarks/fleet_hops.py (client -> proxy -> `ppd sim` on
    loopback, time scale 1) and stored in hops.json; see docs/fleet.md for how they are split."""

    client_to_proxy_ms: float = 0.0  # bench send -> the proxy has parsed and routed the turn
    proxy_to_engine_ms: float = 0.0  # proxy forwards -> the engine's API server has the request
    engine_to_proxy_ms: float = 0.0  # a step's token (or P's whole answer) -> at the proxy
    proxy_to_client_ms: float = 0.0  # the proxy relays a chunk -> the bench stamps it
    kv_claim_ms: float = 0.0  # D claims P's lease (HTTP round trip between the engines)
    # Real CPU time that grows with the prompt, on top of the engine model's API time: moving,
    # parsing and tokenizing the body at each engine hop, and reading it at the proxy.
    engine_us_per_prompt_token: float = 0.0
    proxy_us_per_prompt_token: float = 0.0
    # A later content chunk's way back (engine -> proxy -> client) costs this much less than the
    # first's, which the hops above (fitted on time to first token) describe: the first pays for the
    # response's start at the engine, the proxy and the client.
    later_chunk_saving_ms: float = 0.0
    # The bench between two turns (fleet.client_gaps): quantiles p0, p10, ..., p100 of the last
    # content chunk -> the stream's end at the client, and of the bench's own work before the next
    # send as a multiple of its fitted line (send_lag_ms + per answer token + per new prompt token).
    # Empty quantiles: no spread (a stream end of 0, the line alone); all zero, as in a hops.json
    # older than them: the next turn leaves the instant the last content chunk arrives.
    stream_end_ms: tuple[float, ...] = ()
    send_lag_ms: float = 0.0
    send_lag_us_per_answer_token: float = 0.0
    send_lag_us_per_prompt_token: float = 0.0
    send_lag_spread: tuple[float, ...] = ()
    # A request that finds no idle kept-alive connection in its client's pool (the bench's to the
    # proxy, the proxy's to an engine) opens one first: this much more than a pooled request's hop.
    client_connect_ms: float = 0.0
    proxy_connect_ms: float = 0.0
    source: str = "zero: no HTTP path"


def measured_hops() -> HopCosts:
    """The hop costs measured from the real-time system (hops.json beside this module)."""
    return HopCosts(**measured_values(HOPS_FILE, HopCosts.__dataclass_fields__))


def hops_from_spec(spec: str) -> HopCosts:
    """HopCosts from a --hops value: `measured` (hops.json), `zero`, or a JSON file of HopCosts keys
    (a result pinned to the figures it was made with, or a faster host's); UsageError otherwise."""
    if spec == "measured":
        return measured_hops()
    if spec == "zero":
        return HopCosts()
    return HopCosts(**file_values("--hops", spec, HopCosts.__dataclass_fields__))


@dataclass(frozen=True)
class EngineOptions:
    """`ppd sim` options every engine of the fleet shares; None takes the profile's default."""

    profile: str = DEFAULT_PROFILE  # a profile name or a JSON path (ppd.sim.timing.load_profile)
    kv_cache_tokens: int | None = None
    max_model_len: int | None = None
    block_size: int = 16
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    kv_bandwidth_gbps: float | None = None
    kv_lease_s: float = 30.0
    special_token_rate: float = 0.0
    seed: int = 0

    def sim_config(self, engine_id: str, profile: Profile | None = None) -> SimConfig:
        """The SimConfig of one engine at time scale 1."""
        return sim_config(
            profile or load_profile(self.profile),
            engine_id=engine_id,
            kv_cache_tokens=self.kv_cache_tokens,
            max_model_len=self.max_model_len,
            block_size=self.block_size,
            max_num_batched_tokens=self.max_num_batched_tokens,
            max_num_seqs=self.max_num_seqs,
            kv_bandwidth_gbps=self.kv_bandwidth_gbps,
            kv_lease_s=self.kv_lease_s,
            special_token_rate=self.special_token_rate,
            seed=self.seed,
        )


@dataclass(frozen=True)
class FleetConfig:
    """One simulated run: a topology in one mode under one (workload, qps, run) point of the bench.

    Arrivals, conversation shapes, prompts, think time, warm-up and SLOs are the bench's
    (ppd.bench.arrivals / workloads / metrics), so the same point through `ppd bench` against HTTP
    engines sends the same conversations at the same times. Times in s unless named otherwise."""

    topology: Topology
    mode: Mode
    workload: WorkloadSpec
    qps: float
    duration_s: float = 60.0
    run: int = 0
    think_time_s: float = 0.0
    seed: int = 0
    warmup_s: float = 0.0
    slo: Slo = field(default_factory=Slo)
    drain_timeout_s: float = 120.0
    api: Api = "completions"
    poisson: bool = True
    prompt_salt: str = "fleet"
    engine: EngineOptions = field(default_factory=EngineOptions)
    hops: HopCosts = field(default_factory=measured_hops)
    # The proxy's event loop: CPU per request and per relayed read (fleet.proxy_loop); what a turn
    # waits behind the other streams' work. ProxyCpu() (zero) leaves only the isolated-turn hops.
    proxy_cpu: ProxyCpu = field(default_factory=measured_proxy_cpu)
    # Kept-alive connections idle at the start (fleet.connections): as a previous run left them
    idle_connections: IdleConnections = field(default_factory=IdleConnections)
    proxy_processes: int = 1  # `ppd proxy` processes sharing the conversations (one, as `ppd up`)
    pd_decode_affinity: bool = True
    warm_kv_links: bool = True  # every P -> D link connected before the run, as `ppd up` warms them
    route_slo_ttft_ms: float | None = None  # the proxy's --slo-ttft-ms (auto mode's routing target)
    route_slo_tpot_ms: float | None = None
    record_itl: bool = False  # keep every inter-token gap in the rows (memory grows with tokens)
    decode_runs: bool = True  # price runs of identical decode steps at once (exact; False: per step)
    send_session_id: bool = True  # False: as `ppd bench --no-session-id` (the router recognises turns)
    history_chunk_bytes: int = CHUNK_BYTES  # the proxy's --history-chunk-bytes (router/chunks.py)
    history_chunks_per_instance: int = CHUNKS_PER_INSTANCE  # the proxy's --history-chunks-per-instance
    history_keyed_bytes: int = KEYED_BYTES  # the proxy's --history-keyed-bytes

    def __post_init__(self) -> None:
        # qps names the point in its prompts' seeds (bench.arrivals.derive_seed, which reads its
        # repr) and its rows: qps=16 from Python must be 16.0, as the CLI and the compiled build
        # (which stores a float field as a float) have it, or the prompts differ.
        if isinstance(self.qps, int):
            object.__setattr__(self, "qps", float(self.qps))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy for the result file."""
        # Not asdict(self) whole: it would copy every request of a trace workload.
        data = {
            name: asdict(value)
            if name in ("slo", "engine", "hops", "proxy_cpu", "idle_connections")
            else value
            for name, value in ((f, getattr(self, f)) for f in self.__dataclass_fields__)
        }
        data["topology"] = topology_to_dict(self.topology)
        data["workload"] = workload_to_dict(self.workload)
        return data


def validate(config: FleetConfig) -> None:
    """Raise UsageError naming the first bad field and what is allowed."""
    checks = [
        (config.mode in MODES, f"mode must be one of {', '.join(MODES)}, got {config.mode!r}"),
        (config.qps > 0, "qps must be > 0"),
        (config.duration_s > 0, "duration must be > 0 s"),
        (config.think_time_s >= 0, "think time must be >= 0 s"),
        (0 <= config.warmup_s < config.duration_s, "warmup must be >= 0 s and shorter than the duration"),
        (config.drain_timeout_s >= 0, "drain timeout must be >= 0 s"),
        (config.api in ("completions", "chat"), "api must be completions or chat"),
        (0 <= config.engine.special_token_rate <= 1, "special token rate must be in 0..1"),
        (all(value >= 0 for value in _hop_values(config.hops)), "hop costs must be >= 0 ms"),
        (not quantiles_problem(config.hops), quantiles_problem(config.hops)),
        (all(value >= 0 for value in _hop_values(config.proxy_cpu)), "proxy CPU costs must be >= 0 us"),
        (config.proxy_processes >= 1, "proxy processes must be >= 1"),
    ]
    for passed, message in checks:
        if not passed:
            raise UsageError(message)
    problem = recognition_problem(
        config.history_chunk_bytes, config.history_chunks_per_instance, config.history_keyed_bytes
    )
    if problem:
        raise UsageError(problem)
    if config.workload.trace is None and (
        not config.workload.conversations or not all(config.workload.conversations)
    ):
        raise UsageError(f"workload {config.workload.name}: needs conversations of at least one turn")


def _hop_values(costs: HopCosts | ProxyCpu) -> list[float]:
    """Every cost of the dataclass, the quantiles' values included."""
    values: list[float] = []
    for value in asdict(costs).values():
        if isinstance(value, tuple):
            values.extend(value)
        elif isinstance(value, float | int):
            values.append(value)
    return values


def fleet_topology(spec: str) -> Topology:
    """A `ppd up` topology: a spec (1p1d, 3p5d, 8r, 1p1d2r) or a TOML file path."""
    path = Path(spec)
    if spec.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise UsageError(f"topology file {spec} does not exist")
        return load_file(path)
    return layout_spec(spec, LayoutOptions())


def topology_to_dict(topology: Topology) -> dict[str, Any]:
    """The topology as the result file records it."""
    return {
        "source": topology.source,
        "instances": [{"name": i.name, "role": i.role, "url": i.url} for i in topology.instances],
    }
