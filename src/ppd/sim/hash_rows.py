"""kv_cache.block_hashes_of for many token sequences of one length at once, in numpy.

A block's hash is Python's own `hash((parent_hash, *block))` (kv_cache.hash_block_at), which needs
an int object per token. `ppd fleet` knows every conversation's first prompt before it arrives (the
words come from the conversation's seed), so it hashes those prompts a batch at a time here: CPython's
tuple hash (xxHash's rounds over the items' hashes, Objects/tupleobject.c since 3.8) and int hash
(the value modulo 2**61 - 1, with its sign; Objects/longobject.c), computed on uint64 arrays with
their wrap-around, one sequence per column. The hashes are the same ints, bit for bit;
`matches_python` checks it on the running interpreter, and tests/unit/sim/test_hash_rows.py on many
draws.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Final

import numpy as np

from ppd.sim.kv_cache import ROOT_BLOCK_HASH, block_hashes_of

TokenRows = np.ndarray[Any, np.dtype[np.int64]]
_Words = np.ndarray[Any, np.dtype[np.uint64]]

# Objects/tupleobject.c (64-bit Py_uhash_t)
_XXPRIME_1: Final = np.uint64(11400714785074694791)
_XXPRIME_2: Final = np.uint64(14029467366897019727)
_XXPRIME_5: Final = 2870177450012600261
_LENGTH_MANGLE: Final = _XXPRIME_5 ^ 3527539
_HASH_OF_MINUS_ONE_TUPLE: Final = np.uint64(1546275796)  # what a tuple hashing to -1 hashes to
_MINUS_ONE: Final = np.uint64(2**64 - 1)
_HASH_MODULUS: Final = np.uint64(2**61 - 1)  # sys.hash_info.modulus on 64-bit builds
_ROTATE_LEFT: Final = np.uint64(31)
_ROTATE_RIGHT: Final = np.uint64(33)


def block_hashes_of_rows(token_ids: TokenRows, block_size: int) -> TokenRows:
    """block_hashes_of(row, block_size) for every row of token_ids (rows, tokens; each token id in
    [0, 2**61 - 1)), as an array (rows, full blocks) of the same ints."""
    num_rows, num_tokens = token_ids.shape
    # Each token's lane times the round's prime, one token per row of the array: a round adds a row.
    lanes = np.ascontiguousarray(token_ids.T).astype(np.uint64)
    lanes *= _XXPRIME_2
    hashes = np.empty((num_tokens // block_size, num_rows), dtype=np.uint64)
    parent = np.full(num_rows, ROOT_BLOCK_HASH, dtype=np.uint64)
    acc, spare = np.empty(num_rows, dtype=np.uint64), np.empty(num_rows, dtype=np.uint64)
    last_round = np.uint64((block_size + 1) ^ _LENGTH_MANGLE)
    for block in range(len(hashes)):
        acc.fill(_XXPRIME_5)
        _round(acc, _int_hash(parent) * _XXPRIME_2, spare)
        for token in range(block * block_size, (block + 1) * block_size):
            _round(acc, lanes[token], spare)
        acc += last_round
        acc[acc == _MINUS_ONE] = _HASH_OF_MINUS_ONE_TUPLE
        hashes[block] = acc
        parent = hashes[block]
    return np.ascontiguousarray(hashes.T).view(np.int64)


def _round(acc: _Words, lane: _Words, spare: _Words) -> None:
    """One xxHash round of the tuple hash, in place: acc = rotate_left(acc + lane, 31) * XXPRIME_1
    (lane already multiplied by XXPRIME_2)."""
    acc += lane
    np.right_shift(acc, _ROTATE_RIGHT, out=spare)
    acc <<= _ROTATE_LEFT
    acc |= spare
    acc *= _XXPRIME_1


def _int_hash(values: _Words) -> _Words:
    """hash(v) of each value v (a Py_hash_t, stored as its 64 bits), as its 64 bits: the magnitude
    modulo 2**61 - 1 with v's sign, and -2 where that is -1."""
    signed = values.view(np.int64)
    magnitude = np.abs(signed).view(np.uint64) % _HASH_MODULUS  # abs(-2**63) wraps to 2**63: right here
    hashed = np.where(signed < 0, np.uint64(0) - magnitude, magnitude)
    hashed[hashed == _MINUS_ONE] = np.uint64(2**64 - 2)
    return hashed


@functools.cache
def matches_python(block_size: int) -> bool:
    """Whether block_hashes_of_rows gives this interpreter's hashes (CPython, 64-bit hashes): checked
    on two rows of tokens spread over the vocabulary's range, once per block size (every fleet run's
    client asks; `ppd plan` makes hundreds)."""
    if sys.hash_info.width != 64 or sys.hash_info.modulus != 2**61 - 1:
        return False
    rows = np.arange(8 * block_size, dtype=np.int64).reshape(2, 4 * block_size) * 40_009 % 128_256
    expected = [block_hashes_of(row.tolist(), block_size) for row in rows]
    return bool(block_hashes_of_rows(rows, block_size).tolist() == expected)
