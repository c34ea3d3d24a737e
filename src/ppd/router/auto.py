"""The auto mode's cost model: how much one placement of a turn is expected to cost, and the choice.

Pure arithmetic on plain numbers: the instances' live load (from the proxy's own counters), the
proxy's running estimates (estimates.py) and the SLO targets. policies.route_auto turns a turn and
its candidate instances into `Option`s and the chosen one back into a Route.

A turn can go three ways:

    direct   the instance holding the conversation prefills only the new tail from its prefix cache
    replica  any other instance prefills the whole prompt itself and then serves the conversation
    pd       a prefill instance P prefills the whole prompt, the target pulls the KV it lacks (NIXL)

For an option with prefill site S (the target itself, or P), target T, n tokens to prefill at S,
m KV tokens to move, and per instance i: Q_i outstanding prefill tokens, N_i running decodes,
step_i(N) = step_base_ms + step_per_decode_ms * N (decode step time), c = prefill ms per token,
F = fixed ms of a prefill answer, E = expected output tokens (running mean; this turn's own length
is unknown, max_tokens being only a bound):

    ttft_ms  = F + step_S(N_S) + c * (Q_S + n)                      wait for S's queue, then prefill
             + [pd] kv_fixed_ms + kv_ms_per_token * m                pull the KV,
                  + c * Q_T + step_T(N_T)                            then T's queue and first step
    tpot_ms  = step_T(N_T + 1)                                       this turn's own decode step
    cost_ms  = ttft_ms
             + E * tpot_ms                                           its own decode time
             + E/2 * step_per_decode_ms * N_T                        the N_T decodes it slows down
             + N_S * (c * n + step_base_ms)                          decodes on S stall for the prefill
             + [pd] N_T * step_base_ms                               and on T for the pulled-KV step
             + c * n                                                 S's GPU time is taken from the
                                                                     turns that arrive after it

cost_ms is the marginal end-to-end time the option adds summed over everyone it touches, so
minimising it minimises mean E2E (the greedy, one-turn-at-a-time version). The last term makes
prefill work count twice (once in this turn's TTFT, once as the wait it adds for later arrivals),
so re-prefilling a history on another instance (replica) is chosen only when the holder's queue is
longer than the extra work, not whenever it is merely a little busier. The choice is the
cheapest option whose ttft_ms and tpot_ms meet the SLOs; when none meets them, the cheapest of all.
Ties keep the order of the options (the caller rotates it to spread an idle pool).

The caller may name a default (policies.route_auto: replication's choice, the holder or else the
least loaded replica, which keeps the prefix cache and spreads load with no model at all). The
choice leaves it only for an option that meets the SLOs where the default does not, or whose
cost_ms is at least SWITCH_MARGIN (a fraction) below the default's: the estimates are running fits
on noisy observations, so a small predicted gain is as likely to be a loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

OptionKind = Literal["direct", "replica", "pd"]
DECISION_DIRECT: OptionKind = "direct"
DECISION_REPLICA: OptionKind = "replica"
DECISION_PD: OptionKind = "pd"
DECISIONS: tuple[OptionKind, ...] = get_args(OptionKind)
SWITCH_MARGIN = 0.2  # leave the default only for an option expected to cost this much less


@dataclass(frozen=True, slots=True)
class InstanceCosts:
    """One instance now: its live load and the time model the estimates give it (ms)."""

    url: str
    queued_prefill_tokens: int  # Q: prompt tokens sent to it whose prefill has not answered yet
    running_decodes: int  # N: requests it is generating for
    step_base_ms: float
    step_per_decode_ms: float
    prefill_fixed_ms: float  # F
    prefill_ms_per_token: float  # c

    def step_ms(self, num_decodes: int) -> float:
        """Modeled decode step time with num_decodes running, ms."""
        return self.step_base_ms + self.step_per_decode_ms * num_decodes


@dataclass(frozen=True, slots=True)
class AutoModel:
    """What the cost model needs besides the instances: KV transfer, output length, SLOs."""

    kv_fixed_ms: float
    kv_ms_per_token: float
    mean_output_tokens: float  # E
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None


@dataclass(frozen=True, slots=True)
class AutoInputs:
    """A routing decision's view of the estimates: the model, and the speed shared by instances."""

    model: AutoModel
    speed: InstanceCosts  # url and load are placeholders; the router fills them per instance


@dataclass(frozen=True, slots=True)
class Option:
    """One way to serve the turn: prefill `num_prefill_tokens` at `prefill_site`, decode on `target`."""

    decision: OptionKind
    target: InstanceCosts
    prefill: InstanceCosts | None  # P for pd; None: the target prefills
    num_prefill_tokens: int
    num_kv_tokens: int = 0  # moved from P to the target (pd only)

    @property
    def prefill_site(self) -> InstanceCosts:
        """Where the prompt is prefilled."""
        return self.prefill if self.prefill is not None else self.target


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the model expects of one option, ms."""

    ttft_ms: float
    tpot_ms: float
    cost_ms: float
    meets_slo: bool


def estimate(option: Option, model: AutoModel) -> Estimate:
    """Expected TTFT, TPOT and marginal cost (ms) of one option; see the module docstring."""
    site, target, n = option.prefill_site, option.target, option.num_prefill_tokens
    prefill_ms = site.prefill_ms_per_token * n
    ttft_ms = (
        site.prefill_fixed_ms
        + site.step_ms(site.running_decodes)
        + site.prefill_ms_per_token * site.queued_prefill_tokens
        + prefill_ms
    )
    stall_ms = site.running_decodes * (prefill_ms + site.step_base_ms)
    if option.prefill is not None:
        ttft_ms += model.kv_fixed_ms + model.kv_ms_per_token * option.num_kv_tokens
        ttft_ms += target.prefill_ms_per_token * target.queued_prefill_tokens
        ttft_ms += target.step_ms(target.running_decodes)
        stall_ms += target.running_decodes * target.step_base_ms
    tpot_ms = target.step_ms(target.running_decodes + 1)
    expected = model.mean_output_tokens
    slowdown_ms = 0.5 * expected * target.step_per_decode_ms * target.running_decodes
    cost_ms = ttft_ms + expected * tpot_ms + slowdown_ms + stall_ms + prefill_ms
    return Estimate(ttft_ms, tpot_ms, cost_ms, _meets_slo(ttft_ms, tpot_ms, model))


def choose(
    options: Sequence[Option],
    model: AutoModel,
    default: Option | None = None,
    margin: float = SWITCH_MARGIN,
) -> tuple[Option, Estimate]:
    """The cheapest option meeting the SLOs, else the cheapest (the first of equals); with a
    default, that default unless the winner meets the SLOs where it does not or costs `margin` less."""
    if not options:
        raise ValueError("choose needs at least one option")
    scored = [(option, estimate(option, model)) for option in options]
    best = min(scored, key=lambda scored_option: _rank(scored_option[1]))  # min keeps the first of equals
    if default is None or best[0] is default:
        return best
    kept = (default, estimate(default, model))
    if best[1].meets_slo and not kept[1].meets_slo:
        return best
    return best if best[1].cost_ms <= (1.0 - margin) * kept[1].cost_ms else kept


def _rank(candidate: Estimate) -> tuple[bool, float]:
    return (not candidate.meets_slo, candidate.cost_ms)


def _meets_slo(ttft_ms: float, tpot_ms: float, model: AutoModel) -> bool:
    if model.slo_ttft_ms is not None and ttft_ms > model.slo_ttft_ms:
        return False
    return model.slo_tpot_ms is None or tpot_ms <= model.slo_tpot_ms
