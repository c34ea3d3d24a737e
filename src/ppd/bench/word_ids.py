"""The bench's prompt words: `numpy.random.default_rng(seed).integers(0, NUM_WORD_TOKENS, n)`, cheaply.

That draw is the definition (prompts and seeds are part of a bench run's identity: `ppd bench` over
HTTP and `ppd fleet` must send the same words for the same seed); both draw them here, with one
PCG64 per drawer put in the state `PCG64(seed)` starts in (bench.pcg64_seed), rather than the
SeedSequence, PCG64 and Generator that default_rng(seed) builds per seed (`ppd fleet` draws a
conversation's words 16 times a simulated second). tests/unit/bench/test_word_ids.py checks the
words against numpy's own.

Tried and dropped (eighth session): the bounded draw done on the generator's raw outputs
(`random_raw`, then Lemire's method vectorised as numpy's `random_bounded_uint64_fill` does it, with
numpy's own draw for the ~1.3% of W1 seeds it rejects a word of), which skips the Python-level
`np.prod(size)` that `integers` runs per call: the same words (3,000 seeds checked), but no gain in
a profile of the compiled fleet (the words 11.5% of the samples, against 11.2%; numpy's `.min()`
is itself Python-level) nor in alternating rounds outside it (74-77 against 69-82 us a W1
conversation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ppd.bench.pcg64_seed import pcg64_state
from ppd.tokens import NUM_WORD_TOKENS

WordIds = np.ndarray[Any, np.dtype[np.int64]]


class WordIdDrawer:
    """Word ids for one seed after another: numpy's default_rng(seed) draws, without building one."""

    def __init__(self) -> None:
        self._bit_generator = np.random.PCG64(0)
        self._generator = np.random.Generator(self._bit_generator)

    def draw(self, num_words: int, seed: int) -> WordIds:
        """`default_rng(seed).integers(0, NUM_WORD_TOKENS, num_words)`: the same int64 ids."""
        state, inc = pcg64_state(seed)
        self._bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": state, "inc": inc},
            "has_uint32": 0,
            "uinteger": 0,
        }
        ids: WordIds = self._generator.integers(0, NUM_WORD_TOKENS, num_words)
        return ids

    def arrays(self, num_words: Sequence[int], seed: int) -> list[WordIds]:
        """One array of ids per count: the counts' draws one after another from one generator
        (a generator's draws of n and then m integers are its draw of n + m), as views of one draw."""
        ids = self.draw(sum(num_words), seed)
        arrays: list[WordIds] = []
        start = 0
        for count in num_words:
            arrays.append(ids[start : start + count])
            start += count
        return arrays

    def lists(self, num_words: Sequence[int], seed: int) -> list[list[int]]:
        """arrays(num_words, seed) as lists of ints (what `ppd fleet` sends). Each part is converted
        from a view of the one draw: converting the whole and slicing it would make every int
        object twice referenced and free a list of them at once."""
        ids = self.draw(sum(num_words), seed)
        lists: list[list[int]] = []
        start = 0
        for count in num_words:
            lists.append(ids[start : start + count].tolist())
            start += count
        return lists
