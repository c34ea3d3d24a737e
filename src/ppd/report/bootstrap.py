"""The conversation bootstrap: confidence intervals from within runs, paired across modes (numpy).

A run's turns are not independent: the turns of one conversation share a history and the queue
they met. Conversations are (the arrival schedule draws them independently), so a conversation is
the unit that is resampled. With several runs of a point, each resample first draws runs with
replacement and then conversations within every drawn run, so drift between runs widens the
interval too.

A `ResamplePlan` says how often each conversation of each run is drawn in each of B resamples. The
modes of a bench invocation run on the same seeded schedule (same conversations, same order, same
arrival times), so they share one plan: mode A's and mode B's resample b hold the same conversation
indices, and a − b or a / b over the replicates is a paired bootstrap of the difference or ratio.

Draws are multinomial counts rather than index arrays: the sum of m independent draws of C
conversations out of C is one Multinomial(m·C, 1/C) draw, so the two stages take two numpy calls.
Every statistic is then a matrix product (sums) or a weighted quantile of sorted values, for all B
resamples at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MIN_RESAMPLES = 200  # 2.5% tails of fewer replicates rest on a handful of values
CONFIDENCE = 0.95  # every interval in the report is a 95% one; its tables and plots say so
# A replicate set with more undefined values than this (e.g. a mean over resamples that drew no
# successful request) gives no interval: the percentiles would describe a different population.
MAX_UNDEFINED_FRACTION = 0.01


@dataclass(frozen=True)
class BootstrapConfig:
    """How many resamples, from which seed."""

    num_resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_resamples < MIN_RESAMPLES:
            raise ValueError(
                f"resamples must be ≥ {MIN_RESAMPLES} for a 95% percentile interval, got {self.num_resamples}"
            )


@dataclass(frozen=True, eq=False)
class ResamplePlan:
    """Draw counts of every conversation of every run in each resample (rows: resamples)."""

    key: tuple[object, ...]  # what the plan resamples; one plan object per key, shared by paired modes
    conversation_weights: FloatArray  # (B, total conversations): draws of each conversation
    draws_by_conversation: npt.NDArray[np.int32]  # the same transposed, as integers (for quantiles)
    run_weights: FloatArray  # (B, runs): draws of each run
    run_offsets: tuple[int, ...]  # first column of each run's conversations; last = total

    @property
    def num_resamples(self) -> int:
        """B."""
        return int(self.run_weights.shape[0])

    def columns(self, run_index: int, conversations: IntArray) -> IntArray:
        """The plan's columns of conversations (indices within the run) of its run_index-th run."""
        start, end = self.run_offsets[run_index], self.run_offsets[run_index + 1]
        if conversations.size and (conversations.min() < 0 or conversations.max() >= end - start):
            raise ValueError(f"conversation index outside 0..{end - start - 1} in {self.key}")
        return conversations + start


