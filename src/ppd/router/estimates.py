"""Running estimates of the engines' speed, fitted online from what the proxy itself observes.

The auto mode (auto.py) needs three small time models, all in milliseconds of real time:

    decode step     step_ms(N)        = step_base_ms  + step_per_decode_ms  * N    N: running decodes
    prefill answer  ttft_ms - step(N) = prefill_fixed_ms + prefill_ms_per_token * (Q + n)
    KV pull         d_ttft_ms - step(N)   = kv_fixed_ms + kv_ms_per_token * m       (Q = 0 at D)

Observations, taken from every completed turn whatever the mode:

- decode: the mean gap between the first and last relayed byte of an answer, per output token
  ((last - first) / (output tokens - 1), chunk gaps), against the target's running decodes when the
  request was sent (+1, itself);
- prefill: the TTFT of a turn served locally (target sent -> first byte), against the prefill tokens
  queued at the target when it was sent (Q) plus the tokens it had to prefill itself (n = prompt -
  cached, from the answer's usage); and P's answer time of a turn-1 PD prefill (x-ppd-prefill-ms;
  later turns are left out because P's prefix cache may hold part of the prompt, which the proxy
  cannot see);
- KV pull: the TTFT at D of a PD turn (D sent -> first byte) less D's step, against the tokens D
  had to pull (m = the prompt, less the history when D held the conversation); only turns that found
  no prefill queued at D, whose wait would otherwise be mistaken for transfer time;
- the mean output length: a running mean of `usage.completion_tokens`.

Each line is a least-squares fit in which older observations weigh geometrically less (`forget`
per observation, so ~1/(1 - forget) observations count), started from a prior: the H100 figures
of ../shared/calibration (vLLM 0.25.1, Llama-3.1-8B), whose weight decays the same way down to a
floor, so a fit whose x never varies still has a slope (LinearFit). All
instances share the fits (they are assumed to be the same GPU and model); their load, which is what
differs between them, comes from the proxy's live counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ppd.modes import ROUTE_PD, RouteKind
from ppd.router.auto import AutoInputs, AutoModel, InstanceCosts

_MIN_GAPS_FOR_STEP = 3  # fewer chunk gaps than this say little about the step time
_OUTPUT_MEAN_WEIGHT = 0.1  # weight of the newest answer in the running mean of output tokens


@dataclass
class LinearFit:
    """y ≈ a + b·x by least squares; old observations fade by `forget` each; starts from a prior line.

    The prior acts twice, with a weight that decays like an observation's down to a floor: as that
    much weight on the prior line's value at the data's mean x (the level), and as a ridge pulling
    the slope toward the prior's over the prior's x range (so a fit whose x never varies keeps the
    prior slope). With no data the fit is the prior line.
    """

    prior_a: float
    prior_b: float
    prior_x: tuple[float, float]  # the x range the prior slope is trusted over
    forget: float = 0.97
    prior_weight: float = 2.0  # weight of the prior now, in observations
    prior_weight_floor: float = 0.05
    num_observations: int = 0
    _sums: list[float] = field(default_factory=lambda: [0.0] * 5)  # w, wx, wy, wxx, wxy of the data

    def observe(self, x: float, y: float) -> None:
        """Add one observation; every earlier one (and the prior) weighs `forget` times less."""
        sums = self._sums
        for index, value in enumerate((1.0, x, y, x * x, x * y)):
            sums[index] = sums[index] * self.forget + value
        self.prior_weight = max(self.prior_weight_floor, self.prior_weight * self.forget)
        self.num_observations += 1

    def coefficients(self) -> tuple[float, float]:
        """(a, b) of the fit, with a ≥ 0 and b ≥ 0 (times and rates are never negative)."""
        w, wx, wy, wxx, wxy = self._sums
        if w <= 0.0:
            return self.prior_a, self.prior_b
        mean_x, mean_y = wx / w, wy / w
        prior_level = self.prior_a + self.prior_b * mean_x
        level = max(0.0, (w * mean_y + self.prior_weight * prior_level) / (w + self.prior_weight))
        spread = (self.prior_x[1] - self.prior_x[0]) / 2.0
        ridge = self.prior_weight * spread * spread
        sxx, sxy = max(0.0, wxx - w * mean_x * mean_x), wxy - w * mean_x * mean_y
        slope = max(0.0, (sxy + ridge * self.prior_b) / (sxx + ridge))
        intercept = level - slope * mean_x
        if intercept < 0.0:  # keep the fit right at the data, through the origin
            return 0.0, (level / mean_x if mean_x > 0 else slope)
        return intercept, slope

    def predict(self, x: float) -> float:
        """a + b·x of the current fit."""
        a, b = self.coefficients()
        return a + b * x


@dataclass(frozen=True)
class Priors:
    """Starting values (ms, tokens): real vLLM 0.25.1 on one H100, Llama-3.1-8B (calibration README)."""

    step_base_ms: float = 6.4
    step_per_decode_ms: float = 0.077  # 6.45 ms at batch 1 .. 16.2 ms at batch 128
    prefill_fixed_ms: float = 15.0
    prefill_ms_per_token: float = 0.022
    kv_fixed_ms: float = 35.0
    kv_ms_per_token: float = 0.0175  # 128 KiB per token at ~7.5 GB/s
    mean_output_tokens: float = 128.0


@dataclass(init=False, frozen=True, slots=True)
class HopLoad:
    """An instance's load when a request was sent to it: queued prefill tokens, running decodes."""

    queued_prefill_tokens: int
    running_decodes: int

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(self, queued_prefill_tokens: int, running_decodes: int) -> None:
        object.__setattr__(self, "queued_prefill_tokens", queued_prefill_tokens)
        object.__setattr__(self, "running_decodes", running_decodes)


