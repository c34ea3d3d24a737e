"""Request.next_answer_token: deterministic answer words, special tokens at the configured rate."""

import random

from ppd.sim.request import Request
from ppd.tokens import decode, is_special


def _answer(special_token_rate: float, num_tokens: int) -> list[int]:
    request = Request(
        "r", 3, [1, 2, 3], num_tokens, [], answer_seed=12345, special_token_rate=special_token_rate
    )
    for _ in range(num_tokens):
        request.output_token_ids.append(request.next_answer_token())
    return request.output_token_ids


def test_answers_are_words_unless_a_special_token_rate_is_set() -> None:
    assert not any(is_special(token_id) for token_id in _answer(0.0, 20_000))
    assert _answer(0.0, 50) == _answer(0.0, 50)  # deterministic


def test_special_tokens_come_at_the_rate_and_are_never_end_of_text() -> None:
    answer = _answer(0.002, 200_000)  # a dummy-weight model's 256 of 128,256
    specials = [token_id for token_id in answer if is_special(token_id)]
    assert 340 <= len(specials) <= 460  # 400 expected; binomial sd 20
    assert all(token_id >= 128_002 for token_id in specials)  # not <|begin_of_text|> or <|end_of_text|>
    assert _answer(0.002, 1000) == answer[:1000]  # the words do not depend on the length asked


def test_decode_leaves_special_tokens_out_only_when_asked() -> None:
    assert decode([5, 128_007, 6]) == "w5 <|reserved_special_token_5|> w6"
    assert decode([5, 128_007, 6], skip_special_tokens=True) == "w5 w6"


def test_special_tokens_come_at_random_gaps_not_evenly_spaced() -> None:
    # As a dummy-weight model samples them: each token independently, so the first special token of
    # an answer is geometric. The share of answers with at least one in their first k tokens is then
    # 1 - (1 - rate)^k: 40% for 256 tokens, 87% for 1024 at rate 0.002 (evenly spaced: 51%, 100%).
    def has_special(seed: int, num_tokens: int) -> bool:
        request = Request("r", 1, [1], num_tokens, [], answer_seed=seed, special_token_rate=0.002)
        for _ in range(num_tokens):
            request.output_token_ids.append(request.next_answer_token())
        return any(is_special(token_id) for token_id in request.output_token_ids)

    seeds = [random.Random(i).getrandbits(32) for i in range(600)]
    share_256 = sum(has_special(seed, 256) for seed in seeds) / len(seeds)
    share_1024 = sum(has_special(seed, 1024) for seed in seeds) / len(seeds)
    assert 0.33 <= share_256 <= 0.47  # 0.40 expected, binomial sd 0.02
    assert 0.82 <= share_1024 <= 0.92  # 0.87 expected, sd 0.014
