"""Prompt text for trace requests: the same block id always gives the same words.

Each block id maps to `block_size` vocabulary words (`w<N>`, one token each; see ppd.tokens), fixed by
(seed, block id), and a request's prompt is its blocks' words in order, the last block cut to the
request's input length. Two requests that share leading ids therefore share exactly those prompt
tokens, and an engine's prefix cache sees what the trace's service saw. A trace without block ids
(Azure) gets words of its own per request: its prompts share nothing.

Speed matters (prompts are made on the bench's event loop, ~12k words each in the Mooncake trace), so
a block's words are not drawn one by one: a block is two *header* words that encode (seed, block id)
one to one, then a slice of a fixed random corpus of CORPUS_WORDS words at an offset drawn from
(seed, block id). Slicing one string is a copy: a 12k-word prompt takes 0.23 ms against 4.2 ms by
drawing and joining its words (benchmarks/hot_paths.py, median, quiet machine). The
header makes blocks of different ids differ from their first token, so no two ids ever share a
prefix-cache block by an offset collision.
"""

from __future__ import annotations

import hashlib
from array import array
from functools import lru_cache

import numpy as np

from ppd.tokens import NUM_WORD_TOKENS

CORPUS_WORDS = 1 << 20
HEADER_WORDS = 2
_CORPUS_SEED = 0x7ACE5


@lru_cache(maxsize=1)
def _corpus_ids() -> list[int]:
    """The corpus's token ids (w<N> is token N)."""
    return list(np.random.default_rng(_CORPUS_SEED).integers(0, NUM_WORD_TOKENS, CORPUS_WORDS).tolist())


@lru_cache(maxsize=1)
def _corpus() -> tuple[str, array[int]]:
    """The corpus text and the character offset of each word's start (plus one past the end).

    An array, not a numpy array: indexing it gives Python ints, ~10x faster to slice a str with."""
    words = [f"w{token}" for token in _corpus_ids()]
    lengths = np.fromiter((len(word) + 1 for word in words), dtype=np.int64, count=CORPUS_WORDS)
    starts = array("q", np.concatenate(([0], np.cumsum(lengths))).tolist())
    return " ".join(words), starts


def prepare() -> None:
    """Build the corpus (~1 s, once per process): call it before a run's clock starts."""
    _corpus()


def _mix(seed: int, key: int) -> int:
    """A stable 64-bit value of (seed, key)."""
    data = seed.to_bytes(8, "little", signed=False) + key.to_bytes(16, "little", signed=True)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _header_ids(seed: int, key: int) -> tuple[int, int]:
    """Two token ids that differ for every key < NUM_WORD_TOKENS**2 (about 1.6e10) under one seed."""
    code = (key + _mix(seed, 0)) % (NUM_WORD_TOKENS * NUM_WORD_TOKENS)  # a shift: one to one in key
    return code // NUM_WORD_TOKENS, code % NUM_WORD_TOKENS


def _body_offset(seed: int, key: int, num_body: int) -> int:
    return _mix(seed, key) % (CORPUS_WORDS - num_body + 1)


def _words(seed: int, key: int, num_words: int) -> str:
    """num_words words (<= CORPUS_WORDS) for (seed, key): the header, then a slice of the corpus."""
    header = " ".join(f"w{token}" for token in _header_ids(seed, key)[:num_words])
    num_body = num_words - HEADER_WORDS
    if num_body <= 0:
        return header
    text, starts = _corpus()
    offset = _body_offset(seed, key, num_body)
    return f"{header} {text[starts[offset] : starts[offset + num_body] - 1]}"


def _ids(seed: int, key: int, num_words: int) -> list[int]:
    """The token ids of _words(seed, key, num_words)."""
    header = list(_header_ids(seed, key)[:num_words])
    num_body = num_words - HEADER_WORDS
    if num_body <= 0:
        return header
    offset = _body_offset(seed, key, num_body)
    return header + _corpus_ids()[offset : offset + num_body]


def block_text(seed: int, block_id: int, num_words: int) -> str:
    """The first num_words words of one block."""
    return _words(seed, block_id, num_words)


class PromptMaker:
    """Prompt texts of one run (one seed). ~0.2 ms for a 12k-word prompt once the corpus is built."""

    def __init__(self, seed: int, block_size: int) -> None:
        if seed < 0:
            raise ValueError("seed must be >= 0")
        self.seed = seed
        self.block_size = block_size

    def prompt(self, request_index: int, num_input_tokens: int, block_ids: tuple[int, ...]) -> str:
        """The prompt of one request: exactly num_input_tokens words."""
        return " ".join(
            _words(self.seed, key, count)
            for key, count in self._pieces(request_index, num_input_tokens, block_ids)
        )

    def prompt_ids(self, request_index: int, num_input_tokens: int, block_ids: tuple[int, ...]) -> list[int]:
        """The token ids of prompt(...) (what an engine's tokenizer makes of it)."""
        ids: list[int] = []
        for key, count in self._pieces(request_index, num_input_tokens, block_ids):
            ids += _ids(self.seed, key, count)
        return ids

    def _pieces(
        self, request_index: int, num_input_tokens: int, block_ids: tuple[int, ...]
    ) -> list[tuple[int, int]]:
        """(key, words) of each piece of a prompt: its blocks, or one piece for a request without ids
        (keyed apart from block ids)."""
        if not block_ids:
            if num_input_tokens > CORPUS_WORDS:
                raise ValueError(f"{num_input_tokens} tokens: at most {CORPUS_WORDS} without block ids")
            return [(-1 - request_index, num_input_tokens)]
        full_blocks, rest = divmod(num_input_tokens, self.block_size)
        if full_blocks + (rest > 0) != len(block_ids):
            raise ValueError(f"{len(block_ids)} block ids for {num_input_tokens} tokens of {self.block_size}")
        pieces = [(block_id, self.block_size) for block_id in block_ids[:full_blocks]]
        if rest:
            pieces.append((block_ids[-1], rest))
        return pieces
