"""fleet.prompt_blocks: what the engines read of a turn's prompt, hashed only past the last turn's."""

from __future__ import annotations

import numpy as np
import pytest

from ppd.fleet.fleet import PromptIds, prompt_blocks
from ppd.sim.kv_cache import block_hashes_of

LAST_TURN = list(range(1, 45))  # its prompt and answer: two full blocks of 16 and 12 tokens more
PROMPT = LAST_TURN + list(range(100, 130))  # the next prompt: 74 tokens, four full blocks


@pytest.mark.parametrize(
    "history",
    [
        None,
        (16, len(LAST_TURN), block_hashes_of(LAST_TURN, 16)),  # shares the whole last turn
        (16, 20, block_hashes_of(LAST_TURN, 16)),  # shares only its first 20 tokens (a dropped special token)
        (16, len(LAST_TURN), block_hashes_of(LAST_TURN, 16)[:1]),  # fewer hashes than shared blocks
        (8, len(LAST_TURN), block_hashes_of(LAST_TURN, 8)),  # another block size: of no use
    ],
)
def test_a_prompts_blocks_are_its_hashes_and_the_tokens_after_them(
    history: tuple[int, int, list[int]] | None,
) -> None:
    # the last turn's prompt (drawn words), its answer (the engine's list), the new words
    prompt = PromptIds((np.array(PROMPT[:30]), PROMPT[30:44], np.array(PROMPT[44:])))
    assert len(prompt) == len(PROMPT) and prompt.tolist() == PROMPT
    hashes, tail = prompt_blocks(prompt, 16, history)
    assert hashes == block_hashes_of(PROMPT, 16)
    assert tail == PROMPT[64:] and all(type(token) is int for token in tail)


def test_a_prompts_ids_from_any_index_read_across_its_pieces() -> None:
    first = PromptIds((np.array([1, 2, 3]), [4, 5]))
    prompt = first.extended([[6], np.array([7, 8, 9])])
    assert (len(first), first.tolist()) == (5, [1, 2, 3, 4, 5])  # the last turn's stays as it was
    for start in range(11):
        ids = prompt.ids_from(start)
        assert ids == list(range(1, 10))[start:] and all(type(token) is int for token in ids)
