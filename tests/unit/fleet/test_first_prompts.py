import numpy as np
import pytest

from ppd.bench.arrivals import ConversationPlan, SeedFamily
from ppd.bench.config import TurnShape
from ppd.bench.word_ids import WordIdDrawer, WordIds
from ppd.fleet.client import next_prompt
from ppd.fleet.first_prompts import BATCH_SIZE, FirstPrompts
from ppd.fleet.fleet import PromptIds, prompt_blocks
from ppd.sim.kv_cache import block_hashes_of


def plans_of(num_plans: int) -> list[ConversationPlan]:
    """Conversations of two shapes (their words drawn in separate groups), the first turn of one
    ending inside a block."""
    shapes = ((TurnShape(512, 8), TurnShape(512, 8)), (TurnShape(37, 4),))
    return [ConversationPlan(index, index * 0.1, shapes[index % 3 == 2]) for index in range(num_plans)]


@pytest.mark.parametrize("is_chat", [False, True])
def test_words_and_hashes_are_each_conversations_own(is_chat: bool) -> None:
    """Across a batch boundary: each conversation's words are its seed's draw, and the hashes, as the
    first turn's history, give the engines what hashing its prompt there would."""
    plans, seeds = plans_of(BATCH_SIZE + 20), SeedFamily(7, "salt")

    def first(user: WordIds) -> PromptIds:
        return next_prompt(PromptIds(), None, user, is_chat)

    prompts = FirstPrompts(seeds, first, 16)
    prompts.expect(plans)
    for plan in [*plans, ConversationPlan(10_000, 99.0, plans[0].turns)]:  # and one not expected
        words, blocks = prompts.take(plan)
        counts = [shape.num_new_words for shape in plan.turns]
        alone = WordIdDrawer().arrays(counts, seeds.seed(plan.index))  # the conversation on its own
        assert [w.tolist() for w in words] == [w.tolist() for w in alone]
        prompt = first(words[0])
        assert blocks is not None and blocks[:2] == (16, len(prompt))
        assert blocks[2] == block_hashes_of(prompt.tolist(), 16)
        assert prompt_blocks(prompt, 16, blocks) == prompt_blocks(prompt, 16, None)


def test_no_block_size_hashes_nothing() -> None:
    """Engines of different block sizes (no one size to hash for): words only."""
    plans = plans_of(3)
    prompts = FirstPrompts(SeedFamily(1), lambda user: PromptIds((user,)), None)
    prompts.expect(plans)
    words, blocks = prompts.take(plans[1])
    assert blocks is None and isinstance(words[0], np.ndarray) and len(words[0]) == 512
