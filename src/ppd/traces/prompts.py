"""Prompt text for trace requests: the same block id always gives the same words.

Each block id maps to `block_size` vocabulary words (`w<N>`, one token each; see ppd.tokens) drawn
from a generator seeded by (seed, block id), and a request's prompt is its blocks' words in order,
the last block cut to the request's input length. Two requests that share leading ids therefore share
exactly those prompt tokens, and an engine's prefix cache sees what the trace's service saw. A trace
without block ids (Azure) gets fresh words per request: its prompts share nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from typing import Any

import numpy as np

from ppd.tokens import NUM_WORD_TOKENS


@lru_cache(maxsize=1)
def _words() -> np.ndarray[Any, np.dtype[np.object_]]:
    return np.array([f"w{i}" for i in range(NUM_WORD_TOKENS)], dtype=object)


def block_token_ids(seed: int, block_id: int, block_size: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The token ids of one block: `block_size` ids < NUM_WORD_TOKENS, fixed by (seed, block id)."""
    rng = np.random.default_rng((seed, block_id))
    return rng.integers(0, NUM_WORD_TOKENS, block_size)


class PromptMaker:
    """Prompt texts of one run (one seed), keeping recent blocks' texts: turns repeat their history.

    ~1 ms for a 12k-token prompt of uncached blocks on the dev machine; prompts are made before their
    send time is waited for, so this never delays a send.
    """

    def __init__(self, seed: int, block_size: int, max_cached_blocks: int = 4096) -> None:
        self.seed = seed
        self.block_size = block_size
        self._max_cached_blocks = max_cached_blocks
        self._block_texts: OrderedDict[int, str] = OrderedDict()

    def prompt(self, request_index: int, num_input_tokens: int, block_ids: tuple[int, ...]) -> str:
        """The prompt of one request: exactly num_input_tokens words."""
        if not block_ids:
            rng = np.random.default_rng((self.seed, 1 << 62, request_index))  # apart from block seeds
            return " ".join(_words()[rng.integers(0, NUM_WORD_TOKENS, num_input_tokens)])
        full_blocks, rest = divmod(num_input_tokens, self.block_size)
        if full_blocks + (rest > 0) != len(block_ids):
            raise ValueError(f"{len(block_ids)} block ids for {num_input_tokens} tokens of {self.block_size}")
        parts = [self._block_text(block_id) for block_id in block_ids[:full_blocks]]
        if rest:
            last_ids = block_token_ids(self.seed, block_ids[-1], self.block_size)[:rest]
            parts.append(" ".join(_words()[last_ids]))
        return " ".join(parts)

    def _block_text(self, block_id: int) -> str:
        text = self._block_texts.get(block_id)
        if text is not None:
            self._block_texts.move_to_end(block_id)
            return text
        text = " ".join(_words()[block_token_ids(self.seed, block_id, self.block_size)])
        self._block_texts[block_id] = text
        if len(self._block_texts) > self._max_cached_blocks:
            self._block_texts.popitem(last=False)
        return text
