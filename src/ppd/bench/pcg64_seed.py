"""The state numpy's `PCG64(seed)` starts in, computed without building a SeedSequence and a PCG64.

`ppd fleet` draws each conversation's prompt words from a generator seeded with that conversation's
seed (bench.word_ids.WordIdDrawer), 16 times a simulated second; building `PCG64(seed)` for each
(numpy's SeedSequence: hashing the seed in Python-level Cython, arrays, dtype conversions) was ~5%
of a run. This is numpy's own seeding, step for step: SeedSequence's entropy pool (4 words, its
`mix_entropy`), `generate_state(4, uint64)`, and PCG64's `pcg64_set_seed` (the 128-bit LCG's
srandom: state 0, one step, add the seed, one step). tests/unit/bench/test_pcg64_seed.py checks it
against numpy for seeds of 0 to 160 bits.

The 32-bit products are taken from 16-bit halves (`_mul32`): the compiled build multiplies ints
natively only while both factors are below 2**30 (mypyc's overflow check), and otherwise in boxed
arbitrary-precision arithmetic, which made this function ~20 us a call there (1.5% of a fleet run).
"""

from __future__ import annotations

from typing import Final

_MASK_32: Final = 0xFFFF_FFFF
_MASK_128: Final = (1 << 128) - 1
_POOL_SIZE: Final = 4  # SeedSequence's default pool_size
# SeedSequence's hash constants
_INIT_A: Final = 0x43B0_D7E5
_MULT_A: Final = 0x931E_8875
_INIT_B: Final = 0x8B51_F9DD
_MULT_B: Final = 0x58F3_8DED
_MIX_MULT_L: Final = 0xCA01_F9DD
_MIX_MULT_R: Final = 0x4973_F715
_PCG_MULTIPLIER: Final = 0x2360_ED05_1FC6_5DA4_4385_DF64_9FCC_F645  # PCG_DEFAULT_MULTIPLIER_128


def pcg64_state(seed: int) -> tuple[int, int]:
    """(state, inc) of `numpy.random.PCG64(seed)` for a seed >= 0: its `.state["state"]` values."""
    entropy = _uint32_words(seed)
    # SeedSequence.mix_entropy: each pool word starts as an entropy word hashed (0 past the
    # entropy), then each is mixed into every other, then any entropy past the pool into every one.
    # Its hashmix and mix are written out: this runs once per conversation.
    pool = [*entropy[:_POOL_SIZE], *[0] * (_POOL_SIZE - len(entropy))]
    hash_const = _INIT_A
    for index in range(_POOL_SIZE):
        value = pool[index] ^ hash_const
        hash_const = _mul32(hash_const, _MULT_A)
        value = _mul32(value, hash_const)
        pool[index] = value ^ (value >> 16)
    extra = entropy[_POOL_SIZE:]
    for source in range(_POOL_SIZE + len(extra)):
        for target in range(_POOL_SIZE):
            if source == target:
                continue
            value = (pool[source] if source < _POOL_SIZE else extra[source - _POOL_SIZE]) ^ hash_const
            hash_const = _mul32(hash_const, _MULT_A)
            value = _mul32(value, hash_const)
            hashed = value ^ (value >> 16)
            mixed = (_mul32(pool[target], _MIX_MULT_L) - _mul32(hashed, _MIX_MULT_R)) & _MASK_32
            pool[target] = mixed ^ (mixed >> 16)
    # generate_state(4, uint64): 8 uint32 words from the pool, read as 4 little-endian uint64
    hash_const = _INIT_B
    out: list[int] = []
    for index in range(2 * _POOL_SIZE):
        value = pool[index % _POOL_SIZE] ^ hash_const
        hash_const = _mul32(hash_const, _MULT_B)
        value = _mul32(value, hash_const)
        out.append(value ^ (value >> 16))
    seed_128 = (out[0] | out[1] << 32) << 64 | out[2] | out[3] << 32
    inc = (((out[4] | out[5] << 32) << 64 | out[6] | out[7] << 32) << 1 | 1) & _MASK_128
    # pcg64_set_seed: the LCG's srandom (state 0, one step, add the seed, one step)
    state = (inc + seed_128) & _MASK_128
    return (state * _PCG_MULTIPLIER + inc) & _MASK_128, inc


def _mul32(a: int, b: int) -> int:
    """a * b mod 2**32 for 32-bit words, from products of 16-bit halves only."""
    a_low, a_high, b_low, b_high = a & 0xFFFF, a >> 16, b & 0xFFFF, b >> 16
    return (a_low * b_low + (((a_high * b_low + a_low * b_high) & 0xFFFF) << 16)) & _MASK_32


def _uint32_words(value: int) -> list[int]:
    """An integer as little-endian 32-bit words ([0] for 0), as SeedSequence takes its entropy."""
    words = [value & _MASK_32]
    value >>= 32
    while value:
        words.append(value & _MASK_32)
        value >>= 32
    return words
