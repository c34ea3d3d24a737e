"""Every conversation's user words and its first prompt's block hashes, made a batch at a time.

The words of a conversation come from its seed alone, so the client needs not wait for it to arrive
to draw them: it draws the next BATCH_SIZE conversations' words together (WordIdDrawer.rows) and
hashes their first prompts' full blocks together (sim.hash_rows), where one conversation at a time
cost a numpy call's overhead per seed and an int object per prompt token (docs/fleet.md, "Speed and
memory"). The hashes reach the engines as the first turn's TurnJob.history_blocks, the way a later
turn's come from the turn before it (fleet.prompt_blocks). Words and hashes are the ones each
conversation on its own would get.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Final

import numpy as np

from ppd.bench.arrivals import ConversationPlan, SeedFamily
from ppd.bench.word_ids import WordIdDrawer, WordIds, split
from ppd.fleet.fleet import PromptIds
from ppd.sim.hash_rows import block_hashes_of_rows, matches_python

# Conversations drawn and hashed together: a hash round is a numpy call per batch, ~2 us on this
# machine, so per conversation its share is ~2,700 calls (W1's first prompt) / BATCH_SIZE.
BATCH_SIZE: Final = 512

# (block size, tokens of the first prompt those hashes cover, the chained hashes of its full blocks)
FirstBlocks = tuple[int, int, list[int]]


class FirstPrompts:
    """The words and first-prompt hashes of the plans' conversations, ahead of their arrivals."""

    def __init__(
        self,
        seeds: SeedFamily,
        first_prompt: Callable[[WordIds], PromptIds],
        block_size: int | None,
    ) -> None:
        """seeds: the conversations' prompt seeds (by plan index); first_prompt: a first turn's prompt
        from its user words (client.next_prompt); block_size: the engines' (None when they differ,
        or to hash no prompt ahead)."""
        self._seeds = seeds
        self._first_prompt = first_prompt
        self._block_size = block_size if block_size is not None and matches_python(block_size) else None
        self._plans: list[ConversationPlan] = []  # in the order they will arrive
        self._position: dict[int, int] = {}  # plan index -> position in _plans
        self._made: dict[int, tuple[list[WordIds], FirstBlocks | None]] = {}
        self._words = WordIdDrawer()

    def expect(self, plans: list[ConversationPlan]) -> None:
        """The plans that will arrive, in their order: each batch is the next BATCH_SIZE of them."""
        self._plans = plans
        self._position = {plan.index: position for position, plan in enumerate(plans)}

    def take(self, plan: ConversationPlan) -> tuple[list[WordIds], FirstBlocks | None]:
        """The user words of each of the plan's turns and its first prompt's blocks (None: not hashed)."""
        if plan.index not in self._made:
            position = self._position.get(plan.index)
            self._make([plan] if position is None else self._plans[position : position + BATCH_SIZE])
        return self._made.pop(plan.index)

    def _make(self, plans: list[ConversationPlan]) -> None:
        plans = [plan for plan in plans if plan.index not in self._made]
        by_num_words: dict[int, list[ConversationPlan]] = defaultdict(list)
        for plan in plans:
            by_num_words[sum(shape.num_new_words for shape in plan.turns)].append(plan)
        words: dict[int, list[WordIds]] = {}
        for num_words, group in by_num_words.items():
            rows = self._words.rows(num_words, [self._seeds.seed(plan.index) for plan in group])
            for plan, row in zip(group, rows, strict=True):
                # A copy: a view would keep the whole batch's words for as long as any of its
                # conversations lasts.
                words[plan.index] = split(row.copy(), [shape.num_new_words for shape in plan.turns])
        blocks = self._hash_first_prompts(words)
        for plan in plans:
            self._made[plan.index] = (words[plan.index], blocks.get(plan.index))

    def _hash_first_prompts(self, words: dict[int, list[WordIds]]) -> dict[int, FirstBlocks]:
        """Each conversation's first prompt's blocks, hashed together with the prompts of its length."""
        block_size = self._block_size
        if block_size is None:
            return {}
        by_length: dict[int, list[tuple[int, WordIds]]] = defaultdict(list)
        for index, user_ids in words.items():
            prompt = _one_array(self._first_prompt(user_ids[0]))
            by_length[len(prompt)].append((index, prompt))
        blocks: dict[int, FirstBlocks] = {}
        for length, group in by_length.items():
            hashes = block_hashes_of_rows(np.stack([prompt for _, prompt in group]), block_size)
            for (index, _), row in zip(group, hashes.tolist(), strict=True):
                blocks[index] = (block_size, length, row)
        return blocks


def _one_array(prompt: PromptIds) -> WordIds:
    """A prompt's tokens as one array (a view when it is one piece of drawn words)."""
    pieces = prompt.pieces
    if len(pieces) == 1 and isinstance(pieces[0], np.ndarray):
        return pieces[0]
    return np.concatenate([np.asarray(piece, dtype=np.int64) for piece in pieces])
