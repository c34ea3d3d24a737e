"""The word-level tokenizer shared by the sim, the benchmark and the test fixtures.

It matches the tokenizer of the GPU model folder (`make-model.py` in the GPU kit): text is split on
whitespace, the word `w<N>` (N < 128000, written without leading zeros) is token N, and decoding joins
words with single spaces. So a prompt of K words is K tokens on the sim and on real vLLM.

One difference, on purpose: the GPU folder maps every unknown word to token 0 (`w0`, its unk token);
here an unknown word maps to a stable hash inside the vocabulary, so distinct texts do not share
prefix-cache blocks by accident. Token counts are identical either way.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from typing import Any, Final

NUM_WORD_TOKENS: Final = 128_000  # w0 .. w127999; ids from here on are special tokens, as in Llama 3
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>"] + [
    f"<|reserved_special_token_{i}|>" for i in range(254)
]
VOCAB_SIZE: Final = NUM_WORD_TOKENS + len(SPECIAL_TOKENS)  # 128256, Llama-3.1's vocab_size
EOS_TOKEN_ID: Final = NUM_WORD_TOKENS + 1
FIRST_RESERVED_TOKEN_ID: Final = NUM_WORD_TOKENS + 2  # <|reserved_special_token_0|>
NUM_RESERVED_TOKENS: Final = VOCAB_SIZE - FIRST_RESERVED_TOKEN_ID
_SPECIAL_IDS = {text: NUM_WORD_TOKENS + i for i, text in enumerate(SPECIAL_TOKENS)}

# Chat messages become words with this fixed template: each message is its role followed by its
# content, and a final "assistant" asks for the answer. CHAT_TEMPLATE_JINJA is the same template for
# `vllm serve --chat-template`, so chat prompts have the same token counts on sim and on vLLM.
CHAT_TEMPLATE_JINJA = (
    "{% for message in messages %}{{ message['role'] }} {{ message['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant{% endif %}"
)


def word_to_id(word: str) -> int:
    """Token id of one whitespace-free word."""
    if len(word) > 1 and word[0] == "w" and word[1:].isdigit() and (word[1] != "0" or len(word) == 2):
        token_id = int(word[1:])
        if token_id < NUM_WORD_TOKENS:
            return token_id
    special = _SPECIAL_IDS.get(word)
    if special is not None:
        return special
    digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % NUM_WORD_TOKENS


def encode(text: str) -> list[int]:
    """Token ids of a text: one id per whitespace-separated word."""
    return [word_to_id(word) for word in text.split()]


def id_to_word(token_id: int) -> str:
    """The text of one token id."""
    if 0 <= token_id < NUM_WORD_TOKENS:
        return f"w{token_id}"
    if NUM_WORD_TOKENS <= token_id < VOCAB_SIZE:
        return SPECIAL_TOKENS[token_id - NUM_WORD_TOKENS]
    raise ValueError(f"token id {token_id} is outside the vocabulary [0, {VOCAB_SIZE})")


def decode(token_ids: Iterable[int], skip_special_tokens: bool = False) -> str:
    """Text of token ids: words joined by single spaces; special tokens left out if asked (vLLM's
    default for generated text)."""
    if skip_special_tokens:
        token_ids = [token_id for token_id in token_ids if not is_special(token_id)]
    return " ".join(id_to_word(token_id) for token_id in token_ids)


def is_special(token_id: int) -> bool:
    """Whether a token id is one of the special tokens (begin/end of text, reserved)."""
    return NUM_WORD_TOKENS <= token_id < VOCAB_SIZE


def render_chat(messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> str:
    """Render chat messages into prompt text with the fixed template (see CHAT_TEMPLATE_JINJA)."""
    parts = [f"{message['role']} {message['content']} " for message in messages]
    if add_generation_prompt:
        parts.append("assistant")
    return "".join(parts)


def random_words(num_words: int, rng: random.Random) -> str:
    """`num_words` random vocabulary words `w<N>`: a prompt of exactly that many tokens."""
    return " ".join(f"w{rng.randrange(NUM_WORD_TOKENS)}" for _ in range(num_words))