@dataclass(init=False, frozen=True, slots=True)
class TurnObservation:
    """What one completed turn showed; stamps are seconds on the router's clock, times ms."""

    route_kind: RouteKind  # pd pulled the KV from P; anything else prefilled at the target
    target_url: str
    holder_url: str | None
    num_prompt_tokens: int
    num_history_tokens: int
    is_first_turn: bool
    usage: dict[str, Any] | None
    target_load: HopLoad | None
    target_sent_s: float | None
    first_byte_s: float | None
    last_byte_s: float | None
    prefill_load: HopLoad | None = None
    prefill_ms: float | None = None

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        route_kind: RouteKind,
        target_url: str,
        holder_url: str | None,
        num_prompt_tokens: int,
        num_history_tokens: int,
        is_first_turn: bool,
        usage: dict[str, Any] | None,
        target_load: HopLoad | None,
        target_sent_s: float | None,
        first_byte_s: float | None,
        last_byte_s: float | None,
        prefill_load: HopLoad | None = None,
        prefill_ms: float | None = None,
    ) -> None:
        object.__setattr__(self, "route_kind", route_kind)
        object.__setattr__(self, "target_url", target_url)
        object.__setattr__(self, "holder_url", holder_url)
        object.__setattr__(self, "num_prompt_tokens", num_prompt_tokens)
        object.__setattr__(self, "num_history_tokens", num_history_tokens)
        object.__setattr__(self, "is_first_turn", is_first_turn)
        object.__setattr__(self, "usage", usage)
        object.__setattr__(self, "target_load", target_load)
        object.__setattr__(self, "target_sent_s", target_sent_s)
        object.__setattr__(self, "first_byte_s", first_byte_s)
        object.__setattr__(self, "last_byte_s", last_byte_s)
        object.__setattr__(self, "prefill_load", prefill_load)
        object.__setattr__(self, "prefill_ms", prefill_ms)


