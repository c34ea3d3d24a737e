"""The bench's prompt words: `numpy.random.default_rng(seed).integers(0, NUM_WORD_TOKENS, n)`, cheaply.

That draw is the definition (prompts and seeds are part of a bench run's identity: `ppd bench` over
HTTP and `ppd fleet` must send the same words for the same seed); both draw them here, with one
PCG64 per drawer put in the state `PCG64(seed)` starts in (bench.pcg64_seed), rather than the
SeedSequence, PCG64 and Generator that default_rng(seed) builds per seed (`ppd fleet` draws a
conversation's words 16 times a simulated second). tests/unit/bench/test_word_ids.py checks the
words against numpy's own.

Many seeds at once (`rows`, the fleet's conversations a batch at a time): each seed's raw 64-bit
outputs (`random_raw`, no bounded draw), then the bounded draw as numpy's
`random_bounded_uint64_fill` does it for a range below 2**32 (Lemire's method on 32-bit words,
each output's low half first) on all the seeds' words in one go, with numpy's own draw for a seed
whose words that method would reject one of (~1.3% of W1's). The eighth session tried that method
one seed at a time and found no gain: the numpy calls it makes per seed cost what `integers`' own
argument handling does; per batch they cost next to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from ppd.bench.pcg64_seed import pcg64_state
from ppd.tokens import NUM_WORD_TOKENS

WordIds = np.ndarray[Any, np.dtype[np.int64]]

# Lemire's method draws a 32-bit word w and takes (w * NUM_WORD_TOKENS) >> 32, unless the low 32 bits
# of that product fall below 2**32 mod NUM_WORD_TOKENS: then numpy draws another word.
_REJECTED_BELOW: Final = np.uint32(2**32 % NUM_WORD_TOKENS)


class WordIdDrawer:
    """Word ids for one seed after another: numpy's default_rng(seed) draws, without building one."""

    def __init__(self) -> None:
        self._bit_generator = np.random.PCG64(0)
        self._generator = np.random.Generator(self._bit_generator)

    def draw(self, num_words: int, seed: int) -> WordIds:
        """`default_rng(seed).integers(0, NUM_WORD_TOKENS, num_words)`: the same int64 ids."""
        self._seed(seed)
        ids: WordIds = self._generator.integers(0, NUM_WORD_TOKENS, num_words)
        return ids

    def _seed(self, seed: int) -> None:
        """Put the bit generator in the state `PCG64(seed)` starts in."""
        state, inc = pcg64_state(seed)
        self._bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": state, "inc": inc},
            "has_uint32": 0,
            "uinteger": 0,
        }

    def rows(self, num_words: int, seeds: Sequence[int]) -> WordIds:
        """draw(num_words, seed) for each seed, as the rows of one array (seeds, num_words)."""
        num_outputs = (num_words + 1) // 2
        raw = np.empty((len(seeds), num_outputs), dtype=np.uint64)
        for row, seed in enumerate(seeds):
            self._seed(seed)
            raw[row] = self._bit_generator.random_raw(num_outputs)
        # The 32-bit words as PCG64 hands them out: each 64-bit output's low half, then its high half
        # (the outputs' little-endian bytes read as 32-bit words).
        words = raw.astype("<u8", copy=False).view("<u4")[:, :num_words]
        products = np.multiply(words, np.uint64(NUM_WORD_TOKENS), dtype=np.uint64)
        products >>= np.uint64(32)
        ids: WordIds = products.view(np.int64)  # below NUM_WORD_TOKENS: the same bits
        low_halves = np.multiply(words, np.uint32(NUM_WORD_TOKENS), dtype=np.uint32)  # wraps: mod 2**32
        rejected = (low_halves < _REJECTED_BELOW).any(axis=1)
        for row in np.flatnonzero(rejected).tolist():
            ids[row] = self.draw(num_words, seeds[row])
        return ids

    def arrays(self, num_words: Sequence[int], seed: int) -> list[WordIds]:
        """One array of ids per count: the counts' draws one after another from one generator
        (a generator's draws of n and then m integers are its draw of n + m), as views of one draw."""
        return split(self.draw(sum(num_words), seed), num_words)


def split(ids: WordIds, counts: Sequence[int]) -> list[WordIds]:
    """ids as consecutive pieces of these lengths (views of it)."""
    pieces: list[WordIds] = []
    start = 0
    for count in counts:
        pieces.append(ids[start : start + count])
        start += count
    return pieces
