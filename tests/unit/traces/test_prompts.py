"""Prompts from block ids: exact lengths, shared ids share exactly their tokens."""

from __future__ import annotations

import pytest

from ppd.tokens import encode
from ppd.traces.prompts import PromptMaker


def test_prompt_has_exactly_input_length_tokens() -> None:
    maker = PromptMaker(seed=1, block_size=4)
    text = maker.prompt(0, 10, (0, 1, 2))
    assert len(text.split()) == 10 and len(encode(text)) == 10


def test_shared_ids_share_exactly_their_tokens() -> None:
    maker = PromptMaker(seed=1, block_size=4)
    first = encode(maker.prompt(0, 11, (0, 1, 2)))
    second = encode(maker.prompt(1, 12, (0, 1, 5)))
    assert first[:8] == second[:8] and first[8:11] != second[8:11]
    # a cut last block is the start of the same block in full
    assert encode(maker.prompt(2, 10, (0, 1, 2)))[:10] == encode(maker.prompt(3, 12, (0, 1, 2)))[:10]


def test_same_id_same_words_and_a_seed_changes_them() -> None:
    first, again = PromptMaker(seed=1, block_size=8), PromptMaker(seed=1, block_size=8)
    assert first.prompt(0, 20, (0, 1, 2)) == again.prompt(5, 20, (0, 1, 2))
    other = PromptMaker(seed=2, block_size=8).prompt(0, 20, (0, 1, 2)).split()
    assert sum(a == b for a, b in zip(other, first.prompt(0, 20, (0, 1, 2)).split(), strict=True)) < 3


def test_different_ids_differ_from_their_first_token() -> None:
    """Two header words encode the id: no two blocks share a prefix-cache block by chance."""
    maker = PromptMaker(seed=7, block_size=4)
    firsts = {tuple(encode(maker.prompt(0, 4, (block_id,)))[:2]) for block_id in range(0, 10**6, 997)}
    assert len(firsts) == len(range(0, 10**6, 997))
    assert len(maker.prompt(0, 1, (3,)).split()) == 1 and len(maker.prompt(0, 2, (3,)).split()) == 2


def test_requests_without_ids_get_their_own_words() -> None:
    maker = PromptMaker(seed=1, block_size=0)
    first, second = maker.prompt(0, 50, ()), maker.prompt(1, 50, ())
    assert len(first.split()) == 50 and first.split()[:5] != second.split()[:5]
    assert maker.prompt(0, 50, ()) == first


def test_ids_that_do_not_fit_the_length_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 block ids for 4 tokens"):
        PromptMaker(seed=1, block_size=4).prompt(0, 4, (0, 1, 2))


def test_prompt_ids_are_the_prompts_tokens() -> None:
    maker = PromptMaker(seed=3, block_size=8)
    for index, (length, ids) in enumerate([(20, (0, 1, 2)), (1, (4,)), (2, (4,)), (9, (0, 5))]):
        assert maker.prompt_ids(index, length, ids) == encode(maker.prompt(index, length, ids))
    assert maker.prompt_ids(7, 30, ()) == encode(maker.prompt(7, 30, ()))
