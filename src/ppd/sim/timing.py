"""The time model: how long one engine step, a request's API handling and a KV pull take.

A step's duration is a linear function of what the step computes (see `step_duration_s`):

    step_ms = base_ms
            + max(prefill_min_ms, prefill_token_us/1e3 * prefill tokens)   (if the step has prefill;
                                                                     the floor only without decodes)
            + attention_pair_ns/1e6  * (query, key) pairs attended by prefill tokens
            + decode_seq_us/1e3      * decoding sequences
            + decode_context_ns/1e6  * context tokens read by decoding sequences
            + eager_step_ms          (if the step schedules more than cudagraph_max_tokens tokens)
            + mixed_step_ms          (if a multi-token prefill chunk runs beside decodes)
            + mixed_context_ns/1e6   * context tokens read by the decodes of such a step (optional, 0)

The eager term: vLLM captures CUDA graphs for batches of up to 512 tokens; a bigger batch (a 512-token
prefill plus any decode) runs without them and pays the kernel launches (~18 ms on the 2x H100 runs:
results/h100x2-vllm0.25.1-nixl/README.md). A batch of decodes alone (every request one token, a D's
one-token recompute included) replays a full CUDA graph; a multi-token chunk beside decodes runs the
piecewise graphs with attention outside them: `mixed_step_ms` (one H200: +6 ms for a 128-token chunk
beside 32 decodes; results/h200-vllm0.25.1-single/README.md).

A request first spends `api_overhead_ms + api_overhead_per_token_us x prompt tokens` in the API
server (HTTP, tokenizing, hashing); the API server is one serial resource per engine that also
streams every output token (`ApiServer`: intakes queue, and slow down while the engine streams).
A KV pull waits `kv_handshake_ms` (plus a one-off `kv_first_connect_ms` for the first pull of a
pair), then occupies D's engine loop for `kv_pull_duration_s`: NIXL posts one copy per descriptor (a
block of one layer's K or V) from D's worker, so the pull costs per descriptor and blocks D's steps
meanwhile (vLLM's nixl_post_time ~ nixl_xfer_time in the kv probes). Profiles are JSON files (see
`profiles/`); their parameters are fitted by `benchmarks/sim_calibration.py --fit`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ppd.sim.memory import GpuMemory

PROFILES_DIR = Path(__file__).parent / "profiles"
DEFAULT_PROFILE = "h100-llama3.1-8b"


class ProfileError(ValueError):
    """A profile file that cannot be used; the message says what was wrong."""


@dataclass(frozen=True)
class StepCosts:
    """Coefficients of the step-time formula."""

    base_ms: float
    prefill_min_ms: float  # a step with any prefill costs at least this for its prefill part
    prefill_token_us: float
    attention_pair_ns: float
    decode_seq_us: float
    decode_context_ns: float
    cudagraph_max_tokens: int  # largest batch (tokens) that runs as a captured CUDA graph
    eager_step_ms: float  # extra cost of a step above cudagraph_max_tokens (no CUDA graph)
    mixed_step_ms: float  # extra cost of a multi-token prefill chunk beside decodes (piecewise graphs)
    # extra cost per context token of the decodes in such a step (their attention runs in the
    # prefill's kernel); optional in a profile file, 0 where not fitted
    mixed_context_ns: float = 0.0


@dataclass(frozen=True)
class Profile:
    """One engine + model + GPU: step costs, overheads and KV-transfer parameters."""

    name: str
    source: str
    step: StepCosts
    api_overhead_ms: float  # per request: HTTP, JSON, hand-off to the engine core and back
    api_overhead_per_token_us: float  # per prompt token: tokenizing, block hashing, moving token ids
    # The API server is one process per engine (ApiServer below): each streamed token costs it
    # api_stream_token_us, each engine step with output api_step_us, each request api_request_ms
    # (the load it puts on others); steps of more than api_merge_max_seqs outputs cannot merge a
    # stream's tokens; an intake shares the server with at most api_max_load going to the others.
    # All 0: no such costs (the H100 profile).
    api_stream_token_us: float
    api_step_us: float
    api_request_ms: float
    api_merge_max_seqs: int
    api_max_load: float
    kv_bytes_per_token: int
    kv_bandwidth_gbps: float  # GB/s (1e9 bytes/s) of the link, on top of the per-descriptor cost
    kv_descriptors_per_block: int  # NIXL descriptors per KV block: layers x 2 (K and V)
    kv_descriptor_us: float  # D's cost of posting one descriptor's copy
    kv_handshake_ms: float  # per pull: D's request to P, notification, scheduling around it
    kv_first_connect_ms: float  # once per engine pair: NIXL connection setup
    default_max_model_len: int
    # KV capacity: from the memory model (sim/memory.py), or a measured figure (vLLM's "GPU KV cache
    # size: N tokens" log line), which wins when a profile gives it. Exactly one is required.
    memory: GpuMemory | None = None
    default_kv_cache_tokens: int | None = None
    # vLLM's asynchronous scheduling (the default of vLLM 0.25; --no-async-scheduling turns it
    # off): batch k+1 is decided while batch k runs, so a request that arrives during a step joins
    # the batch after next (EngineCore.add_request). Optional in a profile file; off (the engine
    # schedules after each step, as vLLM's synchronous loop does) unless a profile turns it on.
    async_scheduling: bool = False
    # vLLM's API-server intake queue (ApiServer.intake_done_s); optional in a profile file, off (0,
    # False) unless a profile turns it on. api_intake_turns: the event-loop turns an intake takes
    # once a step has more outputs than vLLM's output handler takes at once (128), each behind one
    # step's output. api_serial_tokenizer: prompts wait for vLLM's one tokenizer thread, which
    # takes those that waited in one batch (not tokenized at once, side by side).
    api_intake_turns: int = 0
    api_serial_tokenizer: bool = False


@dataclass(init=False, slots=True)
class BatchShape:
    """What one step computes, in the units the time model charges for."""

    num_prefill_tokens: int
    num_attention_pairs: int
    num_decode_seqs: int
    num_decode_context_tokens: int
    num_prefill_chunks: int  # requests computing more than one token this step

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        num_prefill_tokens: int = 0,
        num_attention_pairs: int = 0,
        num_decode_seqs: int = 0,
        num_decode_context_tokens: int = 0,
        num_prefill_chunks: int = 0,
    ) -> None:
        self.num_prefill_tokens = num_prefill_tokens
        self.num_attention_pairs = num_attention_pairs
        self.num_decode_seqs = num_decode_seqs
        self.num_decode_context_tokens = num_decode_context_tokens
        self.num_prefill_chunks = num_prefill_chunks


def step_duration_s(costs: StepCosts, shape: BatchShape) -> float:
    """Modeled wall time of one engine step, in seconds (before time scaling)."""
    prefill_ms = costs.prefill_token_us * 1e-3 * shape.num_prefill_tokens
    if shape.num_prefill_tokens and not shape.num_decode_seqs:
        # The floor is a forward pass of its own; beside decodes the pass runs anyway and a few
        # prefill tokens (D's 1-token recompute after a KV pull) cost what they compute.
        prefill_ms = max(costs.prefill_min_ms, prefill_ms)
    total_ms = (
        costs.base_ms
        + prefill_ms
        + costs.attention_pair_ns * 1e-6 * shape.num_attention_pairs
        + costs.decode_seq_us * 1e-3 * shape.num_decode_seqs
        + costs.decode_context_ns * 1e-6 * shape.num_decode_context_tokens
    )
    if shape.num_prefill_tokens + shape.num_decode_seqs > costs.cudagraph_max_tokens:
        total_ms += costs.eager_step_ms
    if shape.num_prefill_chunks and shape.num_decode_seqs:
        total_ms += costs.mixed_step_ms + costs.mixed_context_ns * 1e-6 * shape.num_decode_context_tokens
    return total_ms * 1e-3


def decode_step_durations_s(
    costs: StepCosts, num_seqs: int, context_tokens: int, num_steps: int
) -> list[float]:
    """step_duration_s of num_steps consecutive decode-only steps of num_seqs sequences, the first
    over context_tokens, each later one over num_seqs more: the same floats as step_duration_s gives
    (its zero prefill terms add exactly nothing), computed without building a BatchShape per step."""
    head_ms = costs.base_ms + costs.decode_seq_us * 1e-3 * num_seqs
    context_ms = costs.decode_context_ns * 1e-6
    contexts = range(context_tokens, context_tokens + num_steps * num_seqs, num_seqs)
    if num_seqs > costs.cudagraph_max_tokens:
        eager_ms = costs.eager_step_ms
        return [(head_ms + context_ms * context + eager_ms) * 1e-3 for context in contexts]
    return [(head_ms + context_ms * context) * 1e-3 for context in contexts]


INTAKE_LOAD_WINDOW_S = 1.0  # time constant of the recent-requests share of the API server
# vLLM's VLLM_V1_OUTPUT_PROC_CHUNK_SIZE (default 128): the API server's output handler takes a step's
# outputs in chunks of this many and lets other tasks run between chunks (AsyncLLM.output_handler)
OUTPUT_PROC_CHUNK_SIZE = 128


@dataclass(slots=True)
class ApiServer:
    """vLLM's API server process of one engine as a serial resource, on the driver's clock.

    One process takes in every request and detokenizes and streams every output token. Measured on
    one H200 (tools/api_probe.py, results/h200-vllm0.25.1-single/README.md, "The API server"):

    - Each engine step's output costs it `step_cost_s + n x stream_token_s` (n tokens). With up to
      `merge_max_seqs` sequences in a step (vLLM's output-processing chunk, 128), a stream the server
      falls behind on gets its tokens merged into one chunk, so the clients get the engine's pace:
      step_s leaves the step alone. Above it every token is a chunk of its own: when the step's
      output takes longer than the engine's step, the server sets the clients' pace (step_s) and the
      engine runs ahead of it, so the server falls further behind every second, by stretched / engine
      - 1 (`backlog_s`: 128 streams kept pace, 256 fell ~1 s behind per second). A new request's
      first token waits for that backlog; steps the server keeps up with, and idle time, drain it.
    - A new request's intake (api_overhead_s) shares the server with streaming and with the other
      recent requests (`request_s` of server time each, intake and finish): it takes
      `intake / (1 - load)`, load at most max_load.
    - The intake queue (both parts off unless a profile turns them on): the server is one asyncio
      thread, and an intake is a coroutine that gives the loop up at every await (reading the body,
      the tokenizer's queue and thread, the hand-off to the engine core) and waits for its next
      turn behind the work queued meanwhile. Once a step has more outputs than the output handler
      takes at once (OUTPUT_PROC_CHUNK_SIZE), every turn comes after a whole step's output: the
      intake takes `intake_turns` steps more (traced on one H200 at W1 16-24/s and W3 8/s: send ->
      schedule grows from ~20-80 ms to 100-430 ms once more than 128 streams run, 9.4 steps' worth
      at the median; results/h200-vllm0.25.1-single/session6/intake_turns.py). And vLLM tokenizes
      in one worker thread (its
      AsyncMicrobatchTokenizer's single-thread executor, which takes the prompts waiting for it
      in one batch call): with `serial_tokenizer` a prompt that comes while the thread is busy
      waits for the batch in progress (`tokenized_s`), instead of being tokenized at once.
    """

    stream_token_s: float  # per output token, driver clock
    step_cost_s: float  # per engine step that has output
    request_s: float  # server time per request (intake, finish), for the load it puts on others
    merge_max_seqs: int  # above this many outputs in a step, each token is a chunk of its own
    max_load: float  # the most of the server the others take from an intake
    stream_load: float = 0.0  # share of the server the step in flight's output takes
    intake_load: float = 0.0  # recent requests' share, decaying with INTAKE_LOAD_WINDOW_S
    intake_load_at_s: float = 0.0
    backlog_s: float = 0.0  # how far the server is behind the engine's output
    backlog_at_s: float = 0.0  # the end of the last step backlog_s accounts for
    intake_turns: int = 0  # loop turns of an intake behind a step's output each (0: no such wait)
    serial_tokenizer: bool = False  # one tokenizer thread, taking the prompts that wait in batches
    tokenizer_busy_until_s: float = 0.0  # the end of the batch that thread is running
    tokenizer_next_until_s: float = 0.0  # the end of the batch that waits behind it (0: none)
    step_in_flight_s: float = 0.0  # the step now running, as the clients see it
    outputs_in_flight: int = 0  # the outputs it streams

    @property
    def enabled(self) -> bool:
        return self.stream_token_s > 0 or self.step_cost_s > 0 or self.request_s > 0

    def output_s(self, num_output_tokens: int) -> float:
        """Server time to detokenize and stream one step's output."""
        if not num_output_tokens:
            return 0.0
        return self.step_cost_s + num_output_tokens * self.stream_token_s

    def recent_requests_share(self, at_s: float) -> float:
        """The share of the server recent requests take at at_s (it decays between them)."""
        return self.intake_load * math.exp(-max(0.0, at_s - self.intake_load_at_s) / INTAKE_LOAD_WINDOW_S)

    def merges_output(self, num_output_tokens: int) -> bool:
        """Whether a step's tokens can be merged into chunks (step_s then leaves the step alone)."""
        return num_output_tokens <= self.merge_max_seqs

    def step_s(self, engine_step_s: float, num_output_tokens: int, since_s: float | None = None) -> float:
        """A step's duration as the clients see it: the engine's, or, when its tokens cannot be merged,
        the server's time to stream them with what the recent requests leave it (since_s: the end of
        the step before, backlog_at_s by default)."""
        if self.merges_output(num_output_tokens):
            return engine_step_s
        share = min(
            self.max_load, self.recent_requests_share(self.backlog_at_s if since_s is None else since_s)
        )
        return max(engine_step_s, self.output_s(num_output_tokens) / (1.0 - share))

    def start_step(self, duration_s: float, num_output_tokens: int) -> None:
        """The share of the server the step now running takes (what an intake meanwhile competes with)."""
        self.stream_load = self.output_s(num_output_tokens) / duration_s if duration_s > 0 else 0.0
        self.step_in_flight_s, self.outputs_in_flight = duration_s, num_output_tokens

    def backlog_after(
        self, backlog_s: float, since_s: float, end_s: float, engine_step_s: float, duration_s: float,
        num_output_tokens: int,
    ) -> float:  # fmt: skip
        """The backlog after a step ending at end_s, from backlog_s at since_s (pure: decode runs
        price their steps' backlogs ahead)."""
        idle_s = end_s - duration_s - since_s  # no output to stream: the server catches up
        backlog_s = max(0.0, backlog_s - max(0.0, idle_s))
        if duration_s > engine_step_s > 0:  # the engine ran ahead of the clients all this step
            return backlog_s + duration_s * (duration_s / engine_step_s - 1.0)
        if not self.merges_output(num_output_tokens):
            busy_s = self.output_s(num_output_tokens)
        else:  # a stream it is behind on gets merged chunks: catching up costs the step's share
            busy_s = self.step_cost_s if num_output_tokens else 0.0
        return max(0.0, backlog_s - max(0.0, duration_s - busy_s))

    def record_step(
        self, end_s: float, engine_step_s: float, duration_s: float, num_output_tokens: int
    ) -> None:
        """Account a step that ended at end_s."""
        self.backlog_s = self.backlog_after(
            self.backlog_s, self.backlog_at_s, end_s, engine_step_s, duration_s, num_output_tokens
        )
        self.backlog_at_s = end_s

    def backlog_now_s(self, now_s: float, engine_busy: bool) -> float:
        """The backlog at now_s: it drains while the engine idles."""
        if engine_busy:
            return self.backlog_s
        return max(0.0, self.backlog_s - max(0.0, now_s - self.backlog_at_s))

    def intake_done_s(
        self,
        now_s: float,
        intake_s: float,
        streaming: bool,
        engine_busy: bool = True,
        tokenize_s: float = 0.0,
    ) -> float:
        """When an intake arriving at now_s is through and its first token can come out: its own work
        (intake_s) slowed by the server's load, its tokenizing (tokenize_s: vLLM tokenizes in a
        worker thread, off the server's loop) not, then behind the server's backlog; with the
        intake queue on, plus its loop turns behind a streaming step's output and its place in the
        tokenizer thread's queue."""
        recent_load = self.recent_requests_share(now_s)
        load = min(self.max_load, (self.stream_load if streaming else 0.0) + recent_load)
        self.intake_load = recent_load + self.request_s / INTAKE_LOAD_WINDOW_S
        self.intake_load_at_s = now_s
        intake_s /= 1.0 - load
        if streaming:
            intake_s += self.turns_wait_s()
        if self.serial_tokenizer:
            tokenize_s = self.tokenized_s(now_s, tokenize_s) - now_s
        return now_s + intake_s + tokenize_s + self.backlog_now_s(now_s, engine_busy)

    def tokenized_s(self, now_s: float, tokenize_s: float) -> float:
        """When a prompt that reaches the tokenizer thread at now_s is tokenized. vLLM's one thread
        (AsyncMicrobatchTokenizer) takes the prompts that waited for it in one batch call: a prompt
        that comes while a batch runs is tokenized with the others that came meanwhile, in the batch
        after it, each taking its own time."""
        if self.tokenizer_next_until_s and now_s >= self.tokenizer_busy_until_s:  # that batch began
            self.tokenizer_busy_until_s, self.tokenizer_next_until_s = self.tokenizer_next_until_s, 0.0
        if now_s >= self.tokenizer_busy_until_s:  # the thread is free: a batch of its own, at once
            self.tokenizer_busy_until_s = now_s + tokenize_s
            return self.tokenizer_busy_until_s
        done_s = self.tokenizer_busy_until_s + tokenize_s
        self.tokenizer_next_until_s = max(self.tokenizer_next_until_s, done_s)
        return done_s

    def turns_wait_s(self) -> float:
        """What an intake's loop turns add while the step in flight streams: a step's output per
        turn once the step has more outputs than the output handler takes at once, nothing below
        that (the traces: the loop then turns over within the step)."""
        if not self.intake_turns or self.outputs_in_flight <= OUTPUT_PROC_CHUNK_SIZE:
            return 0.0
        return self.intake_turns * self.step_in_flight_s


def api_overhead_s(profile: Profile, num_prompt_tokens: int) -> float:
    """Modeled time a request spends in the API server before the engine sees it, in seconds."""
    return (profile.api_overhead_ms + profile.api_overhead_per_token_us * 1e-3 * num_prompt_tokens) * 1e-3


def prefill_attention_pairs(num_computed_tokens: int, num_new_tokens: int) -> int:
    """(query, key) pairs of a causal prefill chunk of num_new_tokens after num_computed_tokens."""
    return num_new_tokens * num_computed_tokens + num_new_tokens * (num_new_tokens + 1) // 2


def transfer_duration_s(num_tokens: int, kv_bytes_per_token: int, bandwidth_gbps: float) -> float:
    """Seconds the link is busy moving the KV of num_tokens tokens."""
    return num_tokens * kv_bytes_per_token / (bandwidth_gbps * 1e9)


def kv_pull_duration_s(profile: Profile, num_blocks: int, block_size: int, bandwidth_gbps: float) -> float:
    """Seconds a pull of num_blocks blocks occupies D: per-descriptor posting plus the bytes on the link.

    Fitted to the kv probes (results/h100x2-vllm0.25.1-nixl/raw): 8192 tokens took 125 ms at block 16
    (32,768 descriptors), ~50 ms at 64 and 17 ms at 128 for the same 1 GiB."""
    num_descriptors = num_blocks * profile.kv_descriptors_per_block
    return num_descriptors * profile.kv_descriptor_us * 1e-6 + transfer_duration_s(
        num_blocks * block_size, profile.kv_bytes_per_token, bandwidth_gbps
    )


def load_profile(name_or_path: str) -> Profile:
    """Load a profile by name (a file in profiles/) or by path to a JSON file."""
    is_path = name_or_path.endswith(".json") or "/" in name_or_path
    path = Path(name_or_path) if is_path else PROFILES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.json")))
        raise ProfileError(f"no profile {name_or_path!r}: give one of [{known}] or a path to a JSON file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {path} is not valid JSON: {exc}") from exc
    return profile_from_dict(data, str(path))


def profile_from_dict(data: dict[str, Any], where: str = "profile") -> Profile:
    """Build a Profile from its JSON form; unknown or missing keys are errors."""
    data = {key: value for key, value in data.items() if not key.startswith("_")}
    data.pop("reference", None)  # documentation of what the fit used; not a parameter
    data.pop("fit", None)
    step = _build(StepCosts, data.pop("step", None), f"{where}: step", {"mixed_context_ns"})
    memory = data.pop("memory", None)
    kv_tokens = data.pop("default_kv_cache_tokens", None)
    if (memory is None) == (kv_tokens is None):
        raise ProfileError(
            f"{where}: give exactly one of memory (GPU memory, GiB) and default_kv_cache_tokens"
        )
    if isinstance(memory, dict):
        memory = {key: value for key, value in memory.items() if not key.startswith("_")}
    if memory is not None:
        memory = _build(GpuMemory, memory, f"{where}: memory")
    optional = {
        "memory", "default_kv_cache_tokens", "async_scheduling", "api_intake_turns", "api_serial_tokenizer"
    }  # fmt: skip
    # Checked before the Profile is made: the compiled build's Profile refuses a float for an int
    # field with a TypeError that names no key.
    turns = data.get("api_intake_turns", 0)
    if isinstance(turns, bool) or not isinstance(turns, int) or turns < 0:
        raise ProfileError(f"{where}: api_intake_turns must be a whole number >= 0, got {turns!r}")
    if not isinstance(data.get("api_serial_tokenizer", False), bool):
        raise ProfileError(f"{where}: api_serial_tokenizer must be true or false")
    profile: Profile = _build(Profile, {**data, "step": step}, where, optional)
    return replace(profile, memory=memory, default_kv_cache_tokens=kv_tokens)


def _build(cls: Any, data: Any, where: str, optional: frozenset[str] | set[str] = frozenset()) -> Any:
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected an object with keys {[f.name for f in fields(cls)]}")
    names = {f.name for f in fields(cls)}
    unknown, missing = set(data) - names, names - set(data) - set(optional)
    if unknown or missing:
        raise ProfileError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    return cls(**data)
