import random

import numpy as np
import pytest

from ppd.bench.pcg64_seed import pcg64_state


@pytest.mark.parametrize("num_bits", [0, 1, 8, 31, 32, 33, 63, 64, 65, 127, 128, 129, 160])
def test_state_is_numpys_pcg64_state(num_bits: int) -> None:
    """For seeds of every entropy length (1 to 5 uint32 words: below, at and past the pool's 4)."""
    rng = random.Random(num_bits)
    seeds = {0, 2**num_bits - 1, 2**num_bits} | {rng.getrandbits(num_bits) for _ in range(200)}
    for seed in sorted(seeds):
        state = np.random.PCG64(seed).state["state"]
        assert pcg64_state(seed) == (state["state"], state["inc"]), seed
