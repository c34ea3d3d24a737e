"""Does the instance that served a conversation's last turn still hold its history?

PPD's bet, and the direct option of auto, is that the holder's prefix cache still has the history
when the next turn comes. Under cache pressure it may not: vLLM evicts free blocks least recently
used first, so an idle conversation's history goes, tail first, once enough other traffic has
passed through the cache. The answer says what happened: `usage.prompt_tokens_details.cached_tokens`
of a turn served by the holder is what its cache still had.

A check (one per completed turn that went to the holder to be served from its cache: direct, or a
replica that is the holder) compares the cached tokens with the reusable history, the part of the
history the new prompt can reuse: min(history tokens, prompt tokens - 1), since the engine always
computes the last prompt token. The held share is cached / reusable (at most 1); the history counts
as *lost* when less than LOST_BELOW of it was found.

The model learns the expected held share per holder as a function of the history's age (since the
turn that made it ended) and size (tokens), in log2 buckets: an exponentially weighted mean per
(holder, age bucket, size bucket) cell, backed off to the holder's age bucket and then to the prior
(1: held) while a cell has few observations. Auto multiplies the history by it to expect how much
the direct option must prefill again (policies.auto_options).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LOST_BELOW = 0.5  # a history with less than this share found in the holder's cache counts as lost
PRIOR_SHARE = 1.0  # before any observation: the holder has it (PPD's assumption)
PRIOR_WEIGHT = 2.0  # the prior counts as this many observations in each cell's mean
FORGET = 0.98  # each new observation of a cell weighs older ones this much less (~50 count)
MAX_AGE_BUCKET = 16  # 2^16 s ~ 18 h: older is one bucket
MAX_SIZE_BUCKET = 20  # 2^20 tokens: longer is one bucket


@dataclass(init=False, frozen=True, slots=True)
class HistoryCheck:
    """What one turn served by the history's holder found."""

    holder_url: str
    age_s: float  # since the turn that made the history ended
    num_history_tokens: int  # the reusable history: min(history, prompt - 1)
    num_cached_tokens: int

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        holder_url: str,
        age_s: float,
        num_history_tokens: int,
        num_cached_tokens: int,
    ) -> None:
        object.__setattr__(self, "holder_url", holder_url)
        object.__setattr__(self, "age_s", age_s)
        object.__setattr__(self, "num_history_tokens", num_history_tokens)
        object.__setattr__(self, "num_cached_tokens", num_cached_tokens)

    @property
    def held_share(self) -> float:
        """cached / reusable history, in [0, 1]."""
        if self.num_history_tokens <= 0:
            return 1.0
        return min(1.0, self.num_cached_tokens / self.num_history_tokens)

    @property
    def lost(self) -> bool:
        """Less than LOST_BELOW of the history was still cached."""
        return self.held_share < LOST_BELOW

    @property
    def num_missed_tokens(self) -> int:
        """History tokens the holder had to prefill again."""
        return max(0, self.num_history_tokens - self.num_cached_tokens)


def history_check(
    holder_url: str | None,
    target_url: str,
    age_s: float,
    num_history_tokens: int,
    num_prompt_tokens: int | None,
    num_cached_tokens: int | None,
) -> HistoryCheck | None:
    """The check of a completed turn served from `target_url`'s own cache, or None when there is
    nothing to check: not its holder, no history, or usage without the token counts."""
    if holder_url is None or target_url != holder_url or num_history_tokens <= 0:
        return None
    if num_prompt_tokens is None or num_cached_tokens is None or num_prompt_tokens <= 1:
        return None
    reusable = min(num_history_tokens, num_prompt_tokens - 1)
    return HistoryCheck(holder_url, max(0.0, age_s), reusable, num_cached_tokens)


def age_bucket(age_s: float) -> int:
    """0 for < 1 s, then k for [2^(k-1), 2^k) s, up to MAX_AGE_BUCKET."""
    return min(MAX_AGE_BUCKET, 0 if age_s < 1.0 else int(math.log2(age_s)) + 1)


def size_bucket(num_tokens: int) -> int:
    """k for [2^(k-1), 2^k) tokens (0 for none), up to MAX_SIZE_BUCKET."""
    return min(MAX_SIZE_BUCKET, max(0, num_tokens).bit_length())


@dataclass(init=False)
class _Mean:
    """An exponentially weighted mean of held shares."""

    weight: float = 0.0
    total: float = 0.0
    count: int = 0

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(self, weight: float = 0.0, total: float = 0.0, count: int = 0) -> None:
        self.weight = weight
        self.total = total
        self.count = count

    def add(self, value: float) -> None:
        self.weight = self.weight * FORGET + 1.0
        self.total = self.total * FORGET + value
        self.count += 1

    def blended(self, prior: float) -> float:
        """The mean, pulled toward `prior` by PRIOR_WEIGHT observations' worth."""
        return (self.total + PRIOR_WEIGHT * prior) / (self.weight + PRIOR_WEIGHT)


@dataclass
class HoldingModel:
    """Learnt held shares by (holder, age bucket, size bucket), with totals for /status and /metrics."""

    cells: dict[tuple[str, int, int], _Mean] = field(default_factory=dict)
    by_age: dict[tuple[str, int], _Mean] = field(default_factory=dict)
    num_checks: int = 0
    num_lost: int = 0
    num_history_tokens: int = 0
    num_missed_tokens: int = 0

    def observe(self, check: HistoryCheck) -> None:
        """Learn from one check and count it."""
        age, size = age_bucket(check.age_s), size_bucket(check.num_history_tokens)
        self.cells.setdefault((check.holder_url, age, size), _Mean()).add(check.held_share)
        self.by_age.setdefault((check.holder_url, age), _Mean()).add(check.held_share)
        self.num_checks += 1
        self.num_lost += check.lost
        self.num_history_tokens += check.num_history_tokens
        self.num_missed_tokens += check.num_missed_tokens

    def expected_share(self, holder_url: str, age_s: float, num_history_tokens: int) -> float:
        """The share of a history of this age and size the holder is expected to still have."""
        age = age_bucket(age_s)
        prior = PRIOR_SHARE
        by_age = self.by_age.get((holder_url, age))
        if by_age is not None:
            prior = by_age.blended(prior)
        cell = self.cells.get((holder_url, age, size_bucket(num_history_tokens)))
        return cell.blended(prior) if cell is not None else prior

    @property
    def lost_share(self) -> float | None:
        """Lost histories over checks (None before any)."""
        return self.num_lost / self.num_checks if self.num_checks else None

    def status(self) -> dict[str, object]:
        """For GET /status: the totals and each holder's learnt share by age bucket."""
        return {
            "checks": self.num_checks,
            "lost": self.num_lost,
            "lost_share": self.lost_share,
            "missed_token_share": (
                self.num_missed_tokens / self.num_history_tokens if self.num_history_tokens else None
            ),
            "held_share_by_age": {
                f"{holder} <2^{age}s": round(mean.blended(PRIOR_SHARE), 4)
                for (holder, age), mean in sorted(self.by_age.items())
            },
        }
