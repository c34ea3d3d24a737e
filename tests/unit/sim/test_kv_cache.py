import pytest

from ppd.sim.kv_cache import KVBlock, KVCache, block_hashes_of, extend_block_hashes


def ids(blocks: list[KVBlock] | None) -> list[int] | None:
    return None if blocks is None else [block.block_id for block in blocks]


def test_block_hashes_chain_so_equal_blocks_after_different_prefixes_differ() -> None:
    a = block_hashes_of([1, 2, 3, 4, 9, 9, 9, 9], block_size=4)
    b = block_hashes_of([5, 6, 7, 8, 9, 9, 9, 9], block_size=4)
    assert len(a) == 2
    assert a[1] != b[1]
    assert block_hashes_of([1, 2, 3, 4, 9, 9, 9, 9, 7], block_size=4) == a  # partial block not hashed


def test_extend_block_hashes_matches_hashing_at_once() -> None:
    tokens = list(range(40))
    hashes = block_hashes_of(tokens[:17], 8)
    extend_block_hashes(hashes, tokens, 8)
    assert hashes == block_hashes_of(tokens, 8)


@pytest.mark.parametrize(
    ("known", "num_known_hashes", "num_shared"),
    [
        (list(range(40)), 5, 40),  # the prompt starts with the last turn: its blocks are reused
        (list(range(40)), 3, 40),  # fewer hashes known than full blocks shared
        (list(range(13)), 1, 13),  # the known tokens end inside the prompt's second block
        (list(range(16)) + [99] * 24, 5, 16),  # they differ from token 16 on (a dropped special token)
        ([], 0, 0),
        (list(range(80)), 10, 60),  # longer than the prompt
    ],
)
def test_hashes_extended_past_a_known_prefix_equal_hashing_it_all(
    known: list[int], num_known_hashes: int, num_shared: int
) -> None:
    prompt = list(range(60))
    hashes = block_hashes_of(known, 8)[: min(num_known_hashes, num_shared // 8)]
    after = prompt[len(hashes) * 8 :]
    extend_block_hashes(hashes, after, 8, offset=len(hashes) * 8)
    assert hashes == block_hashes_of(prompt, 8)


def test_committed_blocks_stay_findable_after_free_until_evicted() -> None:
    cache = KVCache(num_blocks=4, block_size=2)
    hashes = block_hashes_of([1, 2, 3, 4], 2)
    blocks = cache.allocate(2)
    assert blocks is not None
    for block_id, block_hash in zip(blocks, hashes, strict=True):
        cache.commit(block_id, block_hash)
    cache.free(blocks)
    assert cache.cached_prefix(hashes) == blocks
    assert cache.cached_prefix(hashes, 1) == blocks[:1] and cache.count_cached(hashes, 5) == 2
    assert cache.num_free_blocks == 4
    # Two fresh blocks come from the never-used ones first; the cached ones survive.
    assert cache.allocate(2) is not None
    assert cache.cached_prefix(hashes) == blocks
    # The next allocation must evict: the sequence's tail block goes first (freed in reverse).
    assert cache.allocate(1) == [blocks[1]]
    assert cache.cached_prefix(hashes) == blocks[:1]


def test_touch_takes_cached_blocks_out_of_the_free_queue() -> None:
    cache = KVCache(num_blocks=2, block_size=2)
    blocks = cache.allocate(1)
    assert blocks is not None
    cache.commit(blocks[0], 123)
    cache.free(blocks)
    cache.touch(blocks)
    assert cache.num_free_blocks == 1
    assert cache.allocate(2) is None
    assert cache.usage == 0.5


def test_eviction_is_least_recently_freed_first_and_a_hit_renews_a_block() -> None:
    cache = KVCache(num_blocks=3, block_size=1)
    first, second, third = ([block] for block in cache.allocate(3) or [])
    for block, block_hash in ((first, 1), (second, 2), (third, 3)):
        cache.commit(block[0], block_hash)
    cache.free(first)
    cache.free(second)
    cache.free(third)
    cache.touch(first)  # a later request hits the oldest block: it leaves the queue...
    cache.free(first)  # ...and comes back as the most recently freed
    assert cache.allocate(1) == second
    assert cache.count_cached([1]) == 1 and cache.count_cached([2]) == 0 and cache.count_cached([3]) == 1


def test_extend_block_hashes_stops_at_num_tokens_without_a_copied_prefix() -> None:
    tokens = list(range(40))
    hashes: list[int] = []
    extend_block_hashes(hashes, tokens, 8, num_tokens=23)
    assert hashes == block_hashes_of(tokens[:23], 8)
    extend_block_hashes(hashes, tokens, 8, num_tokens=99)
    assert hashes == block_hashes_of(tokens, 8)


def test_never_used_blocks_go_first_in_id_order_then_freed_ones_least_recent_first() -> None:
    # The pool is built lazily; the order must be the eager pool's: every block free in id order,
    # freed blocks queued behind the ones never used.
    cache = KVCache(num_blocks=6, block_size=2)
    assert (cache.num_blocks, cache.num_free_blocks, cache.usage) == (6, 6, 0.0)
    first = cache.allocate(2)
    assert first is not None and ids(first) == [0, 1]
    cache.free(first)  # queued behind the never-used 2..5, tail first: 1 then 0
    assert cache.num_free_blocks == 6
    assert ids(cache.allocate(5)) == [2, 3, 4, 5, 1]
    assert cache.allocate(2) is None
    assert ids(cache.allocate(1)) == [0]
    assert cache.num_free_blocks == 0 and cache.usage == 1.0


def test_blocks_hit_and_freed_again_keep_the_free_queue_short_and_in_order() -> None:
    # A hit leaves the block's old queue entry behind (skipped when reached); blocks hit and freed
    # over and over while nothing is evicted must not make the queue grow with time.
    cache = KVCache(num_blocks=8, block_size=1)
    blocks = cache.allocate(8)
    assert blocks is not None
    cache.commit_many(blocks, [100 + block.block_id for block in blocks], 0, len(blocks))
    cache.free(blocks)  # queued 7, 6, ..., 0
    for _ in range(10_000):
        cache.touch(blocks[:2])
        cache.free(blocks[:2])  # queued again at the tail: 1, 0
    assert len(cache._free_queue) <= 2 * 8 + 4096
    assert cache.free_block_ids() == [7, 6, 5, 4, 3, 2, 1, 0]
    assert cache.num_free_blocks == 8
    assert ids(cache.allocate(7)) == [7, 6, 5, 4, 3, 2, 1]
    assert ids(cache.cached_prefix([100])) == [0] and cache.cached_prefix([101]) == []


def test_reset_prefix_cache_forgets_free_blocks_once_even_with_stale_queue_entries() -> None:
    cache = KVCache(num_blocks=4, block_size=1)
    blocks = cache.allocate(4)
    assert blocks is not None
    cache.commit_many(blocks, [100, 101, 102, 103], 0, 4)
    cache.free(blocks[:3])
    cache.touch(blocks[:1])  # a prefix hit: block 0's queue entry goes stale, its content stays in use
    cache.reset_prefix_cache()
    assert ids(cache.cached_prefix([100])) == [0] and ids(cache.cached_prefix([103])) == [3]  # in use: kept
    assert cache.cached_prefix([101]) == [] and cache.cached_prefix([102]) == []
    assert cache.free_block_ids() == [2, 1] and cache.num_free_blocks == 2