def stable_seed(base_seed: int, key: tuple[object, ...]) -> int:
    """A 64-bit seed from the base seed and a key, the same in every process (unlike hash())."""
    digest = hashlib.sha256(repr((base_seed, key)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def make_plan(
    key: tuple[object, ...], conversations_per_run: Sequence[int], config: BootstrapConfig
) -> ResamplePlan:
    """Two-stage draw counts: runs with replacement, then conversations within each drawn run."""
    if not conversations_per_run or min(conversations_per_run) < 1:
        raise ValueError(f"every run needs at least one conversation, got {list(conversations_per_run)}")
    rng = np.random.default_rng(stable_seed(config.seed, key))
    num_runs, num_resamples = len(conversations_per_run), config.num_resamples
    run_weights = rng.multinomial(num_runs, np.full(num_runs, 1.0 / num_runs), size=num_resamples)
    blocks = [
        rng.multinomial(run_weights[:, index] * count, np.full(count, 1.0 / count))
        for index, count in enumerate(conversations_per_run)
    ]
    offsets = np.concatenate([[0], np.cumsum(conversations_per_run)])
    draws = np.hstack(blocks)
    return ResamplePlan(
        key=key,
        conversation_weights=draws.astype(np.float64),
        draws_by_conversation=np.ascontiguousarray(draws.T, dtype=np.int32),
        run_weights=run_weights.astype(np.float64),
        run_offsets=tuple(int(o) for o in offsets),
    )


def per_conversation_sums(columns: IntArray, values: FloatArray, num_columns: int) -> FloatArray:
    """Sum of values per plan column (conversation); values of rows not counted must be 0."""
    return np.bincount(columns, weights=values, minlength=num_columns).astype(np.float64)


def ratio_of_sums(plan: ResamplePlan, numerators: FloatArray, denominators: FloatArray) -> FloatArray:
    """Replicates of Σ numerator / Σ denominator over the drawn conversations (NaN when Σ den = 0).

    numerators and denominators are per plan column (per_conversation_sums): e.g. summed TTFT and
    the number of turns with a TTFT give the mean TTFT per turn.
    """
    # numpy's own loops, not BLAS: a threaded BLAS splits the sum differently with the thread count
    # (the last bits of a report would depend on the machine) and spins its threads on a busy one.
    sums = np.einsum("bn,nk->bk", plan.conversation_weights, np.column_stack([numerators, denominators]))
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = sums[:, 0] / sums[:, 1]
    return result


def quantiles(
    plan: ResamplePlan, values: FloatArray, columns: IntArray, fractions: Sequence[float]
) -> list[FloatArray]:
    """Replicates of each quantile of the rows' values, each row weighted by its conversation's draws.

    A resample holds a row as often as its conversation was drawn; its quantile is the linearly
    interpolated one (numpy's default) of that multiset of rows, found from cumulative counts over
    the sorted values (rows x resamples, so the running sum adds whole rows of B counts) instead of
    materialising the multiset.
    """
    if values.size == 0:
        return [np.full(plan.num_resamples, np.nan) for _ in fractions]
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    counts = plan.draws_by_conversation[columns[order]]  # (rows, B): a copy, summed in place
    np.cumsum(counts, axis=0, out=counts)
    totals = counts[-1].astype(np.float64)
    positions = np.outer(fractions, np.maximum(totals - 1.0, 0.0))  # (fractions, B)
    lower_ranks = np.floor(positions)
    upper_ranks = np.minimum(lower_ranks + 1.0, totals - 1.0)
    # Every rank of every fraction in one search: (2 · fractions, B).
    rows = _first_row_above(counts, np.vstack([lower_ranks, upper_ranks]))
    lower, upper = np.split(sorted_values[rows], 2)
    weights = positions - lower_ranks
    replicates = lower * (1.0 - weights) + upper * weights
    return [np.where(totals > 0, replicate, np.nan) for replicate in replicates]


def _first_row_above(counts: npt.NDArray[np.int32], ranks: FloatArray) -> IntArray:
    """Per resample (column b) and rank (ranks[k, b]), the first row whose cumulative count exceeds
    the rank: the row holding that 0-based rank of the resample's sorted multiset. One binary search
    run for all ranks and columns at once."""
    num_rows, num_resamples = counts.shape
    every = np.broadcast_to(np.arange(num_resamples), ranks.shape)
    low = np.zeros(ranks.shape, dtype=np.int64)
    high = np.full(ranks.shape, num_rows - 1, dtype=np.int64)
    while (searching := low < high).any():
        middle = (low + high) // 2
        above = counts[middle, every] > ranks
        high = np.where(searching & above, middle, high)
        low = np.where(searching & ~above, middle + 1, low)
    return low


@dataclass(frozen=True)
class Interval:
    """A percentile interval of bootstrap replicates."""

    low: float
    high: float
    standard_error: float


def percentile_interval(replicates: FloatArray, confidence: float = CONFIDENCE) -> Interval | None:
    """The central `confidence` percentile interval; None when too many replicates are undefined."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0 or finite.size < (1.0 - MAX_UNDEFINED_FRACTION) * replicates.size:
        return None
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return Interval(float(low), float(high), float(np.std(finite, ddof=1)))
