import numpy as np
import pytest

from ppd.bench.word_ids import WordIdDrawer
from ppd.bench.workloads import random_word_ids
from ppd.tokens import NUM_WORD_TOKENS

# Seeds whose first 1,024 draws numpy's bounded draw rejects a 32-bit word of (it then takes
# another): any way of drawing other than numpy's own must get these right too.
REJECTING_SEEDS = (3, 92, 103, 127, 194)


def numpy_ids(num_words: list[int], seed: int) -> list[list[int]]:
    """The definition: numpy's generator for the seed, one draw per count in turn."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, NUM_WORD_TOKENS, count).tolist() for count in num_words]


def rejects(seed: int, num_words: int) -> bool:
    """Whether numpy's bounded draw of num_words ids from this seed rejects a 32-bit word."""
    raw = np.random.default_rng(seed).bit_generator.random_raw((num_words + 1) // 2)
    products = raw.view(np.uint32)[:num_words].astype(np.uint64) * NUM_WORD_TOKENS
    return bool(((products & 0xFFFF_FFFF) < 2**32 % NUM_WORD_TOKENS).any())


@pytest.mark.parametrize("counts", [[512, 512], [511, 513, 1], [1, 1, 1], [3, 8192, 7], [], [0, 5], [1]])
def test_arrays_are_numpys_draws(counts: list[int]) -> None:
    """HTTP and fleet runs send the same prompts: numpy's words for every seed, odd splits included
    (a draw of n and then m words is the draw of n + m)."""
    for seed in (0, 5, 2**63 + 17, 2**64 - 1, *REJECTING_SEEDS):
        expected = numpy_ids(counts, seed)
        assert [ids.tolist() for ids in WordIdDrawer().arrays(counts, seed)] == expected
        assert [ids.tolist() for ids in random_word_ids(counts, seed)] == expected


def test_rejecting_seeds_reject() -> None:
    """The fallback is exercised: these seeds do hit numpy's rejection in their 1,024 words, and
    most seeds do not."""
    assert all(rejects(seed, 1024) for seed in REJECTING_SEEDS)
    assert sum(rejects(seed, 1024) for seed in range(200)) < 10


def test_one_drawer_reseeds() -> None:
    """One drawer, seed after seed (as the fleet's client uses it), gives each seed's own words."""
    drawer = WordIdDrawer()
    for seed in (7, 0, 3, 7, 2**64 - 1, 92, 123456789):
        assert [ids.tolist() for ids in drawer.arrays([512, 3, 1], seed)] == numpy_ids([512, 3, 1], seed)
        assert drawer.draw(1024, seed).dtype == np.int64


@pytest.mark.parametrize("num_words", [1024, 3, 1, 0])
def test_rows_are_each_seeds_draw(num_words: int) -> None:
    """Many seeds at once (the fleet's batches), the rejecting ones too, are each seed's own words."""
    seeds = [0, 5, 2**63 + 17, 2**64 - 1, *REJECTING_SEEDS, *range(1000, 1100)]
    rows = WordIdDrawer().rows(num_words, seeds)
    assert rows.shape == (len(seeds), num_words) and rows.dtype == np.int64
    assert rows.tolist() == [numpy_ids([num_words], seed)[0] for seed in seeds]
