"""The bench's own time between two turns of a conversation, which the fleet's client spends too.

`ppd bench` (bench/loadgen.drive_conversation) sends turn n+1 once turn n's stream has ended plus
the think time, and only after its own work in between: writing turn n's row (with its ITL list, one
gap per answer token) and building and JSON-encoding turn n+1's body (its whole prompt). Measured by
benchmarks/fleet_hops.py through the real bench and stored in hops.json (config.HopCosts):

    stream end   the last content chunk -> the stream's end at the client (the usage chunk and
                 [DONE] after it): a draw from the measured quantiles `stream_end_ms`
    send lag     the bench's work: (send_lag_ms + us per answer token x the answer's tokens + us per
                 prompt token x the next prompt's) x a draw from `send_lag_spread`, the measured
                 quantiles of measured / fitted

The next turn leaves at the stream's end + max(think time, send lag): the bench does its work
before it sleeps out the think time. At a light load a later turn either joins the engine's next
step or waits a step more, decided by sub-millisecond phase (docs/fleet.md, Agreement), so the
spread matters, not only the median: a fixed gap puts every turn in one mode.

Draws come from one random.Random per run, seeded from the run's seed and point: a fleet run is
reproducible. Without quantiles a part is its fixed value (a stream end of 0), and with every figure
zero (a hops.json older than these) the next turn leaves the instant the last content chunk arrives.
"""

from __future__ import annotations

import random

from ppd.fleet.config import HopCosts


def quantile_value(quantiles: tuple[float, ...], probability: float) -> float:
    """The value at `probability` (0..1) of a distribution given by quantiles p0 .. p100 at equal
    steps, linear between them."""
    position = probability * (len(quantiles) - 1)
    index = min(int(position), len(quantiles) - 2)
    low, high = quantiles[index], quantiles[index + 1]
    return low + (position - index) * (high - low)


class ClientGaps:
    """Seeded draws of the stream end and the bench's send lag, in s."""

    def __init__(self, hops: HopCosts, seed: int) -> None:
        self.hops = hops
        self._random = random.Random(seed)
        line = (hops.send_lag_ms, hops.send_lag_us_per_answer_token, hops.send_lag_us_per_prompt_token)
        self.has_send_lag = any(line)
        self.is_zero = not hops.stream_end_ms and not self.has_send_lag

    def stream_end_s(self) -> float:
        """The last content chunk -> the stream's end at the client."""
        quantiles = self.hops.stream_end_ms
        return quantile_value(quantiles, self._random.random()) * 1e-3 if quantiles else 0.0

    def send_lag_s(self, num_answer_tokens: int, num_prompt_tokens: int) -> float:
        """The bench's work after a turn with num_answer_tokens before it sends the next turn, whose
        body holds num_prompt_tokens (0: a body made while the turn was in flight)."""
        hops = self.hops
        if not self.has_send_lag:
            return 0.0
        line_us = (
            hops.send_lag_ms * 1e3
            + hops.send_lag_us_per_answer_token * num_answer_tokens
            + hops.send_lag_us_per_prompt_token * num_prompt_tokens
        )
        spread = hops.send_lag_spread
        factor = quantile_value(spread, self._random.random()) if spread else 1.0
        return line_us * factor * 1e-6