class Estimates:
    """The proxy's running estimates (one per proxy; kept across mode switches and clears)."""

    def __init__(self, priors: Priors | None = None, forget: float = 0.97) -> None:
        p = priors or Priors()
        self.step = LinearFit(p.step_base_ms, p.step_per_decode_ms, (1.0, 128.0), forget)
        self.prefill = LinearFit(p.prefill_fixed_ms, p.prefill_ms_per_token, (512.0, 8192.0), forget)
        self.kv = LinearFit(p.kv_fixed_ms, p.kv_ms_per_token, (512.0, 8192.0), forget)
        self.mean_output_tokens = p.mean_output_tokens
        self.num_outputs = 0

    def instance_costs(self, url: str, queued_prefill_tokens: int, running_decodes: int) -> InstanceCosts:
        """The cost model's view of one instance with this load."""
        step_base_ms, step_per_decode_ms = self.step.coefficients()
        prefill_fixed_ms, prefill_ms_per_token = self.prefill.coefficients()
        return InstanceCosts(
            url,
            queued_prefill_tokens,
            running_decodes,
            step_base_ms,
            step_per_decode_ms,
            prefill_fixed_ms,
            prefill_ms_per_token,
        )

    def model(self, slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None) -> AutoModel:
        """KV transfer, output length and SLOs for the cost model."""
        kv_fixed_ms, kv_ms_per_token = self.kv.coefficients()
        return AutoModel(kv_fixed_ms, kv_ms_per_token, self.mean_output_tokens, slo_ttft_ms, slo_tpot_ms)

    def inputs(self, slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None) -> AutoInputs:
        """A frozen snapshot for one routing decision (instances' load is filled in by the router)."""
        return AutoInputs(self.model(slo_ttft_ms, slo_tpot_ms), self.instance_costs("", 0, 0))

    def observe(self, turn: TurnObservation) -> None:
        """Learn from one completed turn (see the module docstring for what each fit takes)."""
        num_output_tokens = _usage_int(turn.usage, "completion_tokens")
        if num_output_tokens is not None:
            self._observe_output(num_output_tokens)
        if turn.prefill_ms is not None and turn.prefill_load is not None and turn.is_first_turn:
            self._observe_prefill(turn.prefill_load, turn.num_prompt_tokens, turn.prefill_ms)
        load = turn.target_load
        if load is None or turn.target_sent_s is None or turn.first_byte_s is None:
            return
        num_gaps = (num_output_tokens or 0) - 1
        if num_gaps >= _MIN_GAPS_FOR_STEP and turn.last_byte_s is not None:
            gap_ms = (turn.last_byte_s - turn.first_byte_s) * 1000.0 / num_gaps
            self.step.observe(load.running_decodes + 1, gap_ms)
        ttft_ms = (turn.first_byte_s - turn.target_sent_s) * 1000.0
        if turn.route_kind == ROUTE_PD:
            if load.queued_prefill_tokens == 0:  # D's own queue would be mistaken for transfer time
                self._observe_pull(turn, load, ttft_ms)
        else:
            num_cached = _cached_tokens(turn.usage)
            num_prompt = _usage_int(turn.usage, "prompt_tokens") or turn.num_prompt_tokens
            self._observe_prefill(load, max(0, num_prompt - num_cached), ttft_ms)

    def _observe_output(self, num_output_tokens: int) -> None:
        weight = max(_OUTPUT_MEAN_WEIGHT, 1.0 / (self.num_outputs + 2))  # the prior counts as one answer
        self.mean_output_tokens += weight * (num_output_tokens - self.mean_output_tokens)
        self.num_outputs += 1

    def _observe_prefill(self, load: HopLoad, num_tokens: int, answer_ms: float) -> None:
        step_ms = self.step.predict(load.running_decodes)
        self.prefill.observe(load.queued_prefill_tokens + num_tokens, answer_ms - step_ms)

    def _observe_pull(self, turn: TurnObservation, load: HopLoad, ttft_ms: float) -> None:
        pulled_history = turn.holder_url == turn.target_url
        num_pulled = turn.num_prompt_tokens - (turn.num_history_tokens if pulled_history else 0)
        self.kv.observe(max(0, num_pulled), ttft_ms - self.step.predict(load.running_decodes))

    def status(self) -> dict[str, Any]:
        """The current estimates, as /status shows them (ms, tokens)."""
        step_base_ms, step_per_decode_ms = self.step.coefficients()
        prefill_fixed_ms, prefill_ms_per_token = self.prefill.coefficients()
        kv_fixed_ms, kv_ms_per_token = self.kv.coefficients()
        return {
            "step_base_ms": round(step_base_ms, 4),
            "step_per_decode_ms": round(step_per_decode_ms, 5),
            "prefill_fixed_ms": round(prefill_fixed_ms, 4),
            "prefill_ms_per_token": round(prefill_ms_per_token, 6),
            "prefill_tokens_per_s": round(1000.0 / prefill_ms_per_token) if prefill_ms_per_token else None,
            "kv_fixed_ms": round(kv_fixed_ms, 4),
            "kv_ms_per_token": round(kv_ms_per_token, 6),
            "mean_output_tokens": round(self.mean_output_tokens, 2),
            "observations": {
                "step": self.step.num_observations,
                "prefill": self.prefill.num_observations,
                "kv": self.kv.num_observations,
                "outputs": self.num_outputs,
            },
        }


def _usage_int(usage: dict[str, Any] | None, key: str) -> int | None:
    value = usage.get(key) if usage else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _cached_tokens(usage: dict[str, Any] | None) -> int:
    details = usage.get("prompt_tokens_details") if usage else None
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return cached if isinstance(cached, int) and not isinstance(cached, bool) else 0
