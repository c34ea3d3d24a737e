"""Request.next_answer_token: deterministic answer words, special tokens at the configured rate."""

from ppd.sim.request import Request
from ppd.tokens import decode, is_special


def _answer(special_token_rate: float, num_tokens: int) -> list[int]:
    request = Request(
        "r", [1, 2, 3], 3, num_tokens, [], answer_seed=12345, special_token_rate=special_token_rate
    )
    for _ in range(num_tokens):
        request.token_ids.append(request.next_answer_token())
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
