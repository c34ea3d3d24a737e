import numpy as np
import pytest

from ppd.sim.hash_rows import _int_hash, block_hashes_of_rows, matches_python
from ppd.sim.kv_cache import block_hashes_of
from ppd.tokens import VOCAB_SIZE


@pytest.mark.parametrize(("num_tokens", "block_size"), [(512, 16), (515, 16), (60, 7), (15, 16), (32, 1)])
def test_rows_hash_as_python_does(num_tokens: int, block_size: int) -> None:
    """Bit for bit kv_cache.block_hashes_of of each row: chained parents of both signs and every
    token id of the vocabulary's range (full blocks only, a partial last block left out)."""
    rows = np.random.default_rng(num_tokens).integers(0, VOCAB_SIZE, (200, num_tokens))
    expected = [block_hashes_of(row.tolist(), block_size) for row in rows]
    assert block_hashes_of_rows(rows, block_size).tolist() == expected


def test_int_hash_is_pythons_at_the_edges() -> None:
    """hash(v) of 64-bit values: the modulus and its neighbours, -1 (hashes to -2), both extremes."""
    values = [0, 1, -1, -2, 2**61 - 2, 2**61 - 1, 2**61, -(2**61) + 1, -(2**61), 2**63 - 1, -(2**63), 12345]
    hashed = _int_hash(np.array(values, dtype=np.int64).view(np.uint64)).view(np.int64)
    assert hashed.tolist() == [hash(value) for value in values]


def test_no_rows_and_the_interpreter_check() -> None:
    assert block_hashes_of_rows(np.zeros((0, 32), dtype=np.int64), 16).shape == (0, 2)
    assert matches_python(16) and matches_python(3)
